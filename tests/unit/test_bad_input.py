"""Bad input at scale: hypothesis throws broken task files and flags at `skyterra launch`.

Every input goes through the real CLI entry point in-process (click's
CliRunner, `launch FILE --dryrun --cloud local`). Whatever the input, the CLI
must answer with exit code 2 and one `Error:` message that names the file, a
field or a flag (or exit 0 if the mutation happened to be a valid task), never
raise anything but SystemExit, never print a traceback, and never create a
cluster directory. The run prints how many distinct bad inputs it tried.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyterra.cli import main

SEED_CONFIG = {
    "name": "minGPT-ddp",
    "workdir": ".",
    "num_nodes": 2,
    "resources": {"cpus": "4+", "memory": "8+", "accelerators": "L4:4", "disk_size": 100,
                  "use_spot": False, "ports": [8080], "labels": {"team": "ml"}},
    "envs": {"LOGLEVEL": "INFO", "BATCH": 32},
    "secrets": {"HF_TOKEN": "hf_dummy"},
    "file_mounts": {"/data/task.yaml": "task.yaml"},
    "setup": "pip install -r requirements.txt",
    "run": "torchrun --nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE main.py",
}
PATHS = [("name",), ("workdir",), ("num_nodes",), ("resources",), ("envs",), ("secrets",),
         ("file_mounts",), ("setup",), ("run",), ("envs", "LOGLEVEL"), ("envs", "BATCH"),
         ("secrets", "HF_TOKEN"), ("file_mounts", "/data/task.yaml"),
         *[("resources", key) for key in (
             "cloud", "infra", "region", "zone", "accelerators", "cpus", "memory",
             "instance_type", "use_spot", "disk_size", "disk_tier", "image_id", "ports",
             "labels", "any_of", "ordered")],
         ("resources", "labels", "team"), ("resources", "ports", 0)]
TOP_KEYS = list(SEED_CONFIG) + ["service", "volumes", "config", "inputs", "event_callback"]

# --- value strategies ------------------------------------------------------------------
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
huge_ints = st.sampled_from([0, -1, 65, 65536, 70000, 2**31, 2**63, 10**30, -(10**100),
                             10**400])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints,
                    st.floats(allow_nan=True, allow_infinity=True), text,
                    st.sampled_from(["", " ", "L4:x", "L4:0", "FOO:4", "4++", "aws//x",
                                     "s3://bucket/x", "kubernetes", "awz", "1BAD", "${X}",
                                     "é", "\u202e", "\x00", "yes please", "-4", "lots"]))
garbage = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(text, st.integers(), st.booleans()), inner, max_size=4)),
    max_leaves=12)


def _set(config: dict, path: tuple, value) -> dict:
    if not path:
        return value
    if not isinstance(config, dict):
        config = {}
    target = config
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):   # replace whatever was there by a mapping
            nxt = {}
            target[part] = nxt
        target = nxt
    if isinstance(target, list):
        target[path[-1] % max(len(target), 1):] = [value]
    else:
        target[path[-1]] = value
    return config


@st.composite
def mutated_config(draw) -> tuple[str, bytes, list[str]]:
    """A valid seed dict with one to three mutations, dumped as YAML."""
    config = copy.deepcopy(SEED_CONFIG)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["type", "type", "type", "unknown", "unknown-res",
                                     "unsupported", "delete"]))
        if kind == "type":
            config = _set(config, draw(st.sampled_from(PATHS)), draw(garbage))
        elif kind == "unknown":
            key = draw(st.one_of(text, st.sampled_from(["reources", "num_node", "envz",
                                                        "Run", "setup ", "file_mount"])))
            if isinstance(config, dict):
                config[key] = draw(garbage)
        elif kind == "unknown-res":
            key = draw(st.one_of(text, st.sampled_from(["acelerators", "cpu", "mem", "gpu",
                                                        "region_name", "autostop"])))
            if isinstance(config, dict):
                _set(config, ("resources", key), draw(garbage))
        elif kind == "unsupported":
            if isinstance(config, dict):
                config[draw(st.sampled_from(TOP_KEYS))] = draw(garbage)
        elif kind == "delete" and isinstance(config, dict) and config:
            config.pop(draw(st.sampled_from(sorted(config, key=str))))
    try:
        data = yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode()
    except (yaml.YAMLError, ValueError):        # e.g. a huge int yaml cannot print
        data = repr(config).encode()
    return "mutation", data, []


_NASTY = [
    b"", b"\n", b"---\n", b"~\n", b"[]\n", b"42\n", b"- a\n- b\n", b"\xff\xfe\x00r\x00u\x00n",
    b"run: x\n\x00", b"name: \xe9\nrun: x\n",
    b"name: t\n\trun: x\n", b"run: 'x\n",
    b"workdir:\n  ? ''\n  : null\n  0: null\nrun: x\n",   # keys of mixed types (found by fuzzing) b"run: x\nrun: y\n", b"a: &a [*a]\n",
    b"a: &a {x: 1}\nb: {<<: *a, <<: *a}\n", b"<<: 5\n", b"run: !!binary aGVsbG8=\n",
    b"run: !!python/name:os.system\n", b"name: !!timestamp 2024-13-45\nrun: x\n",
    b"num_nodes: " + b"9" * 5000 + b"\n", b"run: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    (b"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nrun: x\n"),                  # billion laughs
    b"? [a]\n: 1\n", b"? {a: 1}\n: 1\n", b"%YAML 9.9\n---\nrun: x\n", b"run: *nope\n",
    # image_id's `docker:` key, container_image and config.<cloud> keys (sample2 forms)
    b"resources: {image_id: {docker: 5}}\nrun: x\n",
    b"resources: {image_id: {docker: '', us-east-1: ami-1}}\nrun: x\n",
    b"resources: {image_id: {Docker: 'Not A/Ref:!'}}\nrun: x\n",
    b"resources: {image_id: {docker: ubuntu, eu-west-1: {a: 1}}}\nrun: x\n",
    b"resources: {container_image: {}}\nrun: x\n",
    b"resources: {container_image: [a]}\nrun: x\n",
    b"resources: {container_image: {ref: 7, bogus: 1}}\nrun: x\n",
    b"resources: {container_image: ubuntu, image_id: docker:ubuntu}\nrun: x\n",
    b"config: {gcp: {managed_instance_group: x, 5: y}}\nrun: x\n",
    b"config: {hooks: [{run: x}]}\nrun: x\n",
    b"file_mounts: {/d: {name: bkt-abc-1, source: [a, b]}}\nrun: x\n",
    b"resources: {accelerators: 'A100:1 H100:1'}\nrun: x\n",
]


@st.composite
def raw_file(draw) -> tuple[str, bytes, list[str]]:
    """Whole files: random bytes, random text, and hand-made nasty YAML (bombs, dups…)."""
    kind = draw(st.sampled_from(["bytes", "text", "nasty", "nasty-seed"]))
    if kind == "bytes":
        return "bytes", draw(st.binary(max_size=200)), []
    if kind == "text":
        return "text", draw(st.text(max_size=200)).encode("utf-8", "surrogatepass"), []
    if kind == "nasty":
        return "nasty", draw(st.sampled_from(_NASTY)), []
    # A real seed file with bytes cut, replaced or inserted somewhere.
    data = bytearray(yaml.safe_dump(SEED_CONFIG).encode())
    at = draw(st.integers(0, len(data)))
    data[at:at + draw(st.integers(0, 8))] = draw(st.binary(max_size=8))
    return "nasty-seed", bytes(data), []


# A command line cannot carry NUL bytes (C strings), so flags never contain one.
flag_values = st.one_of(text.filter(lambda v: "\x00" not in v), st.sampled_from(["0", "-1", "65", "abc", "", "=", "=x", "1X=y",
                                               "A", "L4:x", "FOO", "awz", "aws//x",
                                               "kubernetes", "SKYTERRA_FUZZ_UNSET_VAR"]))


@st.composite
def bad_flags(draw) -> tuple[str, bytes, list[str]]:
    """The valid seed with random flags: --env, --secret, --num-nodes, --gpus, --cloud."""
    flags: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        flag = draw(st.sampled_from(["--env", "--secret", "--num-nodes", "--gpus", "--cloud",
                                     "--env-file", "-c"]))
        flags += [flag, draw(flag_values)]
    return "flags", yaml.safe_dump(SEED_CONFIG).encode(), flags


inputs = st.one_of(mutated_config(), mutated_config(), raw_file(), bad_flags())


def _names_something(output: str, path: Path, flags: list[str]) -> bool:
    return (str(path) in output or "field '" in output
            or any(flag in output for flag in flags if flag.startswith("-")))


def run_cli(runner: CliRunner, data: bytes, flags: list[str]) -> bool:
    """One input through `skyterra launch --dryrun`; checks the contract, True if rejected."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "task.yaml"
        path.write_bytes(data)
        (root / "requirements.txt").write_text("")
        home = root / "home"
        result = runner.invoke(main, ["launch", str(path), "--dryrun", "--cloud", "local",
                                      *flags], env={"SKYTERRA_HOME": str(home)})
        output = result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            repr(result.exception), data[:300], flags)
        assert "Traceback" not in output
        assert result.exit_code in (0, 2), (result.exit_code, output, data[:300], flags)
        if result.exit_code == 2:
            assert output.count("Error") == 1, output
            assert _names_something(output, path, flags), (output, data[:300], flags)
        clusters = home / "clusters"
        assert not clusters.exists() or not any(clusters.iterdir()), list(clusters.iterdir())
        return result.exit_code == 2


@pytest.mark.parametrize("data", _NASTY)
def test_nasty_files(data):
    assert run_cli(CliRunner(), data, [])


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbfrun: x\n",                                     # UTF-8 BOM (Windows editors)
    b"resources: {accelerators: {A100:8, H100}}\nrun: x\n",      # flow set without spaces
    b"run: x\nenvs: {A: &v 1, B: *v}\n",                          # anchors, used sanely
    b"resources: &r {cpus: 2+}\nrun: x\n",
])
def test_odd_but_valid_files(data):
    assert not run_cli(CliRunner(), data, [])


@pytest.mark.timeout(300)
def test_bad_input_fuzz(monkeypatch):
    monkeypatch.delenv("SKYTERRA_FUZZ_UNSET_VAR", raising=False)
    tried: set[tuple[bytes, tuple[str, ...]]] = set()
    bad: set[tuple[bytes, tuple[str, ...]]] = set()
    kinds: dict[str, int] = {}
    runner = CliRunner()
    for data in _NASTY:                 # the hand-made ones every run, then the random ones
        tried.add((data, ()))
        if run_cli(runner, data, []):
            bad.add((data, ()))

    @settings(max_examples=250, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(inputs)
    def check(case):
        kind, data, flags = case
        if run_cli(runner, data, flags):
            bad.add((data, tuple(flags)))
        tried.add((data, tuple(flags)))
        kinds[kind] = kinds.get(kind, 0) + 1

    check()
    print(f"\nbad-input fuzz: {len(tried)} distinct inputs tried, {len(bad)} rejected with "
          f"exit 2, {len(tried) - len(bad)} valid; examples by kind {kinds}")
    assert len(bad) >= 200
