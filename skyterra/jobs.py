"""Jobs: every `run` is a numbered job that lives on the nodes, not in the client.

A job's processes are detached on every node (executor.start_detached), so
the client may stream, stop streaming (Ctrl-C) and re-attach later. The
record here (jobs/<id>.json in the cluster dir) holds what the client saw;
`refresh` asks the nodes (pid and rc files) for the truth.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import executor
from skyterra import progress as reporting
from skyterra.cluster import Cluster, Node
from skyterra.errors import CommandFailedError, SkyterraError

PENDING, SETTING_UP, RUNNING = "PENDING", "SETTING_UP", "RUNNING"
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
FAILED_SETUP = "FAILED_SETUP"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, FAILED_SETUP)


@dataclasses.dataclass
class Job:
    job_id: int
    name: str = ""
    status: str = PENDING
    num_nodes: int = 1
    submitted_at: float = dataclasses.field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    failed_node: str = ""
    cancel_requested: bool = False

    @property
    def key(self) -> str:
        return str(self.job_id)


class JobStore:
    """jobs/<id>.json files of one cluster."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, job_id: int) -> Path:
        return self.directory / f"{int(job_id)}.json"

    def new(self, name: str, num_nodes: int) -> Job:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        existing = [job.job_id for job in self.all()]
        job = Job(job_id=max(existing, default=0) + 1, name=name, num_nodes=num_nodes)
        self.save(job)
        return job

    def save(self, job: Job) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(job.job_id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dataclasses.asdict(job), handle, indent=2, sort_keys=True)
        os.replace(tmp, path)

    def get(self, job_id: int) -> Job:
        try:
            return Job(**json.loads(self._path(job_id).read_text()))
        except FileNotFoundError:
            raise SkyterraError(f"job {job_id} does not exist on this cluster; `skyterra "
                                "queue CLUSTER` lists the jobs.") from None

    def all(self) -> list[Job]:
        if not self.directory.is_dir():
            return []
        jobs = []
        for path in self.directory.glob("*.json"):
            if path.stem.isdigit():
                jobs.append(Job(**json.loads(path.read_text())))
        return sorted(jobs, key=lambda job: job.job_id)

    def latest(self) -> Job | None:
        jobs = self.all()
        return jobs[-1] if jobs else None


def job_env(cluster: Cluster, node: Node, task_envs: dict[str, str], job_id: int,
            phase: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The SkyPilot environment of one node (plus SKYTERRA_* aliases).

    `overrides` win over everything: a managed job keeps its SKYPILOT_TASK_ID
    across recoveries and adds its recovery count.
    """
    ips = "\n".join(cluster.private_ips)
    task_id = f"sky-{time.strftime('%Y-%m-%d-%H-%M-%S')}_{cluster.name}_{job_id}"
    sky = {"NUM_NODES": str(len(cluster.nodes)),
           "NUM_GPUS_PER_NODE": str(cluster.num_gpus_per_node),
           "TASK_ID": task_id, "CLUSTER_INFO": cluster.info_json(),
           "NODE_RANK": str(node.rank), "NODE_IPS": ips, "INTERNAL_JOB_ID": str(job_id)}
    if phase == "setup":
        sky.update(SETUP_NODE_RANK=str(node.rank), SETUP_NODE_IPS=ips)
    env = {"PYTHONUNBUFFERED": "1", **cluster.node_env, **task_envs}
    for key, value in sky.items():
        env[f"SKYPILOT_{key}"] = value
        env[f"SKYTERRA_{key}"] = value
    env.update(overrides or {})
    return env


def start_all(cluster: Cluster, job_key: str, script: str,
              env_for: Callable[[Node], dict[str, str]]) -> None:
    """Start `script` detached on every node (in parallel); raise naming a failed node.

    Every node is connected to first (host key checked) and the script starts only
    when all answered: a node that cannot be reached does not leave the others
    running a job alone.
    """
    shells = {node.rank: executor.NodeShell(cluster, node) for node in cluster.nodes}
    try:
        executor.for_each_node(cluster, lambda node: shells[node.rank].open()
                               ).raise_first("connect to")
        executor.for_each_node(
            cluster, lambda node: executor.start_detached(shells[node.rank], job_key, script,
                                                          env_for(node))
        ).raise_first("start the command")
    finally:
        for shell in shells.values():
            shell.close()


def follow_all(cluster: Cluster, job_key: str, sink: executor.Sink, *,
               on_done: Callable[[Node], None] | None = None) -> dict[int, int]:
    """Stream every node's log until its process ends; return rc per rank.

    When one node fails, the others are stopped, as SkyPilot does: a
    distributed job with a dead rank would only hang. on_done(node): a node's
    process ended (progress).
    """
    shells = {node.rank: executor.NodeShell(cluster, node) for node in cluster.nodes}
    try:
        return _follow(cluster, shells, job_key, sink, on_done)
    finally:
        for shell in shells.values():
            shell.close()


def run_phase(cluster: Cluster, job_key: str, script: str,
              env_for: Callable[[Node], dict[str, str]], sink: executor.Sink, *,
              on_done: Callable[[Node], None] | None = None) -> dict[int, int]:
    start_all(cluster, job_key, script, env_for)
    return follow_all(cluster, job_key, sink, on_done=on_done)


def _follow(cluster: Cluster, shells: dict[int, executor.NodeShell], job_key: str,
            sink: executor.Sink, on_done: Callable[[Node], None] | None = None
            ) -> dict[int, int]:
    codes: dict[int, int] = {}
    stopped = False

    def follow(node: Node) -> int:
        nonlocal stopped
        writer = executor.PrefixWriter(node.label, sink)
        code = executor.follow_log(shells[node.rank], job_key, writer)
        code = 137 if code is None else code
        codes[node.rank] = code
        if code != 0 and not stopped:
            stopped = True
            # Best effort: the job has failed already; a node we cannot stop is reported
            # by the follower of that node, which then fails too.
            stop_everywhere(cluster, job_key, [n for n in cluster.nodes if n.rank != node.rank])
        return code

    results = executor.for_each_node(cluster, follow, limit=0,  # streams: all at once
                                     on_done=on_done)
    results.raise_first("follow the command")
    # In the order the nodes finished (first_failure blames the first): a node's action
    # returns only after it stopped the others, so results.succeeded would list the
    # nodes it stopped before it.
    return {rank: int(code) for rank, code in codes.items()}


def _stop(cluster: Cluster, node: Node, job_key: str) -> None:
    shell = executor.NodeShell(cluster, node)
    try:
        executor.kill_detached(shell, job_key)
    finally:
        shell.close()


def first_failure(cluster: Cluster, codes: dict[int, int]) -> tuple[Node, int] | None:
    """The node that failed first: `codes` is in the order nodes finished, so a node we
    stopped because another failed is never blamed."""
    for rank, code in codes.items():
        if code != 0:
            return cluster.nodes[rank], code
    return None


def run_setup(cluster: Cluster, script: str, envs: dict[str, str], job: Job,
              sink: executor.Sink, progress: executor.Sink | None = None,
              overrides: dict[str, str] | None = None) -> None:
    """Setup on every node, blocking; progress (a reporter) counts the nodes done."""
    with reporting.phase(progress or (lambda line: None), "setup",
                         len(cluster.nodes)) as shown:
        shown.expect([n.name for n in cluster.nodes])
        codes = run_phase(cluster, f"{job.key}-setup", script,
                          lambda node: job_env(cluster, node, envs, job.job_id, "setup",
                                               overrides),
                          reporting.output_sink(progress, sink) if progress else sink,
                          on_done=lambda node: shown.done(node.name))
    failure = first_failure(cluster, codes)
    if failure:
        node, code = failure
        raise CommandFailedError(f"setup failed on {node.name} ({node.ip}) of cluster "
                                 f"'{cluster.name}' with exit code {code}; run was not "
                                 "started. Fix the setup commands and `skyterra launch` "
                                 "again (the cluster is kept).", node=node.name,
                                 returncode=code)


def refresh(cluster: Cluster, store: JobStore, job: Job) -> Job:
    """Ask the nodes how the job is doing; stop a half-failed job; save and return it."""
    if job.status in TERMINAL or job.status == PENDING:
        return job

    def look(node: Node) -> tuple[int | None, bool]:
        return executor.job_state(executor.NodeShell(cluster, node), job.key)

    states = executor.for_each_node(cluster, look)
    for error in states.failed.values():
        if isinstance(error, (executor.HostKeyMismatchError, KeyboardInterrupt)):
            raise error  # not "a node does not answer": someone else answers
    if not states.ok:
        return job  # a node does not answer: keep what we knew
    codes = {rank: value[0] for rank, value in states.succeeded.items()}
    running = [rank for rank, value in states.succeeded.items() if value[1]]
    failed = sorted(rank for rank, code in codes.items() if code not in (None, 0))
    if running and not failed:
        return job
    if running and failed:  # best effort, as in _follow: the job has failed already
        stop_everywhere(cluster, job.key, [cluster.nodes[r] for r in running])
    finish(store, job, {r: (c if c is not None else 137) for r, c in codes.items()}, cluster)
    return job


def finish(store: JobStore, job: Job, codes: dict[int, int], cluster: Cluster) -> Job:
    """Record how the job ended, from the nodes' exit codes.

    The stored record is read again first: a cancel (or another command's refresh)
    may have changed it since `job` was read, and a cancelled job stays CANCELLED
    even though its processes died of the cancel's signal.
    """
    try:
        stored = store.get(job.job_id)
    except SkyterraError:
        stored = job
    if stored.status in TERMINAL:
        return stored
    job.cancel_requested = job.cancel_requested or stored.cancel_requested
    failure = first_failure(cluster, codes)
    job.ended_at = job.ended_at or time.time()
    if job.cancel_requested:
        job.status = CANCELLED
    elif failure:
        job.status, job.failed_node, job.exit_code = FAILED, failure[0].name, failure[1]
    else:
        job.status, job.exit_code = SUCCEEDED, 0
    store.save(job)
    return job


def stop_everywhere(cluster: Cluster, job_key: str,
                    nodes: list[Node] | None = None) -> executor.NodeResults:
    """Stop the job's process group on each node (default: all); per-node results."""
    return executor.for_each_node(cluster, lambda n: _stop(cluster, n, job_key), nodes)


def cancel(cluster: Cluster, store: JobStore, job: Job) -> Job:
    """Stop the job on every node; CANCELLED only when every node confirmed.

    A node that could not be stopped is named in the error, and the job keeps
    its status (the next refresh sees what the stopped nodes did).
    """
    job.cancel_requested = True
    store.save(job)
    stopped = stop_everywhere(cluster, job.key)
    if not stopped.ok:
        job.cancel_requested = False
        store.save(job)
        node = stopped.failed_nodes()[0]
        raise CommandFailedError(
            f"could not stop job {job.job_id} on {node.name} ({node.ip}) of cluster "
            f"'{cluster.name}': {stopped.failed[node.rank]}. It may still run there; run "
            f"`skyterra cancel {cluster.name} {job.job_id}` again, or `skyterra destroy "
            f"{cluster.name}`.", node=node.name)
    job.status, job.ended_at = CANCELLED, time.time()
    store.save(job)
    return job


def describe(job: Job) -> dict[str, Any]:
    data = dataclasses.asdict(job)
    data["duration"] = ((job.ended_at or time.time()) - job.started_at) if job.started_at else None
    return data
