"""Managed job records: SKYTERRA_HOME/managed/<id>/ with job.json, events.jsonl and logs.

job.json is the job's current state (what `jobs queue` shows); events.jsonl is
the history, one JSON line per event (status changes, recoveries, notices);
run.log holds the run's output of every attempt, node-prefixed, with a line
per recovery; controller.log is the controller's own output. A controller
holds an flock on controller.lock while it runs, so a dead controller is
seen for sure (no pid reuse) and can be restarted without losing the job.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import secrets as _secrets
import time
from pathlib import Path
from typing import Any

from skyterra import paths
from skyterra.errors import SkyterraError
from skyterra.managed.board import Board, reported, unreachable

STARTING, RUNNING, RECOVERING = "STARTING", "RUNNING", "RECOVERING"
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
CANCELLING = "CANCELLING"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


@dataclasses.dataclass
class ManagedJob:
    """job.json: one managed job as the controller last left it."""

    job_id: int
    name: str = ""
    status: str = STARTING
    task: dict[str, Any] = dataclasses.field(default_factory=dict)   # Task.to_yaml_config()
    base_dir: str = ""            # the task file's folder: relative workdir/file_mounts
    clouds: list[str] | None = None
    cluster_name: str = ""
    task_id: str = ""             # SKYPILOT_TASK_ID, the same for every attempt
    recovery_count: int = 0       # recoveries after a lost node (preemption)
    restarts_on_errors: int = 0   # restarts after a failed run (max_restarts_on_errors)
    restarts_on_codes: int = 0    # of those, for a code in recover_on_exit_codes
    down_time: float = 0.0        # seconds the run was not running after it first started
    down_since: float | None = None
    where: str = ""               # cloud/region/zone of the current cluster
    cluster_job_id: int | None = None
    exit_code: int | None = None
    failure: str = ""
    cancel_requested: bool = False
    controller: str = ""          # "" = a local process; else the controller's cluster name
    controller_pid: int | None = None
    keep_controller: bool = False # the controller's cluster stays up after the job ends
    hosted_on: str = ""           # on a controller node: its cluster (teammates tear it down)
    submitted_at: float = dataclasses.field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManagedJob:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def total_down_time(self, now: float | None = None) -> float:
        """Down time so far, including a recovery that is still going on."""
        ongoing = ((now or time.time()) - self.down_since) if self.down_since else 0.0
        return self.down_time + ongoing


def cluster_name_for(task_name: str | None, job_id: int) -> str:
    """<task name>-<job id>-<4 hex>: a valid cluster name on every cloud, unique enough that
    two machines sharing a backend do not collide."""
    base = re.sub(r"[^a-z0-9-]", "-", (task_name or "managed").lower()).strip("-")
    base = re.sub(r"-+", "-", base)[:20].strip("-") or "managed"
    if not base[0].isalpha():
        base = f"m-{base}"[:20]
    return f"{base}-{job_id}-{_secrets.token_hex(2)}"


def managed_root() -> Path:
    return paths.home() / "managed"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class JobDir:
    """One managed job's directory; with a board (the job's owner only: its controller and
    the launch that records it), every save and event is copied to the shared backend."""

    def __init__(self, job_id: int, root: Path | None = None, board: Board | None = None):
        self.job_id = int(job_id)
        self.path = (root or managed_root()) / str(self.job_id)
        self.board = board
        self._published_log = -1

    @property
    def record_path(self) -> Path:
        return self.path / "job.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def run_log(self) -> Path:
        return self.path / "run.log"

    @property
    def controller_log(self) -> Path:
        return self.path / "controller.log"

    @property
    def lock_path(self) -> Path:
        return self.path / "controller.lock"

    @property
    def secrets_path(self) -> Path:
        return self.path / "secrets.json"

    def exists(self) -> bool:
        return self.record_path.exists()

    def load(self) -> ManagedJob:
        try:
            return ManagedJob.from_json(json.loads(self.record_path.read_text()))
        except FileNotFoundError:
            raise SkyterraError(f"managed job {self.job_id} does not exist; `skyterra jobs "
                                "queue` lists the managed jobs.") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise SkyterraError(f"{self.record_path} is damaged ({error}); remove "
                                f"{self.path} if its cluster is gone.") from None

    def save(self, job: ManagedJob) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps(dataclasses.asdict(job), indent=2, sort_keys=True) + "\n"
        _write_private(self.record_path, text)
        if self.board is not None:
            reported("write the job's record", lambda: self.board.put(
                f"{self.job_id}/job.json", text.encode()))

    def update(self, **changes: Any) -> ManagedJob:
        job = self.load()
        for key, value in changes.items():
            setattr(job, key, value)
        self.save(job)
        return job

    def event(self, kind: str, message: str, **data: Any) -> None:
        """Append one event to events.jsonl and a readable line to run.log."""
        now = time.time()
        line = json.dumps({"time": now, "event": kind, "message": message, **data},
                          sort_keys=True)
        with open(self.events_path, "a") as handle:
            handle.write(line + "\n")
        if self.board is not None:
            reported("write the job's events", lambda: self.board.put(
                f"{self.job_id}/events.jsonl", self.events_path.read_bytes()))
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        self.append_log(f"[skyterra {stamp}] {kind}: {message}")

    def append_log(self, line: str) -> None:
        with open(self.run_log, "a") as handle:
            handle.write(line.rstrip("\n") + "\n")

    def publish_log(self) -> None:
        """Copy what run.log gained since the last copy to the board (the controller calls
        this once a poll, not per line; the board keeps the log in parts)."""
        if self.board is None or not self.run_log.exists():
            return
        size = self.run_log.stat().st_size
        if size != self._published_log:
            data = self.run_log.read_bytes()
            copied = max(self._published_log, 0)
            if reported("write the job's log", lambda: self.board.put_log(
                    self.job_id, data, copied) or True):
                self._published_log = len(data)

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines()
                if line.strip()]

    def save_secrets(self, secrets: dict[str, str]) -> None:
        """Secret values (the task record keeps only their names), owner-only."""
        _write_private(self.secrets_path, json.dumps(secrets))

    def load_secrets(self) -> dict[str, str]:
        try:
            return json.loads(self.secrets_path.read_text())
        except FileNotFoundError:
            return {}

    def controller_alive(self) -> bool:
        """Is a controller holding this job's lock? (An flock dies with its process.)"""
        if not self.lock_path.exists():
            return False
        fd = os.open(self.lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


class ControllerLock:
    """The flock a running controller holds; a second controller of the job is refused."""

    def __init__(self, job_dir: JobDir):
        self.job_dir = job_dir
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.job_dir.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.job_dir.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def release(self, remove: bool = False) -> None:
        """Unlock; remove=True (the job ended) leaves no lock file behind."""
        if self.fd is None:
            return
        if remove:
            self.job_dir.lock_path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def new_job_dir(root: Path | None = None, board: Board | None = None) -> JobDir:
    """The next free id: mkdir is atomic, so two launches at once get different ids; with a
    board the id is also claimed there (create-only), so teammates' ids never collide."""
    base = root or managed_root()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
    if board is not None:
        try:
            taken += board.job_ids()
        except Exception as error:  # noqa: BLE001 - botocore's many error types
            raise unreachable(error) from None
    job_id = max(taken, default=0) + 1
    while True:
        try:
            (base / str(job_id)).mkdir(mode=0o700)
        except FileExistsError:
            job_id += 1
            continue
        if board is None or board.claim(job_id):
            return JobDir(job_id, base, board)
        (base / str(job_id)).rmdir()
        job_id += 1


def all_jobs(root: Path | None = None) -> list[JobDir]:
    base = root or managed_root()
    if not base.is_dir():
        return []
    return sorted((JobDir(int(p.name), base) for p in base.iterdir()
                   if p.name.isdigit() and (p / "job.json").exists()),
                  key=lambda d: d.job_id)
