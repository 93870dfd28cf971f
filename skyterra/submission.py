"""Submitting work to an UP cluster: sync files, run setup, start the run as a job.

The job half of `skyterra launch` and all of `skyterra exec`. The run starts
detached on every node (it outlives the terminal); `follow_job` streams its
logs until it ends, and Ctrl-C stops the streaming only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from skyterra import buckets, container, executor, gpucheck, jobs, relay, state
from skyterra import progress as reporting
from skyterra.cluster import Cluster, Node
from skyterra.errors import SkyterraError
from skyterra.task import Task

Output = Callable[[str], None]


def _sync(cluster: Cluster, task: Task, progress: Output) -> None:
    if task.workdir is None and task.workdir_git is not None:
        _clone(cluster, task)
    transfers = ([(task.workdir, executor.WORKDIR)] if task.workdir is not None else []) + [
        (local, remote) for remote, local in task.resolved_file_mounts(cluster.ssh_key).items()]
    for local, remote in transfers:
        with reporting.phase(progress, f"syncing {local.name or local} to {remote}",
                             len(cluster.nodes)) as shown:
            shown.expect([n.name for n in cluster.nodes])
            executor.rsync_to_nodes(cluster, local, remote,
                                    on_done=lambda node, shown=shown: shown.done(node.name))

    if task.mounts_cluster_key():
        _trust_each_other(cluster)
    if task.storage_mounts:
        buckets.prepare(task, cluster.name, progress)
        buckets.attach(cluster, task, progress)

def _trust_each_other(cluster: Cluster) -> None:
    """A task that copies the cluster key to its nodes (SkyPilot's ~/.ssh/sky-key) SSHes
    from node to node: every node learns the others' host keys, the ones pinned when the
    cluster came up, so those connections are verified rather than asked about."""
    known = executor.private_known_hosts(cluster, cluster.nodes)

    def add(node: Node) -> None:
        shell = executor.NodeShell(cluster, node)
        try:
            result = shell.run(relay.add_lines_command("known_hosts"), in_stream=known)
        finally:
            shell.close()
        if result.exited != 0:
            raise RuntimeError(f"could not add the cluster's host keys to ~/.ssh/known_hosts "
                               f"({result.stderr.strip() or 'no output'})")
    executor.for_each_node(cluster, add).raise_first("share the nodes' host keys")


def _clone(cluster: Cluster, task: Task) -> None:
    """workdir as git {url, ref}: every node clones it into ~/sky_workdir (fresh each time,
    like a synced workdir); a failed clone names the node and git's own words."""
    script = task.workdir_git.clone_script(executor.WORKDIR)

    def clone(node):
        shell = executor.NodeShell(cluster, node)
        try:
            result = shell.run(f"cd && {{ {script}; }} 2>&1")
        finally:
            shell.close()
        if result.exited != 0:
            last = (result.stdout.strip().splitlines() or ["git failed"])[-1]
            raise RuntimeError(f"git clone of {task.workdir_git.url} failed ({last})")
    executor.for_each_node(cluster, clone).raise_first("clone the workdir")


def _task_env(task: Task) -> dict[str, str]:
    return {**{k: v for k, v in task.envs.items() if v is not None},
            **{k: v for k, v in task.secrets.items() if v is not None}}


def _start_container(cluster: Cluster, task: Task, envs: dict[str, str]) -> None:
    """With `image_id: docker:...` every node runs its jobs in one container: start it
    (or keep the running one) once the files it mounts are on the nodes."""
    spec = container.ContainerSpec.from_record(cluster.container)
    if spec is not None:
        container.ensure(cluster, spec, container.mount_paths(task), envs)


def _in_container(cluster: Cluster, script: str,
                  env_for: Callable[[Node], dict[str, str]]) -> str:
    """The job script: `script` itself, or a wrapper that runs it in the node's container."""
    if not cluster.container:
        return script
    return container.wrap(script, list(env_for(cluster.head)))


def submit(cluster: Cluster, cluster_dir: state.ClusterDir, task: Task, out: Output, *,
           run_setup: bool, progress: Output,
           env_overrides: dict[str, str] | None = None) -> jobs.Job:
    """Sync files, run setup (blocking), then start the run detached on every node.

    env_overrides: variables that win over the SkyPilot ones (managed jobs).
    """
    store = jobs.JobStore(cluster_dir.jobs_path)
    _wait_for_idle(cluster, store, progress)
    job = store.new(task.name or "", len(cluster.nodes))
    buckets.bind_stores(task, cluster.cloud)
    envs = {**buckets.node_env(task, cluster.cloud), **_task_env(task)}
    try:
        _sync(cluster, task, progress)
        _start_container(cluster, task, envs)
        if run_setup and task.setup:
            job.status = jobs.SETTING_UP
            store.save(job)
            progress("running setup on all nodes")
            setup_env = lambda node: jobs.job_env(cluster, node, envs, job.job_id, "setup",
                                                  env_overrides)
            jobs.run_setup(cluster, _in_container(cluster, task.setup, setup_env), envs, job,
                           out, progress, env_overrides)
        if run_setup and cluster.num_gpus_per_node > 0:  # a launch: GPUs first, then run
            job.status = jobs.SETTING_UP
            store.save(job)
            gpucheck.check(cluster, progress)
        job.status, job.started_at = jobs.RUNNING, time.time()
        store.save(job)
        if task.run:
            run_env = lambda node: jobs.job_env(cluster, node, envs, job.job_id, "run",
                                                env_overrides)
            jobs.start_all(cluster, job.key,
                           _in_container(cluster, buckets.wrap_run(task, task.run), run_env),
                           run_env)
        else:
            jobs.finish(store, job, {n.rank: 0 for n in cluster.nodes}, cluster)
    except BaseException:  # Ctrl-C included: the job record must not stay "running"
        if job.status not in jobs.TERMINAL:
            job.status = jobs.FAILED_SETUP if job.status == jobs.SETTING_UP else jobs.FAILED
            job.ended_at = time.time()
            store.save(job)
        raise
    progress(f"job {job.job_id} submitted on cluster '{cluster.name}'")
    return job


def _wait_for_idle(cluster: Cluster, store: jobs.JobStore, progress: Output) -> None:
    """Jobs run one at a time (like a cluster whose job uses all GPUs): wait for the last."""
    job = store.latest()
    announced = False
    while job and job.status not in jobs.TERMINAL:
        job = jobs.refresh(cluster, store, job)
        if job.status in jobs.TERMINAL or job.status == jobs.PENDING:
            break
        if not announced:
            progress(f"waiting for job {job.job_id} ({job.status}) to finish first")
            announced = True
        time.sleep(1.0)


def follow_job(cluster: Cluster, cluster_dir: state.ClusterDir, job: jobs.Job,
               out: Output) -> int:
    """Stream the job's logs until it ends; Ctrl-C stops streaming only."""
    store = jobs.JobStore(cluster_dir.jobs_path)
    try:
        codes = jobs.follow_all(cluster, job.key, out)
    except KeyboardInterrupt:
        raise DetachedInterrupt(cluster.name, job.job_id) from None
    job = store.get(job.job_id)
    if job.status not in jobs.TERMINAL:
        jobs.finish(store, job, codes, cluster)
    return job.exit_code or 0 if job.status == jobs.SUCCEEDED else (job.exit_code or 1)


class DetachedInterrupt(SkyterraError):
    """Ctrl-C while streaming: the job keeps running; tell the user how to come back."""

    exit_code = 130

    def __init__(self, cluster: str, job_id: int):
        super().__init__(f"stopped streaming; job {job_id} keeps running on cluster "
                         f"'{cluster}'.\n  re-attach: skyterra logs {cluster} {job_id}\n"
                         f"  cancel:    skyterra cancel {cluster} {job_id}")
