"""The user's side of managed jobs: launch, queue, cancel, logs (what api.jobs_* call).

A job's controller is a detached process of this machine (`setsid --fork`, so
it is nobody's child and survives the terminal), or a controller node of its
own (remote.py). `queue` notices a local controller that died (its flock is
free while the job is unfinished) and starts a new one, which resumes from
the job's directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets as _secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from skyterra import paths
from skyterra.errors import MissingToolError, SkyterraError
from skyterra.managed import recovery
from skyterra.managed.store import (
    CANCELLED,
    STARTING,
    TERMINAL,
    JobDir,
    ManagedJob,
    all_jobs,
    new_job_dir,
)
from skyterra.task import Task

Output = Callable[[str], None]


def cluster_name_for(task: Task, job_id: int) -> str:
    """<task name>-<job id>-<4 hex>: a valid cluster name on every cloud, unique enough that
    two machines sharing a backend do not collide."""
    base = re.sub(r"[^a-z0-9-]", "-", (task.name or "managed").lower()).strip("-")
    base = re.sub(r"-+", "-", base)[:20].strip("-") or "managed"
    if not base[0].isalpha():
        base = f"m-{base}"[:20]
    return f"{base}-{job_id}-{_secrets.token_hex(2)}"


def launch(task: Task, *, name: str | None = None, clouds: list[str] | None = None,
           progress: Output = print) -> int:
    """Record the job, start its controller, return the managed job id."""
    task.check_required_envs()
    task.check_local_paths()
    if name is not None:
        task.name = Task(name=name).name   # validated as SkyPilot does
    recovery.Policy.of(task)               # (validated when the task was parsed)
    job_dir = new_job_dir()
    job = ManagedJob(job_id=job_dir.job_id, name=task.name or "",
                     task=task.to_yaml_config(), base_dir=str(task.base_dir), clouds=clouds,
                     cluster_name=cluster_name_for(task, job_dir.job_id))
    job.task_id = (f"sky-managed-{time.strftime('%Y-%m-%d-%H-%M-%S')}_{job.cluster_name}_"
                   f"{job.job_id}")
    job_dir.save(job)
    job_dir.save_secrets({k: v for k, v in task.secrets.items() if v is not None})
    job_dir.event(STARTING, f"managed job {job.job_id} submitted; cluster {job.cluster_name}")
    start_controller(job_dir)
    _wait_for_controller(job_dir)
    progress(f"managed job {job.job_id} submitted: its controller runs on this machine "
             f"(log: {job_dir.controller_log})")
    return job.job_id


def start_controller(job_dir: JobDir) -> None:
    """A detached controller: own session, nobody's child (setsid --fork), own log."""
    setsid = shutil.which("setsid")
    if not setsid:
        raise MissingToolError("setsid is not installed; install util-linux (Debian: apt-get "
                               "install util-linux) to run managed jobs.")
    env = {**os.environ, "SKYTERRA_HOME": str(paths.home()), "PYTHONUNBUFFERED": "1"}
    with open(job_dir.controller_log, "a") as log:
        subprocess.run([setsid, "--fork", sys.executable, "-m", "skyterra.managed.controller",
                        str(job_dir.job_id)], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, env=env, cwd=job_dir.path, check=True)


def _wait_for_controller(job_dir: JobDir, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job_dir.controller_alive() or job_dir.load().status in TERMINAL:
            return
        time.sleep(0.05)
    raise SkyterraError(f"the controller of managed job {job_dir.job_id} did not start; see "
                        f"{job_dir.controller_log}.")


def ensure_controller(job_dir: JobDir) -> bool:
    """Restart the controller of an unfinished job whose controller died; True if restarted."""
    job = job_dir.load()
    if job.status in TERMINAL or job.controller or job_dir.controller_alive():
        return False
    job_dir.event("CONTROLLER", "the controller was not running; restarted it (it resumes "
                  "from the job's record)")
    start_controller(job_dir)
    _wait_for_controller(job_dir)
    return True


def describe(job: ManagedJob, job_dir: JobDir | None = None) -> dict[str, Any]:
    """A plain record for `jobs queue --json`, the SDK and the dashboard."""
    data = dataclasses.asdict(job)
    data.pop("task")
    data["resources"] = job.task.get("resources")
    data["down_time"] = round(job.total_down_time(), 3)
    end = job.ended_at or time.time()
    data["duration"] = round(end - job.started_at, 3) if job.started_at else None
    if job_dir is not None:
        data["log_path"] = str(job_dir.run_log)
        data["controller_log_path"] = str(job_dir.controller_log)
    return data


def queue(refresh: bool = True) -> list[dict[str, Any]]:
    """Every managed job of this machine (plain dicts), oldest first; dead controllers of
    unfinished jobs are restarted first (refresh)."""
    from skyterra.managed import remote

    records = []
    for job_dir in all_jobs():
        if refresh:
            ensure_controller(job_dir)
            remote.refresh(job_dir)
        records.append(describe(job_dir.load(), job_dir))
    return records


def _job_dir(job_id: int | None) -> JobDir:
    if job_id is None:
        dirs = all_jobs()
        if not dirs:
            raise SkyterraError("there are no managed jobs; start one with `skyterra jobs "
                                "launch TASK.yaml`.")
        return dirs[-1]
    job_dir = JobDir(job_id)
    job_dir.load()   # a clear error if there is no such job
    return job_dir


def cancel(job_ids: list[int] | None = None, all: bool = False) -> list[int]:
    """Ask the controllers to stop these jobs (default: the latest unfinished one) and tear
    their clusters down; returns the ids asked. The controller does the work."""
    from skyterra.managed import remote

    if all:
        targets = [d for d in all_jobs() if d.load().status not in TERMINAL]
    elif job_ids:
        targets = [_job_dir(job_id) for job_id in job_ids]
    else:
        targets = [d for d in all_jobs()[-1:] if d.load().status not in TERMINAL]
    asked = []
    for job_dir in targets:
        if job_dir.load().status in TERMINAL:
            continue
        (job_dir.path / "cancel").touch()
        remote.cancel(job_dir)
        ensure_controller(job_dir)
        asked.append(job_dir.job_id)
    return asked


def wait(job_id: int, timeout: float | None = None) -> ManagedJob:
    """Block until the job is terminal (restarting a dead controller on the way)."""
    from skyterra.managed import remote

    job_dir = JobDir(job_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ensure_controller(job_dir)
        remote.refresh(job_dir)
        job = job_dir.load()
        if job.status in TERMINAL:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise SkyterraError(f"managed job {job_id} is still {job.status} after "
                                f"{timeout:.0f} s.")
        time.sleep(0.5)


def logs(job_id: int | None = None, follow: bool = True, out: Output = print,
         controller: bool = False) -> int:
    """Print the job's log (every attempt, with recovery lines); follow until it ends.

    Returns SkyPilot's codes: 0 succeeded, 100 failed, 103 cancelled, 101 not finished.
    """
    from skyterra.managed import remote

    job_dir = _job_dir(job_id)
    path = job_dir.controller_log if controller else job_dir.run_log
    offset = 0
    while True:
        remote.refresh(job_dir)
        if path.exists():
            with open(path, errors="replace") as handle:
                handle.seek(offset)
                chunk = handle.read()
                offset = handle.tell()
            for line in chunk.splitlines():
                out(line)
        job = job_dir.load()
        if not follow or job.status in TERMINAL:
            if follow and path.exists() and path.stat().st_size > offset:
                continue   # the last lines written as it ended
            return exit_code(job)
        ensure_controller(job_dir)
        time.sleep(0.5)


def exit_code(job: ManagedJob) -> int:
    return {"SUCCEEDED": 0, "FAILED": 100, CANCELLED: 103}.get(job.status, 101)
