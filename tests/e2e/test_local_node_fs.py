"""As root, a local node is a machine of its own: its own `/`, /tmp, /dev/shm and PIDs.

Each node's sshd runs in a private mount namespace over a copy-on-write overlay of
the host (templates/local/scripts/node-root.sh). These tests write where a job on a
real VM would (/opt, /usr/local, the Python environment's site-packages, /tmp) and
check that every node sees only its own files, the host sees none, no mount of a
node ever shows up in the host's mount table, and destroy leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes, mounts_under

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason=(
        "a local node has a filesystem of its own only when skyterra runs as root (mount "
        "namespaces + overlayfs); not root, nodes share the host's filesystem by design")),
]

PROBE = Path("/opt/skyterra-probe")


@contextmanager
def host_mounts_watched(root: Path) -> Iterator[list[str]]:
    """Polls the host's /proc/self/mounts while the block runs; yields what it saw under root."""
    seen: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.extend(m for m in mounts_under(str(root)) if m not in seen)
            stop.wait(0.01)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()
        seen.extend(m for m in mounts_under(str(root)) if m not in seen)


def per_rank(output: str, text: str) -> dict[int, str]:
    """{rank: rest of line} for prefixed log lines `(name, rank=R) <text><rest>`."""
    found = {}
    for line in output.splitlines():
        head, sep, rest = line.partition(f") {text}")
        if sep and "rank=" in head:
            found[int(head.rsplit("rank=", 1)[1])] = rest.strip()
    return found


def test_each_node_has_its_own_opt_tmp_and_shm_and_destroy_removes_its_layer(
        skyterra_home, tmp_path):
    assert not PROBE.exists(), f"{PROBE} exists on this machine already; remove it first"
    write = write_task(tmp_path, """
name: probe
num_nodes: 2
run: |
  mkdir -p /opt/skyterra-probe
  echo "$SKYPILOT_NODE_RANK" > /opt/skyterra-probe/rank
  echo "tmp-$SKYPILOT_NODE_RANK" > /tmp/skyterra-probe
  echo "shm-$SKYPILOT_NODE_RANK" > /dev/shm/skyterra-probe
  echo "wrote $(cat /opt/skyterra-probe/rank)"
""")
    read = write_task(tmp_path, """
run: |
  echo "init=$(tr '\\0' ' ' </proc/1/cmdline)"
  echo "opt=$(cat /opt/skyterra-probe/rank) $(cat /tmp/skyterra-probe) $(cat /dev/shm/skyterra-probe)"
""", name="read.yaml")
    nodes = skyterra_home / "clusters" / "probe" / "nodes"
    with host_mounts_watched(skyterra_home) as seen:
        try:
            launched = skyterra("launch", str(write), "--cloud", "local", "-c", "probe", "-y")
            assert per_rank(launched.stdout, "wrote ") == {0: "0", 1: "1"}
            assert not PROBE.exists(), "a node's write to /opt reached the host"
            assert not Path("/tmp/skyterra-probe").exists()
            assert not Path("/dev/shm/skyterra-probe").exists()

            # A second command on each node still finds only that node's own files.
            executed = skyterra("exec", "probe", str(read))
            assert per_rank(executed.stdout, "opt=") == {0: "0 tmp-0 shm-0",
                                                         1: "1 tmp-1 shm-1"}
            # Each node has its own PID namespace: its PID 1 is its sshd.
            inits = per_rank(executed.stdout, "init=")
            assert sorted(inits) == [0, 1]
            for rank, init in inits.items():
                assert "sshd" in init and f"/probe-{rank}/sshd_config" in init, init
            # The writes are in each node's own layer, under its node directory.
            for rank in (0, 1):
                layer = nodes / f"probe-{rank}" / "fs"
                assert (layer / "upper" / "opt" / "skyterra-probe" / "rank").read_text() \
                    == f"{rank}\n"
                assert (layer / "upper" / "tmp" / "skyterra-probe").read_text() == \
                    f"tmp-{rank}\n"
        finally:
            skyterra("destroy", "probe", "-y")
    assert seen == [], "a node's mount showed up in the host's mount table"
    assert not nodes.exists() or list(nodes.iterdir()) == []
    assert not (skyterra_home / "clusters" / "probe").exists()
    assert not PROBE.exists()
    assert leftover_processes(str(skyterra_home)) == []
    assert mounts_under(str(skyterra_home)) == []


def test_writes_into_the_venv_and_usr_local_on_a_node_do_not_change_the_host(
        skyterra_home, tmp_path):
    site = Path(sysconfig.get_paths()["purelib"])  # this venv's: skyterra runs from it
    module = f"skyterra_probe_{uuid.uuid4().hex[:8]}"
    usr_local = Path("/usr/local/lib")
    host_file = site / f"{module}_host.py"  # the node deletes it: a whiteout in its layer
    host_file.write_text("HOST = 1\n")
    site_before, usr_before = sorted(os.listdir(site)), sorted(os.listdir(usr_local))
    task = write_task(tmp_path, f"""
name: venv
run: |
  echo "python=$(command -v python3)"
  site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "site=$site"
  echo 'VALUE = 42' > "$site/{module}.py"
  python3 -c 'import {module}; print("imported", {module}.VALUE)'
  mkdir -p /usr/local/lib/{module} && echo x > /usr/local/lib/{module}/file
  chmod 0 /usr/local/lib/{module}
  rm "$site/{module}_host.py" && [ ! -e "$site/{module}_host.py" ] && echo "deleted on node"
""")
    with host_mounts_watched(skyterra_home) as seen:
        try:
            out = skyterra("launch", str(task), "--cloud", "local", "-c", "venv", "-y").stdout
            # The environment skyterra runs from comes first on the node's PATH ...
            assert f"python={Path(sys.prefix) / 'bin' / 'python3'}" in out
            assert f"site={site}" in out
            # ... and the node could write into it (in its own layer) ...
            assert "imported 42" in out
            assert "deleted on node" in out
            # ... but the host's venv and /usr/local are unchanged.
            assert not (site / f"{module}.py").exists()
            assert sorted(os.listdir(site)) == site_before
            assert sorted(os.listdir(usr_local)) == usr_before
        finally:
            skyterra("destroy", "venv", "-y")
            host_still_there = host_file.exists()
            host_file.unlink(missing_ok=True)
    assert host_still_there
    assert seen == []
    assert sorted(os.listdir(site)) == [name for name in site_before if name != host_file.name]
    assert sorted(os.listdir(usr_local)) == usr_before
    # destroy removed the node's layer, whiteout and unreadable dir included
    assert not (skyterra_home / "clusters" / "venv").exists()
