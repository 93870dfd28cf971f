"""The local cloud's launch warnings and the PATH its nodes get (no processes started)."""

from __future__ import annotations

import sys
from pathlib import Path

from skyterra.clouds import ClusterSpec, get_cloud
from skyterra.clouds import local as local_mod
from skyterra.optimizer import Candidate
from skyterra.task import Task

CPU = Candidate(cloud="local", region="local", zone="local-a", instance_type="local",
                accelerator=None, accelerator_count=0, vcpus=2, memory_gib=24, price=0.0)
TASK = Task.from_yaml_config({"run": "true"})


def spec(**options) -> ClusterSpec:
    return ClusterSpec(name="c", directory=Path("/nonexistent/c"), num_nodes=2,
                       public_key="ssh-ed25519 AAAA x\n",
                       private_key_path=Path("/nonexistent/c/key"), slot=3, options=options)


def test_a_normal_user_is_told_that_nodes_share_the_host_filesystem(monkeypatch):
    monkeypatch.setattr(local_mod.os, "geteuid", lambda: 1000)
    [warning] = get_cloud("local").warnings(TASK, CPU)
    assert "share this machine's filesystem outside their HOME" in warning
    assert "run as root" in warning


def test_root_gets_no_sharing_warning(monkeypatch):
    monkeypatch.setattr(local_mod.os, "geteuid", lambda: 0)
    assert get_cloud("local").warnings(TASK, CPU) == []


def test_nodes_find_the_environment_skyterra_runs_from_first(monkeypatch):
    monkeypatch.setenv("PATH", f"/usr/bin:{sys.prefix}/bin:/bin:")
    path = get_cloud("local").tfvars(TASK, CPU, spec())["node_path"].split(":")
    assert path == [f"{sys.prefix}/bin", "/usr/bin", "/bin"]  # first, once, no empty entry


def test_an_explicit_node_path_option_wins(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    tfvars = get_cloud("local").tfvars(TASK, CPU, spec(node_path="/opt/x/bin:/usr/bin"))
    assert tfvars["node_path"] == "/opt/x/bin:/usr/bin"


def test_root_also_needs_unshare_and_chroot(monkeypatch):
    monkeypatch.setattr(local_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(local_mod.os.path, "exists", lambda path: False)
    monkeypatch.setattr(local_mod.shutil, "which",
                        lambda tool: None if tool == "unshare" else f"/usr/bin/{tool}")
    report = get_cloud("local").check_credentials()
    assert not report.ok and "unshare" in report.detail
