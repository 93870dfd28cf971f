"""Task: the seed files parse, Python and YAML build the same task, and bad YAML fails well.

The bad-YAML cases run the real `skyterra launch FILE --dryrun --cloud local`
in a subprocess: exit code 2, one `Error:` paragraph naming the file and the
field, no traceback, no cluster directory. The subprocesses run concurrently
(one module-scoped batch), each case is still its own test.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

import skyterra
from skyterra.errors import NotSupportedError, TaskError
from skyterra.resources import Resources
from skyterra.task import MAX_YAML_BYTES, Task, load_yaml_text, substitute_env
from tests.paths import QUICKSTART

SKYTERRA = shutil.which("skyterra", path=f"{Path(sys.executable).parent}{os.pathsep}"
                        f"{os.environ.get('PATH', '')}") or "skyterra"


def seed(name: str) -> Path:
    """A file of the quickstart in examples/quickstart/ (part of the checkout)."""
    return QUICKSTART / name


# --- valid inputs ------------------------------------------------------------------------
def test_seed_train_yaml():
    task = Task.from_yaml(seed("train.yaml"))
    assert task.name == "minGPT-ddp"
    assert task.num_nodes == 1
    assert len(task.resources) == 1
    r = task.resources[0]
    assert r.accelerator == ("L4", 4) and r.cpus == "4+"
    assert task.setup.startswith("git clone --depth 1")
    assert "torchrun" in task.run and "$SKYPILOT_NUM_GPUS_PER_NODE" in task.run
    assert task.num_gpus_per_node == 4
    assert task.source == str(seed("train.yaml"))


def test_seed_train_multinode_yaml():
    task = Task.from_yaml(seed("train-multinode.yaml"))
    assert task.num_nodes == 2
    assert task.resources[0].accelerator == ("L4", 4)
    assert "${SKYPILOT_NODE_RANK}" in task.run      # not substituted: the node's shell does it


def _sdk_task_from_seed_script() -> Task:
    """Evaluate the `sky.Task(...)` expression of seed/train.py (without launching)."""
    tree = ast.parse(seed("train.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                getattr(node.value.func, "attr", "") == "Task":
            code = compile(ast.Expression(node.value), "train.py", "eval")
            return eval(code, {"sky": skyterra})
    raise AssertionError("no sky.Task(...) in seed/train.py")


def test_seed_train_py_sdk_lists_of_commands():
    task = _sdk_task_from_seed_script()
    assert isinstance(task, skyterra.Task)
    assert task.setup.splitlines()[0] == \
        "git clone --depth 1 https://github.com/pytorch/examples || true"
    assert task.run.splitlines() == [
        "cd examples/mingpt", "export LOGLEVEL=INFO",
        "torchrun --nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE main.py"]
    assert task.resources == Task.from_yaml(seed("train.yaml")).resources


def same_task(a: Task, b: Task) -> None:
    for attr in ("name", "setup", "run", "envs", "secrets", "num_nodes", "file_mounts",
                 "resources", "resources_ordered", "workdir"):
        assert getattr(a, attr) == getattr(b, attr), attr
    assert a.to_yaml_config() == b.to_yaml_config()


CONFIG = {
    "name": "demo",
    "workdir": "src",
    "num_nodes": 2,
    "resources": {"infra": "aws/us-east-1/us-east-1a", "accelerators": {"A100": 8},
                  "cpus": "8+", "memory": "64+", "use_spot": True, "disk_size": 200,
                  "ports": [8080], "labels": {"team": "ml"}},
    "envs": {"BATCH": 32, "MODEL": "gpt2", "TOKEN": None},
    "secrets": {"HF_TOKEN": None},
    "file_mounts": {"/data": "data"},
    "setup": "pip install -r requirements.txt",
    "run": ["echo start", "python train.py"],
}


def test_python_task_equals_yaml_task(tmp_path):
    from_yaml = Task.from_yaml_config(CONFIG, base_dir=tmp_path)
    r = CONFIG["resources"]
    from_python = Task(name="demo", workdir="src", num_nodes=2,
                       resources=Resources(**r), envs=CONFIG["envs"],
                       secrets=CONFIG["secrets"], file_mounts=CONFIG["file_mounts"],
                       setup=CONFIG["setup"], run=CONFIG["run"], base_dir=tmp_path)
    same_task(from_yaml, from_python)
    assert from_yaml.run == "echo start\npython train.py"
    assert from_yaml.envs == {"BATCH": "32", "MODEL": "gpt2", "TOKEN": None}
    res = from_yaml.resources[0]
    assert (res.cloud, res.region, res.zone) == ("aws", "us-east-1", "us-east-1a")


def test_yaml_round_trip(tmp_path):
    task = Task.from_yaml_config(CONFIG, base_dir=tmp_path)
    again = Task.from_yaml_config(task.to_yaml_config(), base_dir=tmp_path)
    same_task(task, again)


def test_yaml_file_and_config_agree(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    same_task(Task.from_yaml(path), Task.from_yaml_config(CONFIG, base_dir=tmp_path))


def test_list_of_resources_from_python_is_ordered():
    listed = Task(run="x", resources=[Resources(accelerators="L4:4"),
                                      Resources(accelerators="H100:1")])
    assert listed.resources_ordered is True
    assert [r.accelerator for r in listed.resources] == [("L4", 4), ("H100", 1)]


def test_required_env_null_and_overrides():
    task = Task.from_yaml_config({"run": "x", "envs": {"KEY": None, "B": "1"}}, source="t.yaml")
    with pytest.raises(TaskError) as info:
        task.check_required_envs()
    assert "--env KEY=" in str(info.value) and "t.yaml" in str(info.value)
    assert "envs.KEY" in str(info.value)
    task.update_envs({"KEY": "v"})
    task.check_required_envs()
    assert task.envs == {"KEY": "v", "B": "1"}


def test_required_secret_names_the_secret_flag():
    task = Task.from_yaml_config({"run": "x", "secrets": {"TOKEN": None}})
    with pytest.raises(TaskError, match="--secret TOKEN="):
        task.check_required_envs()


def test_env_overrides_beat_the_yaml():
    task = Task.from_yaml_config({"run": "x", "envs": {"A": "yaml"}}, env_overrides={"A": "cli"})
    assert task.envs["A"] == "cli"


def test_var_substitution_only_in_workdir_and_file_mounts(tmp_path):
    task = Task.from_yaml_config({
        "workdir": "${PROJECT}/src",
        "file_mounts": {"/remote/${PROJECT}": "$PROJECT/data", "/other": "${UNSET}/x"},
        "envs": {"PROJECT": "proj"},
        "setup": "echo ${PROJECT}", "run": "echo $PROJECT",
    }, base_dir=tmp_path)
    assert task.workdir == tmp_path / "proj" / "src"
    assert task.resolved_file_mounts() == {"/remote/proj": tmp_path / "proj" / "data",
                                           "/other": tmp_path / "${UNSET}" / "x"}
    assert task.setup == "echo ${PROJECT}" and task.run == "echo $PROJECT"
    assert substitute_env("$A-${B}-$C", {"A": "1", "B": "2", "C": None}) == "1-2-$C"


def test_check_local_paths(tmp_path):
    task = Task.from_yaml_config({"workdir": "missing", "run": "x"}, base_dir=tmp_path,
                                 source="t.yaml")
    with pytest.raises(TaskError, match="workdir"):
        task.check_local_paths()
    (tmp_path / "missing").mkdir()
    task.check_local_paths()
    task = Task.from_yaml_config({"file_mounts": {"/a": "nope"}, "run": "x"},
                                 base_dir=tmp_path)
    with pytest.raises(TaskError, match="file_mounts./a"):
        task.check_local_paths()


def test_yaml_merge_keys_override_like_yaml_says():
    text = "base: &b {cpus: 4, memory: 8}\nr:\n  <<: *b\n  cpus: 8\n"
    assert load_yaml_text(text, "f") == yaml.safe_load(text)
    with pytest.raises(TaskError, match="appears twice"):
        load_yaml_text("r:\n  <<: {a: 1}\n  cpus: 8\n  cpus: 9\n", "f")


@pytest.mark.parametrize("config, field", [
    ({"run": "x", "setup": {"a": 1}}, "setup"),
    ({"run": 42}, "run"),
    ({"run": ["ok", 1]}, "run"),
    ({"run": "x", "envs": ["A"]}, "envs"),
    ({"run": "x", "envs": {"1BAD": "x"}}, "envs.1BAD"),
    ({"run": "x", "envs": {"A": {"b": 1}}}, "envs.A"),
    ({"run": "x", "envs": {"A": "1"}, "secrets": {"A": "2"}}, "secrets"),
    ({"run": "x", "num_nodes": "two"}, "num_nodes"),
    ({"run": "x", "name": ""}, "name"),
    ({"run": "x", "workdir": 3}, "workdir"),
    ({"run": "x", "workdir": "https://github.com/a/b"}, "workdir"),
    ({"run": "x", "file_mounts": {"/d": "gs://b"}}, "file_mounts./d"),
    ({"run": "x", "file_mounts": {"": "x"}}, "file_mounts"),
    ({"run": "x", "file_mounts": "x"}, "file_mounts"),
    ({"run": "x", "reources": {}}, "reources"),
    ({"run": "x", "service": {}}, "service"),
])
def test_bad_task_fields_in_process(config, field):
    with pytest.raises(TaskError) as info:
        Task.from_yaml_config(config, source="t.yaml")
    assert f"t.yaml: field '{field}'" in str(info.value), str(info.value)


def test_sdk_errors_name_the_field_too():
    with pytest.raises(TaskError, match="field 'num_nodes'"):
        Task(run="x", num_nodes=0)
    with pytest.raises(NotSupportedError, match="field 'run'"):
        Task(run=print)
    with pytest.raises(TaskError, match="field 'resources'"):
        Task(run="x", resources="L4:4")
    with pytest.raises(TaskError, match="field '--env.1X'"):
        Task(run="x").update_envs({"1X": "y"})


# --- bad YAML through the real CLI -------------------------------------------------------
def _y(resources: str = "", top: str = "", run: str = "run: echo hi\n") -> str:
    """The seed task with a few lines added to the top level or to resources."""
    return f"name: t\n{top}resources:\n  cpus: 4+\n  accelerators: L4:4\n{resources}{run}"


_BOMB = "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi"))
_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + _BOMB + "run: x\n"

# id -> (file content (str/bytes) or a marker, extra CLI args, texts the error must contain)
BAD = {
    "unknown-top-key": ("reources:\n  cpus: 4\nrun: x\n", [],
                        ["field 'reources'", "Did you mean 'resources'"]),
    "misspelled-resource-key": (_y("  acelerators: H100\n"), [],
                                ["resources.acelerators", "Did you mean 'accelerators'"]),
    "num-nodes-string": (_y(top="num_nodes: two\n"), [], ["num_nodes", "1 to 512"]),
    "num-nodes-0": (_y(top="num_nodes: 0\n"), [], ["num_nodes", "1 to 512"]),
    "num-nodes-negative": (_y(top="num_nodes: -1\n"), [], ["num_nodes"]),
    "num-nodes-float": (_y(top="num_nodes: 1.5\n"), [], ["num_nodes", "whole number"]),
    "num-nodes-bool": (_y(top="num_nodes: true\n"), [], ["num_nodes"]),
    "num-nodes-600": (_y(top="num_nodes: 600\n"), [], ["num_nodes", "1 to 512"]),
    "accelerator-count-x": ("resources:\n  accelerators: 'L4:x'\nrun: x\n", [],
                            ["resources.accelerators", "'L4:4'"]),
    "accelerator-count-0": ("resources:\n  accelerators: 'L4:0'\nrun: x\n", [],
                            ["resources.accelerators", "1 to 64"]),
    "accelerator-unknown": ("resources:\n  accelerators: 'FOO:4'\nrun: x\n", [],
                            ["resources.accelerators", "unknown accelerator 'FOO'"]),
    "accelerator-empty": ("resources:\n  accelerators: ''\nrun: x\n", [],
                          ["resources.accelerators", "Known accelerators"]),
    "accelerator-list-bad-item": ("resources:\n  accelerators: [L4:4, 'BAD:2']\nrun: x\n", [],
                                  ["resources.accelerators[1]", "'BAD'"]),
    "accelerator-count-huge": ("resources:\n  accelerators: 'L4:1e400'\nrun: x\n", [],
                               ["resources.accelerators", "1 to 64"]),
    "cpus-lots": (_y("  memory: 8\n").replace("cpus: 4+", "cpus: lots"), [],
                  ["resources.cpus", "'4+'"]),
    "memory-negative": (_y("  memory: -4\n"), [], ["resources.memory"]),
    "disk-size-big": (_y("  disk_size: big\n"), [], ["resources.disk_size", "GB"]),
    "ports-70000": (_y("  ports: 70000\n"), [], ["resources.ports", "65535"]),
    "labels-bad-key": (_y("  labels:\n    'Bad Key!': x\n"), [],
                       ["resources.labels", "lowercase"]),
    "use-spot-yes-please": (_y("  use_spot: yes please\n"), [],
                            ["resources.use_spot", "true or false"]),
    "envs-list": (_y(top="envs: [A, B]\n"), [], ["field 'envs'", "mapping"]),
    "env-key-digit": (_y(top="envs:\n  1BAD: x\n"), [], ["envs.1BAD", "environment variable"]),
    "setup-mapping": (_y(top="setup:\n  pip: install\n"), [], ["field 'setup'", "string"]),
    "run-number": (_y(run="run: 42\n"), [], ["field 'run'", "string"]),
    "service-unsupported": (_y(top="service:\n  readiness_probe: /\n"), [],
                            ["field 'service'", "not supported"]),
    "volumes-unsupported": (_y(top="volumes:\n  /mnt: vol\n"), [],
                            ["field 'volumes'", "not supported"]),
    "config-unsupported": (_y(top="config:\n  aws: {vpc_name: x}\n"), [],
                           ["field 'config.aws.vpc_name'", "config.aws is not applied"]),
    "bucket-file-mount": (_y(top="file_mounts:\n  /data: ftp://bucket/path\n"), [],
                          ["file_mounts./data", "not a bucket URL"]),
    "storage-file-mount": (_y(top="file_mounts:\n  /data:\n    source: gs://b\n"), [],
                           ["file_mounts./data.source", "not a valid GCS bucket name"]),
    "cloud-awz": (_y("  cloud: awz\n"), [], ["resources.cloud", "Did you mean 'aws'"]),
    # (`cloud: kubernetes` in the file is refused without --cloud: the corpus's
    # kubernetes-refused.yaml; any --cloud replaces it, SkyPilot's override)
    "cloud-flag-kubernetes": (_y("  cloud: kubernetes\n"), ["--cloud", "kubernetes"],
                              ["--cloud", "'kubernetes' is not supported"]),
    "infra-empty-region": (_y("  infra: aws//x\n"), [],
                           ["resources.infra", "cloud[/region[/zone]]"]),
    "any-of-bad-item": (_y("  any_of:\n    - cloud: aws\n    - clod: gcp\n"), [],
                        ["resources.any_of[1].clod", "Did you mean 'cloud'"]),
    "resources-list": ("resources: [L4:4]\nrun: x\n", [], ["field 'resources'", "mapping"]),
    "empty-file": ("", [], ["empty", "run:"]),
    "comments-only": ("# nothing here\n", [], ["empty"]),
    "top-level-list": ("- run: x\n- run: y\n", [], ["mapping", "not a list"]),
    "top-level-string": ("just some text\n", [], ["mapping", "not a str"]),
    "tab-indent": ("name: t\nresources:\n\tcpus: 4\nrun: x\n", [],
                   ["line 3", "invalid YAML"]),
    "bad-indent": ("name: t\nresources:\n  cpus: 4\n   memory: 8\nrun: x\n", [],
                   ["line 4", "invalid YAML"]),
    "unclosed-quote": ("name: 't\nrun: x\n", [], ["line", "invalid YAML"]),
    "duplicate-key": ("name: a\nrun: x\nname: b\n", [], ["line 3", "'name' appears twice"]),
    "duplicate-nested-key": ("resources:\n  cpus: 4\n  cpus: 8\nrun: x\n", [],
                             ["line 3", "'cpus' appears twice"]),
    "python-tag": ("run: !!python/object/apply:os.system ['id']\n", [], ["invalid YAML"]),
    "binary-file": (b"\x7fELF\x02\x01\x01\x00\x00\x00", [], ["binary"]),
    "non-utf8": (b"name: caf\xe9\nrun: x\n", [], ["UTF-8"]),
    "yaml-bomb": (_BOMB, [], ["more than", "anchors"]),
    "huge-file": ("run: |\n" + ("  echo " + "x" * 120 + "\n") * (2 * MAX_YAML_BYTES // 128),
                  [], ["larger than", "KiB"]),
    "huge-integer": ("num_nodes: " + "9" * 5000 + "\nrun: x\n", [], ["value"]),
    "deep-nesting": ("run: " + "[" * 3000 + "]" * 3000 + "\n", [], ["nested"]),
    "directory": ("<dir>", [], ["is a directory"]),
    "missing-file": ("<missing>", [], ["not found"]),
    "required-env": (_y(top="envs:\n  KEY: null\n"), [], ["envs.KEY", "--env KEY="]),
    "required-secret": (_y(top="secrets:\n  TOKEN: null\n"), [], ["secrets.TOKEN",
                                                                 "--secret TOKEN="]),
    "env-flag-unset-var": (_y(), ["--env", "SKYTERRA_TEST_SURELY_UNSET"],
                           ["--env", "SKYTERRA_TEST_SURELY_UNSET=VALUE"]),
    "env-flag-bad-key": (_y(), ["--env", "1BAD=x"], ["--env.1BAD"]),
    "num-nodes-flag-0": (_y(), ["--num-nodes", "0"], ["--num-nodes", "1 to 512"]),
    "gpus-flag-bad": (_y(), ["--gpus", "L4:x"], ["--gpus", "'L4:4'"]),
    "cloud-flag-bad": (_y(), ["--cloud", "awz"], ["--cloud", "Did you mean 'aws'"]),
}
# A dry run lists these as notes; the launch refuses them before creating anything.
LAUNCH_CASES = {"required-env", "required-secret"}
# Errors about a flag name the flag, not the file (the file is fine).
FLAG_CASES = {"env-flag-unset-var", "env-flag-bad-key", "num-nodes-flag-0", "gpus-flag-bad",
              "cloud-flag-bad", "cloud-flag-kubernetes"}


def _run_case(case: str, root: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    content, args, _ = BAD[case]
    workdir = root / case
    workdir.mkdir()
    path = workdir / "task.yaml"
    if content == "<dir>":
        path.mkdir()
    elif content != "<missing>":
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    home = workdir / "home"
    env = {k: v for k, v in os.environ.items() if k != "SKYTERRA_TEST_SURELY_UNSET"}
    env["SKYTERRA_HOME"] = str(home)
    dry = [] if case in LAUNCH_CASES else ["--dryrun"]
    command = [SKYTERRA, "launch", str(path), *dry, "--cloud", "local", *args]
    if "--cloud" in args:
        command[command.index("--cloud"):command.index("--cloud") + 2] = []
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                            cwd=workdir, check=False)
    return path, home, result


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """All bad cases, run concurrently through the real CLI."""
    root = tmp_path_factory.mktemp("bad-yaml")
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        futures = {case: pool.submit(_run_case, case, root) for case in BAD}
    return {case: future.result() for case, future in futures.items()}


def test_enough_bad_cases():
    assert len(BAD) >= 30


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_yaml_through_the_cli(case, cli_results):
    path, home, result = cli_results[case]
    stderr = result.stderr
    assert result.returncode == 2, (result.returncode, stderr, result.stdout)
    assert "Error:" in stderr, stderr
    assert "Traceback" not in stderr + result.stdout
    assert stderr.count("Error:") == 1, stderr    # one message, not a dump
    if case not in FLAG_CASES:
        assert str(path) in stderr, stderr
    for text in BAD[case][2]:
        assert text in stderr, (text, stderr)
    clusters = home / "clusters"
    assert not clusters.exists() or not any(clusters.iterdir())
    assert not (home / "dryrun").exists() or not any((home / "dryrun").iterdir())
