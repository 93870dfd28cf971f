"""Faults on the local cloud: each leaves nothing behind, or says exactly what to do."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import kill_node, skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e


def _launch_in_background(task, name, env=None):
    return subprocess.Popen([sys.executable, "-m", "skyterra.cli", "launch", str(task),
                             "--cloud", "local", "-c", name, "-y"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def _wait_for(stream, needle, timeout=120):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}; got:\n{''.join(seen)}")


def test_apply_failing_half_way_removes_the_new_cluster(skyterra_home, tmp_path):
    from skyterra.clouds.local import choose_slot, node_ip, ssh_port_for
    from skyterra.state import clusters_root

    slot = choose_slot(str(clusters_root() / "half"), set())
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((node_ip(slot, 1), ssh_port_for(slot)))  # worker1's address is taken
    squatter.listen()
    try:
        task = write_task(tmp_path, "num_nodes: 2\nrun: echo never\n")
        result = skyterra("launch", str(task), "--cloud", "local", "-c", "half", "-y",
                          check=False)
    finally:
        squatter.close()
    assert result.returncode == 1
    assert "half-worker1" in result.stderr and "Address already in use" in result.stderr
    assert "Nothing was left behind" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (skyterra_home / "clusters" / "half").exists()
    assert leftover_processes(str(skyterra_home)) == []
    assert json.loads(skyterra("status", "--json").stdout) == []


def test_ctrl_c_during_apply_keeps_a_record_that_destroy_cleans(skyterra_home, tmp_path):
    task = write_task(tmp_path, "num_nodes: 2\nrun: echo never\n")
    client = _launch_in_background(task, "interrupted", {"SKYTERRA_LOCAL_BOOT_DELAY": "20"})
    try:
        _wait_for(client.stderr, "Creating...")
        time.sleep(1.0)  # the nodes' sshd are up, their create is still running
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode != 0 and "Traceback" not in err
    status = json.loads(skyterra("status", "--json").stdout)
    assert [c["name"] for c in status] == ["interrupted"]
    skyterra("destroy", "interrupted", "-y")
    assert leftover_processes(str(skyterra_home)) == []
    assert not (skyterra_home / "clusters" / "interrupted").exists()


def test_node_killed_during_setup_is_named_then_repaired_by_launch(skyterra_home, tmp_path):
    task = write_task(tmp_path, """
num_nodes: 2
setup: |
  echo setup-started
  sleep 6
run: echo "ran on $SKYPILOT_NODE_RANK"
""")
    client = _launch_in_background(task, "repair")
    try:
        _wait_for(client.stdout, "setup-started")
        kill_node(skyterra_home / "clusters" / "repair" / "nodes" / "repair-1")
        _, err = client.communicate(timeout=120)
        assert client.returncode != 0
        assert "worker1" in err and "Traceback" not in err
        assert "skyterra launch" in err  # says how to repair

        again = skyterra("launch", str(task), "-c", "repair", "-y")
        assert "do not answer; replacing them" in again.stderr
        assert "ran on 0" in again.stdout and "ran on 1" in again.stdout
    finally:
        if client.poll() is None:
            client.kill()
        skyterra("destroy", "repair", "-y")
    assert leftover_processes(str(skyterra_home)) == []


def test_second_launch_on_a_busy_cluster_is_refused(skyterra_home, tmp_path):
    task = write_task(tmp_path, "num_nodes: 1\nsetup: sleep 5\nrun: echo first-done\n")
    first = _launch_in_background(task, "busy")
    try:
        _wait_for(first.stderr, "running setup")
        second = skyterra("launch", str(task), "-c", "busy", "-y", check=False)
        assert second.returncode == 1
        assert "cluster 'busy' is busy (pid" in second.stderr
        out, _ = first.communicate(timeout=120)
        assert first.returncode == 0 and "first-done" in out
        status = json.loads(skyterra("status", "--json").stdout)
        assert status[0]["status"] == "UP" and len(status[0]["nodes"]) == 1
    finally:
        if first.poll() is None:
            first.kill()
        skyterra("destroy", "busy", "-y")


@pytest.mark.parametrize("lost", ["cluster.json", "terraform.tfstate", "module files"])
def test_destroy_after_part_of_the_cluster_dir_was_deleted(skyterra_home, tmp_path, lost):
    task = write_task(tmp_path, "num_nodes: 2\nrun: echo up\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "damaged", "-y")
    directory = skyterra_home / "clusters" / "damaged"
    if lost == "module files":
        for path in directory.glob("*.tf"):
            path.unlink()
    else:
        (directory / lost).unlink()
    result = skyterra("destroy", "damaged", "-y", check=False)
    assert result.returncode == 0, result.stderr
    assert not directory.exists()
    assert leftover_processes(str(skyterra_home)) == []


def test_missing_cloud_credentials_fail_before_anything_is_recorded(skyterra_home, tmp_path):
    from tests.e2e.helpers import SEED

    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ""}
    result = skyterra("launch", str(SEED / "train.yaml"), "--cloud", "aws", "-y",
                      check=False, env=env)
    assert result.returncode == 2
    assert "cannot use aws" in result.stderr and "aws configure" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (skyterra_home / "clusters").exists() or not any(
        (skyterra_home / "clusters").iterdir())


def test_full_disk_gives_a_clear_error_and_leaves_nothing_running(tmp_path, monkeypatch):
    """SKYTERRA_HOME on a tiny tmpfs (root only): the launch fails cleanly."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(small)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("SKYTERRA_HOME", str(small / "home"))
        task = write_task(tmp_path / "task", "num_nodes: 2\nrun: echo hi\n")
        (small / "filler").write_bytes(b"x" * 40 * 1024)
        result = skyterra("launch", str(task), "--cloud", "local", "-c", "full", "-y",
                          check=False)
        assert result.returncode in (1, 2), result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "No space left on device" in result.stderr
        assert "Nothing was left behind" in result.stderr
        assert not any((small / "home" / "clusters").iterdir())
        assert leftover_processes(str(small)) == []
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
