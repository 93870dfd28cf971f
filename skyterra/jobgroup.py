"""A job group: the tasks of one file run at the same time, each on its own cluster.

SkyPilot's JobGroup: a multi-document task file whose header says `execution: parallel`
(header keys: name, execution, primary_tasks, termination_delay, inter_connection),
followed by the tasks. skyterra runs it in four steps, all tasks at once in each step:

1. provision every task's cluster (`<group>-<task name>`), in parallel;
2. tell each task where the others are (SKYTERRA_GROUP_HOSTS: one `task head-ip` line
   per task, plus SKYPILOT_JOBGROUP_NAME), then run setup and start every run;
3. follow every job, each line prefixed with the task's name and kept in
   ~/.skyterra/groups/<group>/<task>.log;
4. destroy every cluster, whatever happened.

A task that fails (or cannot start) cancels the others: the group fails, and the error
says which task failed and which were cancelled. With `primary_tasks`, the other
(auxiliary) tasks are cancelled once every primary task has finished, after their
`termination_delay` (SkyPilot's semantics; cancelled auxiliaries are not a failure).
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from skyterra import paths
from skyterra.errors import SkyterraError, TaskError

Output = Callable[[str], None]
NOT_STARTED, RUNNING = "NOT_STARTED", "RUNNING"
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600}


class GroupError(SkyterraError):
    """A task of a job group failed or could not start; every cluster is destroyed."""


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """The header of a job group file, checked."""

    name: str
    primary_tasks: tuple[str, ...] = ()
    termination_delay: dict[str, float] = dataclasses.field(default_factory=dict)

    def is_primary(self, task_name: str) -> bool:
        return not self.primary_tasks or task_name in self.primary_tasks

    def delay_for(self, task_name: str) -> float:
        return self.termination_delay.get(task_name, self.termination_delay.get("default", 0))


def parse_header(header: dict[str, Any], task_names: list[str | None],
                 source: str) -> GroupSpec:
    """name (required), primary_tasks (names of tasks), termination_delay ('30s' or
    {default: 30s, task: 1m}); every task needs a unique name."""
    name = header.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise TaskError(f"a job group needs `name:` of letters, digits, '-' and '_', got "
                        f"{name!r}.", source=source, field="name")
    for index, task_name in enumerate(task_names):
        if not task_name:
            raise TaskError(f"task {index + 1} of the job group has no `name:`; every task "
                            "of a job group needs one (its cluster and logs are named after "
                            "it).", source=source, field="name")
    duplicates = sorted({n for n in task_names if task_names.count(n) > 1})
    if duplicates:
        raise TaskError(f"two tasks of the job group are named {duplicates[0]!r}; names must "
                        "be unique.", source=source, field="name")
    primary = header.get("primary_tasks") or []
    if not isinstance(primary, list) or not all(isinstance(p, str) for p in primary):
        raise TaskError("expected a list of task names.", source=source, field="primary_tasks")
    unknown = [p for p in primary if p not in task_names]
    if unknown:
        raise TaskError(f"primary task {unknown[0]!r} is not a task of the group "
                        f"({', '.join(map(str, task_names))}).", source=source,
                        field="primary_tasks")
    inter = header.get("inter_connection")
    if inter is not None and not isinstance(inter, bool):
        raise TaskError(f"expected true or false, got {inter!r}.", source=source,
                        field="inter_connection")
    return GroupSpec(name, tuple(primary), _delays(header.get("termination_delay"), source))


def _delays(value: Any, source: str) -> dict[str, float]:
    if value is None:
        return {}
    items = {"default": value} if isinstance(value, (str, int, float)) else value
    if not isinstance(items, dict):
        raise TaskError("expected a duration like '30s' or a mapping of task: duration.",
                        source=source, field="termination_delay")
    out = {}
    for key, text in items.items():
        match = _DELAY.match(str(text))
        if not match:
            raise TaskError(f"expected a duration like 30s, 5m or 1h, got {text!r}.",
                            source=source, field=f"termination_delay.{key}")
        out[str(key)] = float(match.group(1)) * _UNIT_S[match.group(2)]
    return out


class Ops(Protocol):
    """What the group needs from the SDK (skyterra/api.py passes its own functions)."""

    def provision(self, task: Any, cluster: str, progress: Output) -> None: ...
    def head_ip(self, cluster: str) -> str: ...
    def start(self, task: Any, cluster: str, out: Output, progress: Output) -> int: ...
    def follow(self, cluster: str, job_id: int, out: Output) -> str: ...
    def cancel(self, cluster: str, job_id: int) -> None: ...
    def down(self, cluster: str, progress: Output) -> None: ...


@dataclasses.dataclass
class TaskRun:
    """One task of the group: where it runs and how it ended."""

    name: str
    cluster: str
    log: Path
    job_id: int | None = None
    status: str = NOT_STARTED
    error: str = ""
    cancelled_by_group: bool = False


def cluster_names(spec: GroupSpec, task_names: list[str], base: str | None) -> list[str]:
    prefix = base or spec.name
    return [f"{prefix}-{name}".lower().replace("_", "-") for name in task_names]


def run(spec: GroupSpec, tasks: list[Any], ops: Ops, *, base: str | None = None,
        out: Output, progress: Output) -> list[TaskRun]:
    """Provision, start, follow and destroy every task's cluster; GroupError if a task
    failed. Returns each task's run (status SUCCEEDED, or CANCELLED for auxiliaries)."""
    names = cluster_names(spec, [t.name for t in tasks], base)
    log_dir = paths.home() / "groups" / spec.name
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = [TaskRun(t.name, c, log_dir / f"{t.name}.log") for t, c in zip(tasks, names)]
    group = _Group(spec, tasks, runs, ops, out, progress)
    try:
        group.start_all()
        if not group.failed():
            group.follow_all()
    finally:
        group.down_all()
    failed = [r for r in runs if r.status == FAILED]
    if failed:
        raise GroupError(group.failure_message(failed))
    return runs


class _Group:
    """The shared state of one group run (threads report into it)."""

    def __init__(self, spec: GroupSpec, tasks: list[Any], runs: list[TaskRun], ops: Ops,
                 out: Output, progress: Output):
        self.spec, self.tasks, self.runs, self.ops = spec, tasks, runs, ops
        self.out, self.progress = out, progress
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.handles: dict[str, Any] = {}

    def failed(self) -> bool:
        return any(r.status == FAILED or r.error for r in self.runs)

    def writer(self, run: TaskRun) -> Output:
        with self.lock:
            handle = self.handles.get(run.name) or run.log.open("a", encoding="utf-8")
            self.handles[run.name] = handle

        def write(line: str) -> None:
            with self.lock:
                handle.write(line + "\n")
                handle.flush()
                self.out(f"[{run.name}] {line}")
        return write

    def _each(self, work: Callable[[Any, TaskRun], None]) -> None:
        def guarded(task: Any, run: TaskRun) -> None:
            try:
                work(task, run)
            except SkyterraError as error:
                run.status, run.error = FAILED, str(error)
                self.stop.set()
        pool = ThreadPoolExecutor(max_workers=len(self.runs))
        futures = [pool.submit(guarded, task, run) for task, run in zip(self.tasks, self.runs)]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            # Ctrl-C: stop every job so the followers return, then the caller tears down.
            for run in self.runs:
                if run.status == RUNNING and not run.cancelled_by_group:
                    self._cancel(run)
            raise
        finally:
            pool.shutdown(wait=True)

    def start_all(self) -> None:
        self.progress(f"job group {self.spec.name}: provisioning {len(self.runs)} clusters "
                      f"({', '.join(r.cluster for r in self.runs)}) at the same time")
        self._each(lambda task, run: self.ops.provision(
            task, run.cluster, lambda line, run=run: self.progress(f"[{run.name}] {line}")))
        if self.failed():
            return
        hosts = "\n".join(f"{r.name} {self.ops.head_ip(r.cluster)}" for r in self.runs)
        for task in self.tasks:
            task.update_envs({"SKYPILOT_JOBGROUP_NAME": self.spec.name,
                              "SKYTERRA_GROUP_HOSTS": hosts})

        def start(task: Any, run: TaskRun) -> None:
            run.job_id = self.ops.start(task, run.cluster, self.writer(run),
                                        lambda line: self.progress(f"[{run.name}] {line}"))
            run.status = RUNNING
        self._each(start)

    def follow_all(self) -> None:
        watcher = threading.Thread(target=self._watch, daemon=True)
        watcher.start()

        def follow(task: Any, run: TaskRun) -> None:
            if run.status != RUNNING:
                return
            ended = self.ops.follow(run.cluster, run.job_id, self.writer(run))
            if run.cancelled_by_group:
                run.status = CANCELLED
            elif ended == SUCCEEDED:
                run.status = SUCCEEDED
            else:
                run.status, run.error = FAILED, f"its job ended {ended}"
                self.stop.set()
        self._each(follow)
        self.stop.set()
        watcher.join()

    def _watch(self) -> None:
        """Cancel the others on a failure; the auxiliaries once the primaries are done."""
        done_at: float | None = None
        while True:
            failure = self.stop.wait(0.5)
            primaries = [r for r, t in zip(self.runs, self.tasks)
                         if self.spec.is_primary(t.name)]
            if done_at is None and self.spec.primary_tasks and all(
                    r.status == SUCCEEDED for r in primaries):
                done_at = time.monotonic()
            for run in self.runs:
                if run.status != RUNNING or run.cancelled_by_group:
                    continue
                due = done_at is not None and not self.spec.is_primary(run.name) and \
                    time.monotonic() - done_at >= self.spec.delay_for(run.name)
                if due or (failure and self.failed()):
                    self._cancel(run)
            if failure and not any(r.status == RUNNING and not r.cancelled_by_group
                                   for r in self.runs):
                return

    def _cancel(self, run: TaskRun) -> None:
        run.cancelled_by_group = True
        self.progress(f"[{run.name}] cancelling job {run.job_id}")
        try:
            self.ops.cancel(run.cluster, run.job_id)
        except SkyterraError as error:
            self.progress(f"[{run.name}] could not cancel job {run.job_id}: {error}")

    def down_all(self) -> None:
        self.progress(f"job group {self.spec.name}: destroying "
                      f"{', '.join(r.cluster for r in self.runs)}")

        def down(task: Any, run: TaskRun) -> None:
            try:
                self.ops.down(run.cluster, lambda line: self.progress(f"[{run.name}] {line}"))
            except SkyterraError as error:
                run.error = run.error or f"destroy failed: {error}"
                self.progress(f"[{run.name}] destroy failed: {error} (run `skyterra "
                              f"destroy {run.cluster}`)")
        with ThreadPoolExecutor(max_workers=len(self.runs)) as pool:
            list(pool.map(down, self.tasks, self.runs))
        for handle in self.handles.values():
            handle.close()

    def failure_message(self, failed: list[TaskRun]) -> str:
        first = failed[0]
        why = first.error or f"its job ended {first.status}"
        cancelled = [r.name for r in self.runs if r.status == CANCELLED]
        waiting = [r.name for r in self.runs if r.status == NOT_STARTED]
        tail = (f" Cancelled: {', '.join(cancelled)}." if cancelled else "") + (
            f" Not started: {', '.join(waiting)}." if waiting else "")
        return (f"job group {self.spec.name}: task '{first.name}' failed ({why})."
                f"{tail} Every cluster of the group was destroyed; the logs are in "
                f"{first.log.parent}.")
