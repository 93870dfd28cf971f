"""The life of a bucket skyterra creates, beyond the happy path of test_bucket_mounts.py.

* A store that cannot be reached when its last cluster is destroyed: `destroy`
  still finishes and forgets the cluster (its nodes are gone); the
  `persistent: false` bucket is named in a warning with the command to delete
  it later, and keeps its record and Terraform state.
* A local node that shares the host's mounts (not root) unmounts its rclone
  mounts when it goes down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, skyterra, write_task
from tests.leaks import leftover_processes
from tests.storage_emulators import gcs_emulator  # noqa: F401

pytestmark = pytest.mark.e2e


def test_destroy_with_the_store_down_forgets_the_cluster_and_keeps_the_bucket(
        skyterra_home, tmp_path, gcs_emulator):  # noqa: F811
    scratch = f"scratch-{uuid.uuid4().hex[:8]}"
    task = write_task(tmp_path, f"""
file_mounts:
  /scratch:
    name: {scratch}
    store: gcs
    mode: MOUNT
    persistent: false
run: echo written > /scratch/a.txt
""")
    skyterra("launch", str(task), "--cloud", "local", "-c", "bkdown", "-y", timeout=600)
    assert scratch in gcs_emulator.buckets()
    gcs_emulator.stop()

    done = skyterra("destroy", "bkdown", "-y", timeout=600)
    output = done.stdout + done.stderr
    assert f"WARNING: bucket {scratch} (persistent: false) was not deleted" in output
    assert f"skyterra storage delete {scratch}" in output and "Traceback" not in output
    assert leftover_processes(str(skyterra_home)) == []
    assert "bkdown" not in skyterra("status").stdout
    # nothing lost: the record (no cluster left) and the state that still has the bucket
    listed = json.loads(skyterra("storage", "ls", "--json").stdout)
    assert [(b["name"], b["clusters"], b["persistent"]) for b in listed] == [
        (scratch, [], False)]
    state = subprocess.run(["terraform", "state", "list"], cwd=skyterra_home / "storage" /
                           scratch, capture_output=True, text=True, check=True, timeout=120)
    assert state.stdout.split() == ["terraform_data.bucket"]
    # deleting it later, with the store still down, fails clearly and keeps it again
    later = skyterra("storage", "delete", scratch, "-y", check=False, timeout=600)
    assert later.returncode != 0 and f"could not delete bucket gs://{scratch}" in later.stderr
    assert (skyterra_home / "storage" / scratch / "terraform.tfstate").exists()


NODE_DOWN = REPO / "templates" / "local" / "scripts" / "node-down.sh"


def _rclone_serving(point: Path) -> int:
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (argv[0].endswith(b"rclone") and b"mount" in argv[1:2]
                and str(point).encode() in argv):
            return int(proc.name)
    raise AssertionError(f"no rclone serves {point}")


def _mounted(point: Path) -> bool:
    """In this machine's mount table (a dead FUSE mount too, which `mountpoint` misses)."""
    done = subprocess.run(["findmnt", "-n", "--mountpoint", str(point)], check=False,
                          capture_output=True)
    return done.returncode == 0


def test_a_node_sharing_the_hosts_mounts_unmounts_its_rclone_mounts_at_node_down(tmp_path):
    """Not root, a local node has no mount namespace of its own (node-up.sh): its rclone
    mounts are the host's, and would outlive it. node-down.sh unmounts the ones the
    attach script listed, and only rclone's. (The tests run as root, so the node here is
    a node directory without the fs/ layer, exactly what a non-root node-up leaves; its
    rclone mounts are real FUSE mounts in this machine's namespace.)"""
    if not (shutil.which("rclone") and shutil.which("fusermount3") and
            Path("/dev/fuse").exists()):
        pytest.skip("needs rclone, fusermount3 and /dev/fuse")
    node = tmp_path / "nodes" / "n0"
    mounts = node / "home" / ".skyterra" / "mounts"
    mounts.mkdir(parents=True)
    (node / ".skyterra-node").write_text("n0\n")
    source, outside, inside, other = (tmp_path / "src", tmp_path / "data",
                                      node / "home" / "ckpt", tmp_path / "not-ours")
    for path in (source, outside, inside, other):
        path.mkdir()
    (source / "x.txt").write_text("x\n")
    (mounts / "points").write_text(f"{outside}\n{inside}\n{other}\n")
    env = {**os.environ, "SKYTERRA_NODE_ID": str(node), "RCLONE_CONFIG": "/dev/null"}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(other)], check=True)
    try:
        for point in (outside, inside):
            subprocess.run(["rclone", "mount", f":local:{source}", str(point), "--daemon",
                            "--daemon-timeout", "30s"], env=env, check=True, timeout=60)
            assert (point / "x.txt").read_text() == "x\n"
        # the rclone of one mount died hard (a killed node, a crash): its mount is dead
        # but still there, and no TERM to rclone can remove it any more
        os.kill(_rclone_serving(outside), signal.SIGKILL)
        time.sleep(0.2)
        assert _mounted(outside)
        done = subprocess.run(["bash", str(NODE_DOWN)], check=False, env={
            "PATH": os.environ["PATH"], "SKYTERRA_NODE_DIR": str(node),
            "SKYTERRA_NODE_NAME": "n0"}, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert not _mounted(outside) and not _mounted(inside) and not node.exists()
        assert _mounted(other)   # a listed path that is not an rclone mount is left alone
        assert leftover_processes(str(node)) == []
    finally:
        for point in (outside, inside):
            if _mounted(point):
                subprocess.run(["fusermount3", "-u", "-z", str(point)], check=False)
        subprocess.run(["umount", str(other)], check=False)
