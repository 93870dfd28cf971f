"""Injection: user strings are data everywhere, never HCL and never shell.

Task names, env keys/values, secrets, workdir and file_mounts paths and labels
full of `${...}`, `%{...}`, quotes, newlines, `;`, `$(...)`, backticks, spaces
and unicode go through one real 2-node launch on the local cloud; each value
is read back from the nodes and must be byte-identical, and no sentinel
command hidden in them may have run. Labels go through rendered cloud
modules (tfvars only, never a .tf file). Cluster names that some cloud would
refuse are rejected before anything is created.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e

CLUSTER = "inject"


def _payloads(sentinel: Path) -> dict[str, str]:
    """Values that would run `touch SENTINEL-n` if any shell or template evaluated them."""
    return {
        "TF_INTERP": "${path.module} ${var.cluster_name} %{ if true }yes%{ endif } $${x}",
        "SUBST": f"$(touch {sentinel}-1) `touch {sentinel}-2` ; touch {sentinel}-3 ;",
        "QUOTES": "single ' double \" back \\ both '\"' end'",
        "NEWLINES": "line1\nline2\r\n\tline3\n\n",
        "SPACES": "  leading and trailing  ",
        "UNICODE": "naïve ☃ 日本語 \u202e rtl \U0001F680",
        "GLOB": "* ? [a-z] ~ ~root $HOME ${HOME} $1 $@ $$ !! #comment",
        "EMPTY": "",
        "DASH": "-e -n --help",
    }


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _node_lines(stdout: str, label: str, tag: str) -> list[str]:
    prefix = f"{label} {tag}:"
    return [line[len(prefix):] for line in stdout.splitlines() if line.startswith(prefix)]


def _tree(root: Path) -> dict[str, bytes]:
    """Relative path → content of every file under root (symlinks not followed)."""
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _untar(blob: str) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(blob))) as archive:
        for member in archive.getmembers():
            if member.isfile():
                files[member.name.removeprefix("./")] = archive.extractfile(member).read()
    return files


def test_tricky_strings_reach_both_nodes_byte_identical(skyterra_home, tmp_path):
    sentinel = tmp_path / "pwned"
    values = _payloads(sentinel)
    secret = "s3cret ${var.x} $(touch " + str(sentinel) + "-4) 'q' \"d\" `id` ;\nnext ☃"
    cli_secret = "cli;secret $(touch " + str(sentinel) + "-5) %{x} 'q'"
    # Task names follow SkyPilot's rule (no quotes, spaces, `$`, markup): a hostile one
    # is refused before anything exists (tests/unit/test_first_hour.py), so this one
    # only uses every separator the rule allows.
    task_name = "job.1_q--d"

    # A workdir whose own path is hostile; its files too.
    workdir = tmp_path / "work dir 'q' \"d\" $(touch pwned-w) ;x; `id` ${y} ☃"
    (workdir / "sub dir $(x)").mkdir(parents=True)
    (workdir / "main.py").write_text("print('hi')\n")
    (workdir / "sub dir $(x)" / "data ;'\"`.txt").write_bytes(b"\x00\x01 binary \xff\n")
    (workdir / "${var.y} %{z}.cfg").write_text("a = ${var.y}\n")

    # file_mounts: a hostile local file → ~/data dir/$(x);y, a hostile local dir →
    # an absolute path on this machine (the local cloud's nodes share its disk).
    mount_src = tmp_path / "src 'a' \"b\" $(touch pwned-m);c"
    mount_src.mkdir()
    single = mount_src / "file ${v} `id`.bin"
    single.write_bytes(b"mounted\n$(not run)\n")
    mount_dir = tmp_path / "mdir ;$(x) 'q'"
    (mount_dir / "in ner").mkdir(parents=True)
    (mount_dir / "in ner" / "f $(id).txt").write_text("deep ${x}\n")
    (mount_dir / "top.txt").write_text("top\n")
    absolute_root = Path("/tmp") / f"skyterra-inject-{uuid.uuid4().hex[:12]}"
    absolute_target = f"{absolute_root}/a b"
    home_target = "~/data dir/$(x);y"

    envs = {key: value for key, value in values.items()}
    config = {
        "name": task_name,
        "num_nodes": 2,
        "workdir": str(workdir),
        "envs": envs,
        "secrets": {"YAML_SECRET": secret},
        "file_mounts": {home_target: str(single), absolute_target: str(mount_dir)},
        # Every value is printed base64-encoded on one line, so newlines survive
        # the log prefixing; files come back as a base64 tar of the node's copy.
        "run": "\n".join(
            [f"printf 'E:%s=%s\\n' {key} \"$(printf '%s' \"${key}\" | base64 -w0)\""
             for key in [*envs, "YAML_SECRET", "CLI_SECRET", "CLI_ENV"]]
            + ["printf 'ID:%s\\n' \"$SKYPILOT_TASK_ID\"",
               "printf 'PWD:%s\\n' \"$PWD\"",
               "printf 'W:%s\\n' \"$(tar -C ~/sky_workdir -cf - . | base64 -w0)\"",
               "printf 'H:%s\\n' \"$(base64 -w0 < ~/'data dir/$(x);y')\"",
               f"printf 'A:%s\\n' \"$(tar -C '{absolute_target}' -cf - . | base64 -w0)\""]),
    }
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(config, allow_unicode=True))
    cli_env = "from --env: ${x} $(touch " + str(sentinel) + "-7) 'q'\n☃"
    try:
        result = skyterra("launch", str(task), "--cloud", "local", "-c", CLUSTER, "-y",
                          "--env", f"CLI_ENV={cli_env}", "--secret", f"CLI_SECRET={cli_secret}")
        out = result.stdout
        expected = {**values, "YAML_SECRET": secret, "CLI_SECRET": cli_secret,
                    "CLI_ENV": cli_env}
        checked = 0
        for label in ("(head, rank=0)", "(worker1, rank=1)"):
            seen = dict(line.split("=", 1) for line in _node_lines(out, label, "E"))
            for key, value in expected.items():
                assert base64.b64decode(seen[key]).decode() == value, (label, key)
                checked += 1
            task_id = _node_lines(out, label, "ID")[0]
            assert task_id.startswith("sky-") and task_id.endswith(f"_{CLUSTER}_1")
            assert _node_lines(out, label, "PWD")[0].endswith("/sky_workdir")
            assert _untar(_node_lines(out, label, "W")[0]) == _tree(workdir), label
            assert base64.b64decode(_node_lines(out, label, "H")[0]) == single.read_bytes()
            assert _untar(_node_lines(out, label, "A")[0]) == _tree(mount_dir), label
            checked += 4
        assert checked == 2 * (len(expected) + 4)

        # The task name is data too: stored and shown unchanged.
        jobs = json.loads(skyterra("queue", CLUSTER, "--json").stdout)
        assert [job["name"] for job in jobs] == [task_name]
        assert jobs[0]["status"] == "SUCCEEDED"
        table = skyterra("queue", CLUSTER)
        assert task_name in table.stdout and "Traceback" not in table.stderr
        print(f"injection: {checked} values/trees compared on 2 nodes, 0 sentinels fired")
    finally:
        skyterra("destroy", CLUSTER, "-y", check=False)
        shutil.rmtree(absolute_root, ignore_errors=True)
    # Nothing any shell could have run: no sentinel file anywhere we can think of.
    fired = sorted(str(p) for p in tmp_path.glob("pwned*")) + \
        sorted(str(p) for p in Path("/tmp").glob("pwned*"))
    assert fired == []
    assert leftover_processes(str(skyterra_home)) == []


@pytest.mark.parametrize("key", ["A;B", "${X}", "A B", "$(id)", "1A", "A-B", "A\nB", "É"])
def test_env_keys_that_are_not_names_are_rejected(skyterra_home, tmp_path, key):
    task = write_task(tmp_path, yaml.safe_dump({"envs": {key: "v"}, "run": "true"}))
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "never", "-y",
                      check=False)
    assert result.returncode == 2, result.stderr
    assert "not a valid environment variable name" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (skyterra_home / "clusters").exists() or \
        not any((skyterra_home / "clusters").iterdir())


def test_env_keys_from_cli_flags_are_validated(skyterra_home, tmp_path):
    task = write_task(tmp_path, "run: 'true'\n")
    for flag in ("--env", "--secret"):
        result = skyterra("launch", str(task), "--cloud", "local", "-c", "never", "-y",
                          flag, "A;touch x=1", check=False)
        assert result.returncode == 2, result.stderr
        assert "not a valid environment variable name" in result.stderr
    assert not (skyterra_home / "clusters").exists()


BAD_CLUSTER_NAMES = ["Upper", "under_score", "a" * 40, "1abc", "a;b", "${x}", "a b", "-a",
                     "a-", "", "$(id)", "a\nb", "ümlaut", "a.b", "a/b", "..", "%{x}"]


@pytest.mark.parametrize("name", BAD_CLUSTER_NAMES)
def test_cluster_names_some_cloud_would_refuse_are_rejected(skyterra_home, tmp_path, name):
    task = write_task(tmp_path, "run: 'true'\n")
    for args in (["launch", str(task), "--cloud", "local", "-c", name, "-y"],
                 ["launch", str(task), "--cloud", "aws", "-c", name, "--dryrun"],
                 ["exec", "--", name, str(task)],
                 ["destroy", "-y", "--", name]):
        result = skyterra(*args, check=False)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "cluster name" in result.stderr and "Traceback" not in result.stderr, args
    assert not skyterra_home.exists() or not any(
        p for p in skyterra_home.rglob("*") if p.is_file()), sorted(skyterra_home.rglob("*"))


def test_longest_accepted_cluster_name_renders(skyterra_home, tmp_path):
    task = write_task(tmp_path, "run: 'true'\n")
    name = "a" + "-b" * 17  # 35 characters: the longest name every cloud accepts
    out = tmp_path / "out"
    skyterra("launch", str(task), "--cloud", "aws", "-c", name, "--dryrun", "--out", str(out))
    assert json.loads((out / "terraform.tfvars.json").read_text())["cluster_name"] == name


LABEL = "${var.cluster_name}%{ if true }x%{ endif }$(id);'q'\"d\"`id` ☃"


@pytest.mark.parametrize("cloud,gpus,key", [("aws", "L4:1", "labels"),
                                            ("azure", "T4:1", "tags")])
def test_labels_reach_only_the_tfvars(skyterra_home, tmp_path, cloud, gpus, key):
    env_value = "${var.region} %{ for x in y }x%{ endfor }"
    task = write_task(tmp_path, yaml.safe_dump({
        "name": "labels-check",
        "resources": {"accelerators": gpus, "labels": {"team": LABEL, "plain": "v1"}},
        "envs": {"E": env_value}, "run": "echo ${E}"}, allow_unicode=True))
    out = tmp_path / "module"
    skyterra("launch", str(task), "--cloud", cloud, "-c", "labels", "--dryrun",
             "--out", str(out), "--json")
    tfvars = json.loads((out / "terraform.tfvars.json").read_text())
    assert tfvars[key]["team"] == LABEL and tfvars[key]["plain"] == "v1"
    tf_files = sorted(out.rglob("*.tf")) + sorted(out.rglob("*.tftpl"))
    assert tf_files
    for path in tf_files:
        text = path.read_text()
        for value in (LABEL, env_value, "var.ssh_user} %{x}", "$(id)", "☃"):
            assert value not in text, (path, value)
    assert env_value not in (out / "terraform.tfvars.json").read_text()


def test_gcp_refuses_label_values_it_would_reject(skyterra_home, tmp_path):
    task = write_task(tmp_path, yaml.safe_dump({
        "resources": {"accelerators": "L4:1", "labels": {"team": LABEL}}, "run": "true"},
        allow_unicode=True))
    out = tmp_path / "module"
    result = skyterra("launch", str(task), "--cloud", "gcp", "-c", "labels", "--dryrun",
                      "--out", str(out), check=False)
    assert result.returncode == 2
    assert "resources.labels.team" in result.stderr and "Traceback" not in result.stderr
    assert not any(out.rglob("*.tf")) if out.exists() else True
