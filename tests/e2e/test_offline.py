"""Commands that must work without a network do, inside a namespace with no interfaces.

`unshare -n` gives the command a network namespace of its own with nothing in
it, not even a loopback address that is up: any connection attempt fails at
once. The home is empty and no SKYTERRA_* setting is passed: what a new user
has before configuring anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TASK = REPO / "examples" / "quickstart" / "train.yaml"
# Azure sells no L4: the quickstart's L4:4 is asked there as T4:4 (same GPUs per node).
GPUS = {"azure": ["--gpus", "T4:4"]}

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                 reason="network namespaces need root and unshare")]


def offline(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYTERRA_")}
    env["SKYTERRA_HOME"] = str(home)
    return subprocess.run(["unshare", "-n", sys.executable, "-m", "skyterra.cli", *args],
                          capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


def test_the_namespace_really_has_no_network(tmp_path):
    probe = subprocess.run(["unshare", "-n", sys.executable, "-c",
                            "import socket; socket.create_connection(('127.0.0.1', 9), 2)"],
                           capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode != 0 and "Network is unreachable" in probe.stderr


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "local"])
def test_dryrun_needs_no_network_and_no_settings(cloud, tmp_path):
    done = offline(tmp_path / "home", "launch", str(TASK), "--dryrun", "-y", "--cloud", cloud,
                   *GPUS.get(cloud, []), "-c", "offline", "--out", str(tmp_path / "module"),
                   "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["candidates"][0]["cloud"] == cloud
    if cloud != "local":
        assert any("detected at launch" in note for note in result["notes"])
    assert (tmp_path / "module" / "terraform.tfvars.json").exists()


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_render_needs_no_network_and_no_settings(cloud, tmp_path):
    done = offline(tmp_path / "home", "render", str(TASK), "--cloud", cloud,
                   *GPUS.get(cloud, []), "--out", str(tmp_path / "module"), "-c", "offline")
    assert done.returncode == 0, done.stdout + done.stderr
    tfvars = json.loads((tmp_path / "module" / "terraform.tfvars.json").read_text())
    assert "ssh_cidrs" not in tfvars and "ssh_source_ranges" not in tfvars


@pytest.mark.parametrize("args", [("show-gpus",), ("show-gpus", "L4"), ("check",),
                                  ("status",), ("status", "--json")])
def test_read_only_commands_need_no_network(args, tmp_path):
    done = offline(tmp_path / "home", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_queue_of_an_unknown_cluster_is_a_clear_error_offline(tmp_path):
    done = offline(tmp_path / "home", "queue", "nope")
    assert done.returncode != 0 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
