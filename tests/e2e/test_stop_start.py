"""Idle clusters cost money: stop/start and autostop/autodown on the local cloud.

Real Terraform, real sshd nodes (as root: their own namespaces and overlay
layers), the real watcher script. The autostop "minute" is shortened with the
test-only SKYTERRA_AUTOSTOP_UNIT_SECONDS, set for these subprocesses only.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.helpers import skyterra, wait_for, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e


def _status(name: str) -> dict | None:
    found = [c for c in json.loads(skyterra("status", "--json").stdout) if c["name"] == name]
    return found[0] if found else None



def test_stopped_cluster_keeps_its_files_and_runs_again_after_start(skyterra_home, tmp_path):
    writer = write_task(tmp_path, """
num_nodes: 2
run: |
  echo "kept by rank $SKYPILOT_NODE_RANK" > ~/kept.txt
  echo layer-$SKYPILOT_NODE_RANK > /opt/skyterra-stop-test.txt 2>/dev/null || true
""")
    reader = write_task(tmp_path, """
num_nodes: 2
run: |
  cat ~/kept.txt
  cat /opt/skyterra-stop-test.txt 2>/dev/null || echo "no layer file"
""", name="read.yaml")
    skyterra("launch", str(writer), "--cloud", "local", "-c", "pause", "-y")
    nodes_dir = skyterra_home / "clusters" / "pause" / "nodes"

    stopped = skyterra("stop", "pause")
    assert "Cluster 'pause' stopped" in stopped.stdout
    assert _status("pause")["status"] == "STOPPED"
    table = skyterra("status").stdout
    assert "STOPPED" in table
    assert leftover_processes(str(skyterra_home)) == []        # every node process ended
    for k in (0, 1):
        assert (nodes_dir / f"pause-{k}" / "home" / "kept.txt").exists()   # home kept
    refused = skyterra("exec", "pause", str(reader), check=False)
    assert refused.returncode != 0 and "STOPPED" in refused.stdout + refused.stderr
    plan = skyterra("stop", "pause")
    assert "already stopped" in plan.stdout

    started = skyterra("start", "pause")
    assert "is UP again" in started.stdout
    assert _status("pause")["status"] == "UP"
    again = skyterra("exec", "pause", str(reader))
    assert "(head, rank=0) kept by rank 0" in again.stdout
    assert "(worker1, rank=1) kept by rank 1" in again.stdout
    if os.geteuid() == 0:  # each node's own filesystem layer survived the stop
        assert "(head, rank=0) layer-0" in again.stdout
        assert "(worker1, rank=1) layer-1" in again.stdout

    # Terraform agrees: the cluster's module plans no change after stop/start.
    relaunch = skyterra("launch", str(reader), "-c", "pause", "-y")
    assert "0 to add, 0 to change, 0 to destroy" in relaunch.stderr or \
        "No changes" in relaunch.stderr + relaunch.stdout

    skyterra("destroy", "pause", "-y")
    assert leftover_processes(str(skyterra_home)) == []
    report = json.loads(skyterra("cost-report", "--json").stdout)
    assert [(r["name"], r["status"]) for r in report] == [("pause", "DESTROYED")]


def test_autodown_removes_an_idle_cluster_within_two_minutes_and_says_why(skyterra_home,
                                                                          tmp_path):
    """The one test at the real granularity: 1 idle minute, gone within 2 minutes."""
    task = write_task(tmp_path, """
num_nodes: 2
resources:
  autostop:
    idle_minutes: 1
    down: true
run: echo short job
""")
    skyterra("launch", str(task), "--cloud", "local", "-c", "idle", "-y")
    job_ended = time.monotonic()          # launch returns when the job has ended
    cluster_dir = skyterra_home / "clusters" / "idle"
    time.sleep(45)
    assert not (cluster_dir / "autostop-fired.json").exists()     # not before the minute
    fired = wait_for(lambda: (cluster_dir / "autostop-fired.json").exists(), 75)
    assert fired, "the watcher did not fire"
    assert time.monotonic() - job_ended < 120
    assert wait_for(lambda: leftover_processes(str(skyterra_home)) == [], 15)
    status = skyterra("status")
    assert "cluster 'idle' was autodowned after 1 min idle" in status.stdout
    assert not cluster_dir.exists()
    assert _status("idle") is None
    report = json.loads(skyterra("cost-report", "--json").stdout)
    assert report[0]["status"] == "DESTROYED"
    assert report[0]["reason"] == "autodowned after 1 min idle"


def test_autostop_waits_for_a_running_job_then_stops(skyterra_home, tmp_path, monkeypatch):
    monkeypatch.setenv("SKYTERRA_AUTOSTOP_UNIT_SECONDS", "2")
    task = write_task(tmp_path, "run: sleep 8 && echo done > ~/done.txt\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "busy", "-y", "-d", "-i", "1")
    cluster_dir = skyterra_home / "clusters" / "busy"
    time.sleep(5)  # idle time (2 s) passed long ago, but the job still runs
    assert not (cluster_dir / "autostop-fired.json").exists()
    assert _status("busy")["status"] == "UP"
    assert wait_for(lambda: (cluster_dir / "autostop-fired.json").exists(), 30)
    record = wait_for(lambda: (_status("busy") or {}).get("status") == "STOPPED"
                       and _status("busy"), 20)
    assert record["status_reason"] == "autostopped after 1 min idle"
    home = cluster_dir / "nodes" / "busy-0" / "home"
    assert (home / "done.txt").read_text() == "done\n"     # the job finished first
    assert leftover_processes(str(skyterra_home)) == []
    skyterra("start", "busy")                                 # the watcher comes back
    assert _status("busy")["autostop"]["idle_minutes"] == 1
    skyterra("autostop", "busy", "--cancel")
    skyterra("destroy", "busy", "-y")
