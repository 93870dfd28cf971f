"""The user's side of managed jobs: launch, queue, cancel, logs (what api.jobs_* call).

A job's controller is a detached process of this machine (`setsid --fork`, so
it is nobody's child and survives the terminal), or a controller node of its
own (remote.py). `queue` notices a local controller that died (its flock is
free while the job is unfinished) and starts a new one, which resumes from
the job's directory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from skyterra import backend
from skyterra.errors import SkyterraError
from skyterra.managed import board, recovery, remote
from skyterra.managed.daemon import ensure_controller, start_controller, wait_for_controller
from skyterra.managed.store import (
    CANCELLED,
    STARTING,
    TERMINAL,
    JobDir,
    ManagedJob,
    all_jobs,
    cluster_name_for,
    new_job_dir,
)
from skyterra.task import Task

Output = Callable[[str], None]


def launch(task: Task, *, name: str | None = None, clouds: list[str] | None = None,
           progress: Output = print) -> int:
    """Record the job, start its controller, return the managed job id."""
    task.check_required_envs()
    task.check_local_paths()
    if name is not None:
        task.name = Task(name=name).name   # validated as SkyPilot does
    recovery.Policy.of(task)               # (validated when the task was parsed)
    job_dir = new_job_dir(board=board.board())
    job = ManagedJob(job_id=job_dir.job_id, name=task.name or "",
                     task=task.to_yaml_config(), base_dir=str(task.base_dir), clouds=clouds,
                     cluster_name=cluster_name_for(task.name, job_dir.job_id))
    job.task_id = (f"sky-managed-{time.strftime('%Y-%m-%d-%H-%M-%S')}_{job.cluster_name}_"
                   f"{job.job_id}")
    job_dir.save(job)
    job_dir.save_secrets({k: v for k, v in task.secrets.items() if v is not None})
    job_dir.event(STARTING, f"managed job {job.job_id} submitted; cluster {job.cluster_name}")
    start_controller(job_dir)
    wait_for_controller(job_dir)
    progress(f"managed job {job.job_id} submitted: its controller runs on this machine "
             f"(log: {job_dir.controller_log})")
    return job.job_id


def describe(job: ManagedJob, job_dir: JobDir | None = None,
             events: list[dict[str, Any]] | None = None, shared: bool = False
             ) -> dict[str, Any]:
    """A plain record for `jobs queue --json`, the SDK and the dashboard; shared: a
    teammate's job, read from the shared backend (board.py)."""
    data = dataclasses.asdict(job)
    data.pop("task")
    data["resources"] = job.task.get("resources")
    data["down_time"] = round(job.total_down_time(), 3)
    end = job.ended_at or time.time()
    data["duration"] = round(end - job.started_at, 3) if job.started_at else None
    data["cluster"] = job.cluster_name
    data["shared"] = shared
    if job_dir is not None:
        data["log_path"] = str(job_dir.run_log)
        data["controller_log_path"] = str(job_dir.controller_log)
        events = job_dir.events()
    # The recovery timeline (the dashboard draws it): when, what, the event's words.
    data["events"] = [{"at": e.get("time"), "event": e.get("event", ""),
                       "detail": e.get("message", "")} for e in events or []]
    return data


def queue(refresh: bool = True) -> list[dict[str, Any]]:
    """Every managed job of this machine and, with a shared backend, of the team (plain
    dicts), by id; dead controllers of this machine's unfinished jobs are restarted first."""
    records = {}
    for job_dir in all_jobs():
        if refresh:
            ensure_controller(job_dir)
            remote.refresh(job_dir)
        records[job_dir.job_id] = describe(job_dir.load(), job_dir)
    shared = board.board()
    if shared is not None:
        states = None   # cluster states in the backend, listed once if a job needs them
        for job_id in _board_call(shared.job_ids):
            if job_id in records:
                continue
            job = _shared_job(shared, job_id)
            if job is None:
                continue
            if refresh and job.hosted_on and job.status in TERMINAL and not job.keep_controller:
                if states is None:
                    states = set(backend.list_cluster_names(shared.setting) or [])
                remote.end_controller_elsewhere(job, states)
            records[job_id] = describe(job, events=_board_call(shared.events, job_id),
                                       shared=True)
    return [records[job_id] for job_id in sorted(records)]


def _board_call(call, *args):
    try:
        return call(*args)
    except Exception as error:  # noqa: BLE001 - botocore's many error types, one message
        raise board.unreachable(error) from None


def _shared_job(shared: board.Board, job_id: int) -> ManagedJob | None:
    """A teammate's job from the board (None: only claimed, not recorded yet)."""
    data = _board_call(shared.record, job_id)
    return ManagedJob.from_json(data) if data else None


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


def _elsewhere(job_id: int | None) -> tuple[board.Board, ManagedJob] | None:
    """(board, job) when `job_id` is not this machine's but a teammate's on the board."""
    shared = board.board()
    if job_id is None or shared is None or JobDir(job_id).exists():
        return None
    job = _shared_job(shared, job_id)
    return (shared, job) if job is not None else None


def cancel(job_ids: list[int] | None = None, all: bool = False) -> list[int]:
    """Ask the controllers to stop these jobs (default: the latest unfinished one of this
    machine) and tear their clusters down; returns the ids asked. The controller does the
    work; a teammate's job (shared backend) is asked through the board."""
    if all:
        ids = [j["job_id"] for j in queue(refresh=False) if j["status"] not in TERMINAL]
    elif job_ids:
        ids = list(job_ids)
    else:
        ids = [d.job_id for d in all_jobs()[-1:] if d.load().status not in TERMINAL]
    asked = []
    for job_id in ids:
        teammate = _elsewhere(job_id)
        if teammate is not None:
            shared, job = teammate
            if job.status not in TERMINAL:
                _board_call(shared.request_cancel, job_id)
                asked.append(job_id)
            continue
        job_dir = _job_dir(job_id)
        if job_dir.load().status in TERMINAL:
            continue
        (job_dir.path / "cancel").touch()
        remote.cancel(job_dir)
        ensure_controller(job_dir)
        asked.append(job_dir.job_id)
    return asked


def wait(job_id: int, timeout: float | None = None) -> ManagedJob:
    """Block until the job is terminal (restarting a dead controller on the way)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        teammate = _elsewhere(job_id)
        if teammate is not None:
            job = teammate[1]
        else:
            job_dir = JobDir(job_id)
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
    teammate = None if controller else _elsewhere(job_id)
    if teammate is not None:
        return _shared_logs(teammate[0], job_id, follow, out)
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


def _shared_logs(shared: board.Board, job_id: int, follow: bool, out: Output) -> int:
    """A teammate's job: its log as the controller last copied it to the board."""
    printed = 0
    while True:
        job = _shared_job(shared, job_id)
        lines = _board_call(shared.log, job_id).splitlines()
        for line in lines[printed:]:
            out(line)
        printed = max(printed, len(lines))
        if not follow or job is None or job.status in TERMINAL:
            return exit_code(job) if job is not None else 101
        time.sleep(1.0)


def exit_code(job: ManagedJob) -> int:
    return {"SUCCEEDED": 0, "FAILED": 100, CANCELLED: 103}.get(job.status, 101)
