"""Managed jobs seen from a teammate's machine: two skyterra homes share an S3 backend (moto);
home A launches a managed job on the local cloud, home B lists it, follows it to the end,
launches one of its own with the team's next id, and cancels A's next job through the
backend (A's controller honours it)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from skyterra import api
from tests import moto_server as moto_fixtures
from tests.e2e.helpers import skyterra, write_task
from tests.e2e.test_managed import FAST, _alive
from tests.leaks import leftover_processes
from tests.moto_server import s3_state_backend, two_machines_sharing

moto_endpoint = moto_fixtures.moto_endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.moto]

COUNT = """
name: shared-count
resources:
  cloud: local
run: |
  for i in $(seq 1 {steps}); do echo "step $i"; sleep 0.2; done
"""


def _queue(env: dict) -> list[dict]:
    return json.loads(skyterra("jobs", "queue", "--json", env={**FAST, **env}).stdout)


def _wait(env: dict, job_id: int, until, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {j["job_id"]: j for j in _queue(env)}
        if job_id in jobs and until(jobs[job_id]):
            return jobs[job_id]
        time.sleep(0.5)
    raise AssertionError(f"managed job {job_id} did not get there: {_queue(env)}")


def _launch(env: dict, path: Path) -> int:
    out = skyterra("jobs", "launch", str(path), "-d", "-y", env={**FAST, **env}).stdout
    return int(out.split("Managed job ", 1)[1].split()[0])


@pytest.fixture
def homes(tmp_path, moto_endpoint, monkeypatch):
    clients, backend = s3_state_backend(moto_endpoint)
    machines = two_machines_sharing(tmp_path, backend, monkeypatch)
    envs = {m: {"SKYTERRA_HOME": str(home)} for m, home in machines.items()}
    yield clients, envs
    for machine in ("a", "b"):
        for record in (machines[machine] / "managed").glob("*/job.json"):
            job = json.loads(record.read_text())
            if job["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED") and \
                    _alive(job.get("controller_pid")):
                os.kill(job["controller_pid"], signal.SIGKILL)
        for cluster in (machines[machine] / "clusters").glob("*/cluster.json"):
            skyterra("destroy", "-y", cluster.parent.name, env=envs[machine], check=False)
    assert leftover_processes(str(tmp_path)) == []


def test_a_teammate_lists_follows_and_cancels_managed_jobs(homes, tmp_path, monkeypatch):
    clients, env = homes
    first = _launch(env["a"], write_task(tmp_path, COUNT.format(steps=15)))
    seen = _wait(env["b"], first, lambda j: j["status"] == "RUNNING")
    assert seen["shared"] and seen["name"] == "shared-count"
    assert [e["event"] for e in seen["events"]][:2] == ["STARTING", "RUNNING"]
    keys = {o["Key"] for o in clients["s3"].list_objects_v2(
        Bucket="team-state", Prefix="managed-jobs/")["Contents"]}
    assert {f"managed-jobs/{first}/job.json", f"managed-jobs/{first}/events.jsonl"} <= keys

    done = _wait(env["b"], first, lambda j: j["status"] in ("SUCCEEDED", "FAILED",
                                                            "CANCELLED"))
    assert done["status"] == "SUCCEEDED" and done["exit_code"] == 0, done
    logs = skyterra("jobs", "logs", str(first), env={**FAST, **env["b"]}, check=False)
    assert logs.returncode == 0 and "(head, rank=0) step 15" in logs.stdout, logs
    monkeypatch.setenv("SKYTERRA_HOME", env["b"]["SKYTERRA_HOME"])   # the SDK on B
    assert [(j["job_id"], j["status"], j["shared"]) for j in api.jobs_queue()] == [
        (first, "SUCCEEDED", True)]
    assert api.jobs_wait(first, timeout=10)["status"] == "SUCCEEDED"

    # B launches one too: B has no job of its own, yet the id follows the team's
    mine = _launch(env["b"], write_task(tmp_path / "b", COUNT.format(steps=2)))
    assert mine == first + 1
    assert _wait(env["a"], mine, lambda j: j["status"] == "SUCCEEDED")["shared"]

    second = _launch(env["a"], write_task(tmp_path, COUNT.format(steps=100000)))
    assert second == mine + 1
    _wait(env["b"], second, lambda j: j["status"] == "RUNNING")
    asked = skyterra("jobs", "cancel", str(second), env={**FAST, **env["b"]})
    assert f"managed job(s) {second}" in asked.stdout
    cancelled = _wait(env["b"], second, lambda j: j["status"] in ("SUCCEEDED", "FAILED",
                                                                  "CANCELLED"))
    assert cancelled["status"] == "CANCELLED", cancelled
    local = {j["job_id"]: j for j in _queue(env["a"])}
    assert local[second]["status"] == "CANCELLED" and not local[second]["shared"]
    states = clients["s3"].list_objects_v2(Bucket="team-state", Prefix="skyterra/")
    assert states.get("Contents", []) == []   # both job clusters destroyed


def test_a_controller_node_hands_its_records_to_the_shared_backend(homes, tmp_path):
    """--controller local with a shared backend: the controller node's bootstrap finds
    skyterra (the node sees this environment through its overlay), gets the backend setting,
    and the records it writes from the node are what teammate B lists; B, seeing the end,
    destroys the controller's cluster; A, whose controller node is gone, reads the end from
    the backend."""
    clients, env = homes
    launched = skyterra("jobs", "launch", str(write_task(tmp_path, COUNT.format(steps=10))),
                        "-d", "-y", "--controller", "local", env={**FAST, **env["a"]})
    out = launched.stdout + launched.stderr
    job_id = int(launched.stdout.split("Managed job ", 1)[1].split()[0])
    assert "skyterra 0.1.0 is already installed on this node" in out, out
    assert "state backend setting handed over" in out, out
    seen = _wait(env["b"], job_id, lambda j: j["status"] == "RUNNING", timeout=180)
    assert seen["shared"]
    done = _wait(env["b"], job_id, lambda j: j["status"] in ("SUCCEEDED", "FAILED",
                                                             "CANCELLED"), timeout=180)
    assert done["status"] == "SUCCEEDED", done
    events = [e["event"] for e in done["events"]]
    assert "CONTROLLER" in events and events[-1] == "SUCCEEDED", events
    # B's queue that saw the end destroyed the controller's cluster (A never looked)
    states = clients["s3"].list_objects_v2(Bucket="team-state", Prefix="skyterra/")
    assert states.get("Contents", []) == []   # job cluster and controller cluster destroyed
    assert done["hosted_on"].startswith("sky-jobs-controller-")
    assert not (Path(env["b"]["SKYTERRA_HOME"]) / "clusters" / done["hosted_on"]).exists()
    # A's copy: the controller node is gone, the record comes from the backend
    mine = {j["job_id"]: j for j in _queue(env["a"])}[job_id]
    assert mine["status"] == "SUCCEEDED" and not mine["shared"], mine
    assert not (Path(env["a"]["SKYTERRA_HOME"]) / "clusters" / mine["controller"]).exists()
    log = skyterra("jobs", "logs", str(job_id), env={**FAST, **env["a"]}, check=False)
    assert log.returncode == 0 and "(head, rank=0) step 10" in log.stdout, log
