"""The CLI and SDK surface: fast help, show-gpus, dryrun JSON, the names the seed uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import QUICKSTART as SEED

HEAVY = ("fabric", "paramiko", "boto3", "botocore", "python_terraform", "jinja2", "rich")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout


def test_help_imports_nothing_heavy():
    out = _run("import sys\nfrom click.testing import CliRunner\nfrom skyterra.cli import main\n"
               "result = CliRunner().invoke(main, ['--help'])\n"
               "assert result.exit_code == 0, result.output\n"
               f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert out.strip() == "[]"


def test_sdk_exposes_what_the_seed_uses():
    out = _run("import skyterra as sky\n"
               "names = ['Task', 'Resources', 'launch', 'stream_and_get', 'tail_logs', 'exec',"
               " 'queue', 'cancel', 'status', 'down', 'render', 'attach', 'Cluster',"
               " 'TaskError', 'ClusterBusyError']\n"
               "print(all(callable(getattr(sky, n)) for n in names))")
    assert out.strip() == "True"


def test_show_gpus_lists_l4_machines(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from skyterra.cli import main

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["show-gpus", "L4", "--cloud", "aws"])
    assert result.exit_code == 0, result.output
    assert "g6.12xlarge" in result.output


def test_dryrun_json_picks_the_cheapest_l4x4_per_cloud(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from skyterra.cli import main

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    monkeypatch.setenv("SKYTERRA_SSH_CIDRS", "203.0.113.7/32")
    picks = {}
    for cloud in ("aws", "gcp"):
        result = CliRunner().invoke(main, ["launch", str(SEED / "train.yaml"), "--cloud", cloud,
                                           "--dryrun", "--json", "-c", f"dry-{cloud}"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        picks[cloud] = data["candidates"][0]["instance_type"]
        assert (Path(data["rendered_dir"]) / "terraform.tfvars.json").exists()
    assert picks == {"aws": "g6.12xlarge", "gcp": "g2-standard-48"}
    assert not (tmp_path / "clusters").exists() or not any((tmp_path / "clusters").iterdir())


def test_cloud_flag_runs_a_kubernetes_file_on_a_cloud_we_reach(tmp_path, monkeypatch):
    """SkyPilot's override: `--cloud aws` replaces the file's `infra: k8s/CONTEXT`."""
    from click.testing import CliRunner

    from skyterra.cli import main

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    task = tmp_path / "k8s.yaml"
    task.write_text("resources:\n  infra: k8s/my-context\n  accelerators: L4:1\nrun: nvidia-smi\n")
    refused = CliRunner().invoke(main, ["launch", str(task), "--dryrun"])
    assert refused.exit_code != 0 and "pass --cloud CLOUD" in refused.output
    result = CliRunner().invoke(main, ["launch", str(task), "--cloud", "aws", "--dryrun",
                                       "--json", "-c", "k8s-on-aws"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["candidates"][0]["instance_type"] == "g6.xlarge"
    assert "resources: --cloud aws replaces infra: k8s/my-context." in data["notes"]


# What a dry run or a render has no use for: talking to nodes, jobs, running Terraform.
NOT_FOR_RENDERING = ("fabric", "paramiko", "python_terraform", "skyterra.executor",
                     "skyterra.jobs", "skyterra.submission", "skyterra.terraform",
                     "skyterra.provision", "skyterra.launcher", "skyterra.api")


@pytest.mark.parametrize("command", [["launch", "--dryrun", "--cloud", "aws"],
                                     ["launch", "--dryrun", "--cloud", "local", "--json"],
                                     ["render", "--cloud", "aws", "--out", "OUT"]])
def test_dryrun_and_render_import_only_what_they_use(tmp_path, command):
    task = tmp_path / "task.yaml"
    task.write_text("name: light\nnum_nodes: 2\nresources:\n  cpus: 4+\nrun: echo hi\n")
    argv = [str(tmp_path / "out") if word == "OUT" else word for word in command]
    code = ("import sys\nfrom click.testing import CliRunner\nfrom skyterra.cli import main\n"
            f"result = CliRunner().invoke(main, [{argv[0]!r}, {str(task)!r}, *{argv[1:]!r}])\n"
            "assert result.exit_code == 0, result.output\n"
            f"print(sorted(m for m in {NOT_FOR_RENDERING!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60, env={**os.environ, "SKYTERRA_HOME": str(tmp_path / "h")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
