"""Autostop on a cloud cluster: the watcher on the head node, run for real on local nodes.

On AWS, GCP and Azure skyterra installs the one watcher (templates/autostop/
watcher.sh) on the head node over SSH (skyterra/idle_watcher.py). Here it is
installed exactly that way on a real 3-node local cluster (real sshd, real
node namespaces, real job files). The one thing replaced is the cloud's node
action (a guest shutdown, or a compute/ARM API call with the node's identity):
a GCP or Azure compute API cannot exist here and a shutdown would take the
machine down, so each node's action is a recorder that writes what it was told
and when. The "minute" is shortened with SKYTERRA_AUTOSTOP_UNIT_SECONDS for
this test process only.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from skyterra import autostop, idle_watcher, state
from skyterra.clouds import get_cloud
from skyterra.cluster import Cluster
from tests.e2e.helpers import skyterra, wait_for, write_task

pytestmark = pytest.mark.e2e

RECORDER = 'echo "$SKYTERRA_AUTOSTOP_ACTION $(date +%s.%N)" >> "$HOME/autostop-recorded"\n'



def _recorded(home) -> list[str]:
    path = home / "autostop-recorded"
    return path.read_text().split() if path.exists() else []


def test_head_watcher_waits_for_the_job_then_stops_workers_first_then_itself(
        skyterra_home, tmp_path, monkeypatch):
    monkeypatch.setenv(autostop.UNIT_ENV, "3")       # 1 idle "minute" = 3 s
    task = write_task(tmp_path, "num_nodes: 3\nrun: echo ready\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "headwatch", "-y")
    cluster_dir = state.ClusterDir("headwatch")
    record = cluster_dir.load()
    cluster = Cluster.from_record(record, cluster_dir.known_hosts_path)
    homes = [cluster_dir.path / "nodes" / f"headwatch-{k}" / "home" for k in range(3)]
    keys_file = get_cloud("local").authorized_keys_file
    try:
        skyterra("exec", "headwatch", str(write_task(tmp_path, "run: sleep 8\n", "job.yaml")),
                 "-d")
        idle_watcher.install(cluster, autostop.Autostop(1, True, "jobs"),
                             node_action=RECORDER, authorized_keys=keys_file)
        event = homes[0] / idle_watcher.EVENT_FILE
        time.sleep(6)  # the idle time (3 s) passed long ago, but the job still runs
        assert not event.exists() and all(_recorded(h) == [] for h in homes)

        assert wait_for(lambda: all(_recorded(h) for h in homes), 30, step=0.3), \
            [_recorded(h) for h in homes]
        fired = json.loads(event.read_text())
        assert (fired["action"], fired["reason"]) == ("down", "autodowned after 1 min idle")
        actions = {k: _recorded(h) for k, h in enumerate(homes)}
        assert all(a[0] == "down" and len(a) == 2 for a in actions.values()), actions
        # Workers first (fire.sh waits for them), then the head itself.
        assert float(actions[0][1]) >= max(float(actions[k][1]) for k in (1, 2))

        # The head reached the workers with a key of its own, which a worker accepts only
        # from the head's address: from this machine's address the same key is refused.
        key = homes[0] / idle_watcher.AUTOSTOP_DIR / "id_ed25519"
        worker = cluster.nodes[1]
        for node_dir in (cluster_dir.path / "nodes" / f"headwatch-{k}" for k in (1, 2)):
            entry = [line for line in (node_dir / "authorized_keys").read_text().splitlines()
                     if line.endswith(idle_watcher.KEY_TAG)]
            assert len(entry) == 1 and entry[0].startswith(
                f'restrict,command="{idle_watcher.NODE_ACTION}",from="'
                f'{cluster.nodes[0].private_ip}"'), entry
        assert cluster.ssh_key.read_text() not in key.read_text()
        refused = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(key), "-p", str(cluster.ssh_port),
             "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-b", "127.0.0.1", f"{cluster.ssh_user}@{worker.ip}", "true"],
            capture_output=True, text=True, timeout=30, check=False)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused

        idle_watcher.remove(cluster, authorized_keys=keys_file)
        assert not (homes[0] / idle_watcher.AUTOSTOP_DIR).exists()
        for k in (1, 2):
            keys = (cluster_dir.path / "nodes" / f"headwatch-{k}" / "authorized_keys").read_text()
            assert idle_watcher.KEY_TAG not in keys
    finally:
        skyterra("destroy", "headwatch", "-y")


def test_an_interactive_ssh_session_keeps_the_cluster_up_with_jobs_and_ssh(
        skyterra_home, tmp_path, monkeypatch):
    """wait_for: jobs_and_ssh (SkyPilot's default) counts a login; `jobs` would not."""
    monkeypatch.setenv(autostop.UNIT_ENV, "2")
    task = write_task(tmp_path, "run: echo ready\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "sshidle", "-y")
    cluster_dir = state.ClusterDir("sshidle")
    record = cluster_dir.load()
    cluster = Cluster.from_record(record, cluster_dir.known_hosts_path)
    home = cluster_dir.path / "nodes" / "sshidle-0" / "home"
    login = subprocess.Popen(
        ["ssh", "-tt", "-F", "/dev/null", "-i", str(cluster.ssh_key), "-p",
         str(cluster.ssh_port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", f"{cluster.ssh_user}@{cluster.nodes[0].ip}"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        idle_watcher.install(cluster, autostop.Autostop(1, False, "jobs_and_ssh"),
                             node_action=RECORDER, authorized_keys='"$HOME/unused_keys"')
        time.sleep(6)  # idle 2 s: only the open login keeps it up
        assert _recorded(home) == []
        login.stdin.write(b"exit\n")
        login.stdin.flush()
        login.wait(timeout=15)
        assert wait_for(lambda: _recorded(home), 20, step=0.3)
        assert _recorded(home)[0] == "stop"
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
        skyterra("destroy", "sshidle", "-y")
