"""The CLI and SDK surface: fast help, show-gpus, dryrun JSON, the names the seed uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
