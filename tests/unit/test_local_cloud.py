"""The local cloud's launch warnings and the PATH its nodes get (no processes started)."""

from __future__ import annotations

import sys

from skyterra.catalog import Candidate
from skyterra.clouds import get_cloud
from skyterra.clouds import local as local_mod
from skyterra.task import Task
from tests.deployments import deployment_for

CPU = Candidate(cloud="local", region="local", zone="local-a", instance_type="local",
                accelerator=None, accelerator_count=0, vcpus=2, memory_gib=24, price=0.0)
TASK = Task.from_yaml_config({"run": "true"})


STORED = {"slot": 3, "ssh_port": 2222, "nodes_dir": "/nonexistent/c/nodes"}


def deploy(**options):
    return deployment_for(TASK, CPU, name="c", options=options, stored=STORED)


def tfvars(**options):
    d = deploy(**options)
    return d.cloud.tfvars(d)


def test_a_normal_user_is_told_that_nodes_share_the_host_filesystem(monkeypatch):
    monkeypatch.setattr(local_mod.os, "geteuid", lambda: 1000)
    [warning] = get_cloud("local").warnings(deploy())
    assert "share this machine's filesystem outside their HOME" in warning
    assert "run as root" in warning


def test_root_gets_no_sharing_warning(monkeypatch):
    monkeypatch.setattr(local_mod.os, "geteuid", lambda: 0)
    assert get_cloud("local").warnings(deploy()) == []


def test_nodes_find_the_environment_skyterra_runs_from_first(monkeypatch):
    monkeypatch.setenv("PATH", f"/usr/bin:{sys.prefix}/bin:/bin:")
    path = tfvars()["node_path"].split(":")
    assert path == [f"{sys.prefix}/bin", "/usr/bin", "/bin"]  # first, once, no empty entry


def test_an_explicit_node_path_option_wins(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    assert tfvars(node_path="/opt/x/bin:/usr/bin")["node_path"] == "/opt/x/bin:/usr/bin"


def test_root_also_needs_unshare_and_chroot(monkeypatch):
    monkeypatch.setattr(local_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(local_mod.os.path, "exists", lambda path: False)
    monkeypatch.setattr(local_mod.shutil, "which",
                        lambda tool: None if tool == "unshare" else f"/usr/bin/{tool}")
    report = get_cloud("local").check_credentials()
    assert not report.ok and "unshare" in report.detail


def test_128_nodes_are_offered_and_more_than_a_slash_24_holds_is_explained():
    from skyterra import optimizer
    from skyterra.errors import TaskError

    local = get_cloud("local")
    big = Task.from_yaml_config({"num_nodes": 128, "run": "true"})
    assert optimizer.optimize(big, [local])[0].num_nodes == 128
    too_big = Task.from_yaml_config({"num_nodes": 300, "run": "true"})
    try:
        optimizer.optimize(too_big, [local])
    except TaskError as error:
        assert f"at most {local_mod.MAX_NODES} nodes" in str(error)
    else:
        raise AssertionError("300 local nodes were offered")
