"""Managed jobs on the local cloud: a preempted node is replaced and the run resumes from its
checkpoint; exit codes restart per job_recovery; a killed controller is restarted by queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftovers

pytestmark = pytest.mark.e2e

FAST = {"SKYTERRA_MANAGED_POLL": "0.3", "SKYTERRA_MANAGED_SETTLE": "3"}

# Rank 0 saves the step it reached to ~/ckpt (its node survives a worker's loss: FAILOVER
# replaces only the lost node) and resumes from it. The write is atomic: the run may be
# stopped mid-write when a worker goes.
COUNTER = """
name: counter
num_nodes: 2
resources:
  cloud: local
  job_recovery:
    strategy: FAILOVER
setup: echo "setup on rank $SKYPILOT_SETUP_NODE_RANK"
run: |
  mkdir -p ~/ckpt
  step=0
  if [ "$SKYPILOT_NODE_RANK" = 0 ] && [ -f ~/ckpt/step ]; then
    step=$(cat ~/ckpt/step); echo "resuming from step $step"
  fi
  echo "task=$SKYPILOT_TASK_ID recovery=$SKYTERRA_JOB_RECOVERY_COUNT"
  while [ "$step" -lt 60 ]; do
    step=$((step + 1)); echo "step $step"
    if [ "$SKYPILOT_NODE_RANK" = 0 ]; then   # written whole or not at all
      echo "$step" > ~/ckpt/tmp && mv ~/ckpt/tmp ~/ckpt/step
    fi
    sleep 0.2
  done
"""


def _queue() -> list[dict]:
    return json.loads(skyterra("jobs", "queue", "--json", env=FAST).stdout)


def _job(job_id: int) -> dict:
    return next(j for j in _queue() if j["job_id"] == job_id)


def _wait(job_id: int, until, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(job_id)
        if until(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"managed job {job_id} did not get there: {_job(job_id)}")


def _log(home: Path, job_id: int) -> str:
    return (home / "managed" / str(job_id) / "run.log").read_text()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
    except OSError:
        return False
    return state != "Z"


def _launch(path: Path) -> int:
    return _launch_with(path)


def _launch_with(path: Path, *flags: str) -> int:
    out = skyterra("jobs", "launch", str(path), "-d", "-y", *flags, env=FAST).stdout
    return int(out.split("Managed job ", 1)[1].split()[0])


@pytest.fixture
def managed(skyterra_home):
    """Controllers this test started are stopped (by pid) and clusters destroyed if it fails."""
    yield skyterra_home
    root = skyterra_home / "managed"
    for record in (root.glob("*/job.json") if root.is_dir() else []):
        job = json.loads(record.read_text())
        if _alive(job.get("controller_pid")) and job["status"] not in (
                "SUCCEEDED", "FAILED", "CANCELLED"):
            os.kill(job["controller_pid"], signal.SIGKILL)
    for cluster in (skyterra_home / "clusters").glob("*/cluster.json"):
        skyterra("destroy", "-y", cluster.parent.name, check=False)


def _nothing_left(home: Path, job: dict) -> None:
    deadline = time.monotonic() + 10   # the controller exits right after its last write
    while _alive(job["controller_pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(job["controller_pid"])
    assert leftovers(str(home)) == []
    assert not (home / "clusters" / job["cluster_name"]).exists()   # cluster dir and lock
    assert not (home / "managed" / str(job["job_id"]) / "controller.lock").exists()


def test_a_preempted_node_is_replaced_and_the_run_resumes_from_its_checkpoint(managed,
                                                                              tmp_path):
    job_id = _launch(write_task(tmp_path, COUNTER))
    job = _wait(job_id, lambda j: j["status"] == "RUNNING")
    deadline = time.monotonic() + 60
    while "step 8\n" not in _log(managed, job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    # the cloud's notice first (the node's watcher reports it), then the node goes
    subprocess.run([sys.executable, "-m", "skyterra.clouds.local", "notice",
                    job["cluster_name"], "1", "spot capacity reclaimed"], check=True,
                   capture_output=True, timeout=60)
    notice = "NOTICE: worker1: local cloud preemption notice: spot capacity reclaimed"
    deadline = time.monotonic() + 30
    while notice not in _log(managed, job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert notice in _log(managed, job_id)
    subprocess.run([sys.executable, "-m", "skyterra.clouds.local", "preempt",
                    job["cluster_name"], "1"], check=True, capture_output=True, timeout=60)
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    log = _log(managed, job_id)
    assert done["status"] == "SUCCEEDED", (done, log)
    assert "NOTICE" in [e["event"] for e in done["events"]]
    assert done["recovery_count"] == 1 and done["down_time"] > 0
    resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines()
               if "(head, rank=0) resuming from step" in line]
    assert resumed and resumed[0] > 0, log
    assert f"task={done['task_id']} recovery=1" in log          # same task id, counted
    assert log.count(f"task={done['task_id']} recovery=0") == 2   # first attempt, 2 nodes
    assert "RECOVERING: node(s) worker1" in log and "RECOVERED: recovery 1" in log
    assert "(head, rank=0) step 60" in log
    events = [json.loads(line)["event"] for line in
              (managed / "managed" / str(job_id) / "events.jsonl").read_text().splitlines()]
    assert events[:2] == ["STARTING", "RUNNING"] and events[-1] == "SUCCEEDED"
    _nothing_left(managed, done)


EXIT_CODES = """
name: flaky
resources:
  cloud: local
  job_recovery:
    max_restarts_on_errors: 2
    recover_on_exit_codes: [33]
run: |
  n=$(cat ~/attempts 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ~/attempts
  echo "attempt $n recovery=$SKYTERRA_JOB_RECOVERY_COUNT"
  exit ${CODE}
"""


def test_a_listed_exit_code_is_restarted_n_times_then_failed(managed, tmp_path):
    """33 is in recover_on_exit_codes: restarted max_restarts_on_errors (2) times, each
    restart counted, then FAILED."""
    job_id = _launch(write_task(tmp_path, EXIT_CODES.replace("${CODE}", "33")))
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    log = _log(managed, job_id)
    assert done["status"] == "FAILED" and done["exit_code"] == 33, (done, log)
    assert (done["restarts_on_codes"], done["restarts_on_errors"]) == (2, 2)
    assert done["recovery_count"] == 2
    for n in range(1, 4):
        assert f"attempt {n} recovery={n - 1}" in log, log
    assert "attempt 4" not in log
    assert "restart 2 of 2 (max_restarts_on_errors)" in log
    assert "after 2 restart(s) (max_restarts_on_errors: 2)" in done["failure"]
    _nothing_left(managed, done)


def test_with_a_list_another_exit_code_fails_at_once(managed, tmp_path):
    """7 is not in recover_on_exit_codes: FAILED at once, although restarts are left."""
    job_id = _launch(write_task(tmp_path, EXIT_CODES.replace("${CODE}", "7")))
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    log = _log(managed, job_id)
    assert (done["status"], done["exit_code"], done["recovery_count"]) == ("FAILED", 7, 0)
    assert done["restarts_on_errors"] == 0 and "attempt 2" not in log, log
    assert "not in recover_on_exit_codes [33]" in done["failure"]
    _nothing_left(managed, done)


def test_any_other_exit_fails_at_once(managed, tmp_path):
    job_id = _launch(write_task(tmp_path, "resources:\n  cloud: local\nrun: echo once; exit 5\n"))
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    assert (done["status"], done["exit_code"], done["recovery_count"]) == ("FAILED", 5, 0)
    assert _log(managed, job_id).count("once") == 1
    assert skyterra("jobs", "logs", str(job_id), env=FAST, check=False).returncode == 100
    _nothing_left(managed, done)


def test_a_killed_controller_is_restarted_by_queue_and_the_job_finishes(managed, tmp_path):
    job_id = _launch(write_task(tmp_path, COUNTER.replace("-lt 60", "-lt 40")))
    job = _wait(job_id, lambda j: j["status"] == "RUNNING")
    os.kill(job["controller_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(job["controller_pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2)   # the run goes on without anyone watching
    again = _job(job_id)   # `jobs queue` restarts the controller
    assert again["controller_pid"] != job["controller_pid"] or _alive(again["controller_pid"])
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    log = _log(managed, job_id)
    assert done["status"] == "SUCCEEDED" and done["recovery_count"] == 0, (done, log)
    assert "CONTROLLER: the controller was not running; restarted it" in log
    assert "(head, rank=0) step 40" in log
    _nothing_left(managed, done)


def test_cancel_stops_the_run_and_destroys_the_cluster(managed, tmp_path):
    job_id = _launch(write_task(tmp_path, COUNTER.replace("-lt 60", "-lt 100000")))
    _wait(job_id, lambda j: j["status"] == "RUNNING")
    assert f"managed job(s) {job_id}" in skyterra("jobs", "cancel", str(job_id), env=FAST).stdout
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    assert done["status"] == "CANCELLED"
    assert skyterra("jobs", "logs", str(job_id), env=FAST, check=False).returncode == 103
    _nothing_left(managed, done)


def test_a_controller_on_its_own_local_node_recovers_a_preemption(managed, tmp_path):
    """--controller local: the controller runs on a 1-node cluster of its own and launches
    the job's cluster from there; the launching process is gone; queue mirrors its state."""
    job_id = _launch_with(write_task(tmp_path, COUNTER.replace("-lt 60", "-lt 90")),
                          "--controller", "local")
    job = _wait(job_id, lambda j: j["status"] == "RUNNING", timeout=180)
    assert job["controller"].startswith("sky-jobs-controller-")
    deadline = time.monotonic() + 60
    while "(head, rank=0) step 8\n" not in _log(managed, job_id) and \
            time.monotonic() < deadline:
        _job(job_id)   # each queue copies the new log lines from the controller node
        time.sleep(0.3)
    [controller_home] = (managed / "clusters" / job["controller"] / "nodes").glob(
        "*/home/.skyterra")
    assert (controller_home / "clusters" / job["cluster_name"]).is_dir()
    assert not (managed / "clusters" / job["cluster_name"]).exists()
    subprocess.run([sys.executable, "-m", "skyterra.clouds.local", "preempt",
                    job["cluster_name"], "1"], check=True, capture_output=True, timeout=60,
                   env={**os.environ, "SKYTERRA_HOME": str(controller_home)})
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"),
                 timeout=180)
    log = _log(managed, job_id)
    assert done["status"] == "SUCCEEDED" and done["recovery_count"] == 1, (done, log)
    resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines()
               if "(head, rank=0) resuming from step" in line]
    assert resumed and resumed[0] > 0, log
    _job(job_id)   # the next queue after the end destroys the controller's cluster
    assert not (managed / "clusters" / job["controller"]).exists()
    assert leftovers(str(managed)) == []


def test_eager_next_region_moves_the_job_to_another_place(managed, tmp_path):
    """The default strategy: the cluster that lost a node is destroyed and the job moves
    (on the local cloud: from zone local-a to local-b); the head's disk went with it, so
    the run starts from step 0 (a bucket-mounted checkpoint would survive: see examples/)."""
    task = COUNTER.replace("strategy: FAILOVER", "strategy: EAGER_NEXT_REGION").replace(
        "num_nodes: 2", "num_nodes: 1").replace("-lt 60", "-lt 50")
    job_id = _launch(write_task(tmp_path, task))
    job = _wait(job_id, lambda j: j["status"] == "RUNNING")
    assert job["where"].endswith("local-a")
    deadline = time.monotonic() + 60
    while "(head, rank=0) step 5\n" not in _log(managed, job_id) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    subprocess.run([sys.executable, "-m", "skyterra.clouds.local", "preempt",
                    job["cluster_name"], "0"], check=True, capture_output=True, timeout=60)
    done = _wait(job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"))
    log = _log(managed, job_id)
    assert done["status"] == "SUCCEEDED" and done["recovery_count"] == 1, (done, log)
    assert done["where"].endswith("local-b"), done
    assert "recovering (EAGER_NEXT_REGION)" in log
    assert "resuming from step" not in log and "(head, rank=0) step 50" in log
    _nothing_left(managed, done)
