"""The SDK: what `import skyterra as sky` offers, and what the CLI calls.

Each function takes a task or a cluster name, does one user-level thing and
returns plain values (job ids, records). Output goes to `sink`/`progress`
callables so the CLI can print with rich and pipelines can capture it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import (
    autostop,
    backend,
    buckets,
    bucketstate,
    config,
    executor,
    jobgroup,
    jobs,
    launcher,
    ledger,
    pipeline,
    planning,
    power,
    provision,
    state,
)
from skyterra import dag as _dag
from skyterra.cluster import Cluster
from skyterra.dag import Dag
from skyterra.errors import (
    ClusterNotFoundError,
    PipelineError,
    SkyterraError,
    StorageError,
    TaskError,
)
from skyterra.planning import LaunchResult, dryrun, plan_candidates
from skyterra.request import Request, get, print_line, stream_and_get
from skyterra.sharing import fetch_shared, forget_destroyed_elsewhere
from skyterra.submission import DetachedInterrupt, follow_job, submit
from skyterra.task import Task

__all__ = ["Dag", "DetachedInterrupt", "LaunchResult", "PipelineError", "Request", "attach",
           "autostop_cluster", "cancel", "cost_report", "down", "dryrun", "dryrun_dag", "exec",
           "get", "get_cluster", "job_exit_code", "job_status", "jobs_cancel", "jobs_launch",
           "jobs_logs", "jobs_queue", "jobs_wait", "launch", "launch_cluster", "launch_dag",
           "plan_candidates", "provision_log", "queue", "render", "start", "status", "stop",
           "stream_and_get", "tail_logs"]

Output = Callable[[str], None]


def launch(task: Task, cluster_name: str | None = None, *, clouds: list[str] | None = None,
           detach_run: bool = False, provision_only: bool = False, dryrun: bool = False,
           out: Output = print_line, progress: Output = print_line, stream: bool = True
           ) -> LaunchResult | Request:
    """Launch `task` on a (new or existing) cluster.

    From Python this returns a Request, like SkyPilot's SDK: pass it to
    `stream_and_get` to watch provisioning and get `(job_id, handle)`. The
    job then runs detached; follow it with `tail_logs`.
    """
    if stream and not provision_only and out is print_line and progress is print_line:
        return Request(lambda o, p: launch_cluster(task, cluster_name, clouds=clouds,
                                                   detach_run=True, dryrun_only=dryrun,
                                                   out=o, progress=p))
    return launch_cluster(task, cluster_name, clouds=clouds, detach_run=detach_run,
                          provision_only=provision_only, dryrun_only=dryrun, out=out,
                          progress=progress)


def launch_cluster(task: Task, cluster_name: str | None = None, *,
                   clouds: list[str] | None = None, detach_run: bool = False,
                   provision_only: bool = False, dryrun_only: bool = False,
                   candidates: list | None = None, out: Output = print_line,
                   progress: Output = print_line, idle_minutes_to_autostop: int | None = None,
                   down: bool = False) -> LaunchResult:
    """Provision (or reuse) the cluster, sync, set up, and start the run as a job.

    `candidates`: a ranking already made (`plan_candidates`) and shown to the user.
    `idle_minutes_to_autostop` / `down` (SkyPilot's names) override the task's
    `resources.autostop`.
    """
    setting = _launch_autostop(task, idle_minutes_to_autostop, down)
    if setting is not None:
        clouds = planning.clouds_with_autostop(task, clouds)
        # -i/--down become the task's own setting, so the module is rendered for them
        # from the first apply (AWS: the instances' shutdown behaviour).
        task.set_resources_override(autostop=setting.to_record())
    if dryrun_only:
        return dryrun(task, cluster_name, clouds)
    with launcher.bring_up(task, cluster_name, clouds=clouds, candidates=candidates,
                           wait_for_ssh=not provision_only, progress=progress) as up:
        if provision_only:
            return LaunchResult(up.name, None, up.candidate, up.candidates)
        job = submit(up.cluster, up.cluster_dir, task, out, run_setup=True,
                     progress=up.progress)
    if setting is not None:
        power.set_autostop(up.name, setting)
        progress(f"autostop: cluster '{up.name}' will be {setting.reason()} "
                 f"(wait_for: {setting.wait_for})")
    result = LaunchResult(up.name, job.job_id, up.candidate, up.candidates)
    if not detach_run:
        result.exit_code = follow_job(up.cluster, up.cluster_dir, job, out)
    return result


def launch_dag(dag: Dag, cluster_name: str | None = None, *, clouds: list[str] | None = None,
               out: Output = print_line, progress: Output = print_line) -> list[LaunchResult]:
    """Run a pipeline's tasks one after another, each waiting for the previous one.

    Tasks with the same resources share a cluster; a failed task raises PipelineError
    (the tasks after it do not run). Returns one LaunchResult per task.
    """
    if dag.group is not None:
        return launch_group(dag, cluster_name, clouds=clouds, out=out, progress=progress)
    return _dag.launch(dag, lambda task, name: launch_cluster(
        task, name, clouds=clouds, out=out, progress=progress), cluster_name,
        progress=progress)


def launch_group(dag: Dag, cluster_name: str | None = None, *,
                 clouds: list[str] | None = None, out: Output = print_line,
                 progress: Output = print_line) -> list[jobgroup.TaskRun]:
    """A job group (execution: parallel): every task on its own cluster at the same time,
    every cluster destroyed at the end; GroupError names the task that failed."""
    return jobgroup.run(dag.group, dag.tasks, _GroupOps(clouds), base=cluster_name, out=out,
                        progress=progress)


class _GroupOps:
    """The SDK calls a job group makes (skyterra/jobgroup.py's Ops)."""

    def __init__(self, clouds: list[str] | None):
        self.clouds = clouds

    def provision(self, task: Task, cluster: str, progress: Output) -> None:
        launch_cluster(task, cluster, clouds=self.clouds, provision_only=True,
                       progress=progress)

    def head_ip(self, cluster: str) -> str:
        return get_cluster(cluster)[2].nodes[0].ip

    def start(self, task: Task, cluster: str, out: Output, progress: Output) -> int:
        return launch_cluster(task, cluster, clouds=self.clouds, detach_run=True, out=out,
                              progress=progress).job_id

    def follow(self, cluster: str, job_id: int, out: Output) -> str:
        tail_logs(cluster, job_id, follow=True, out=out)
        return job_status(cluster, job_id).status

    def cancel(self, cluster: str, job_id: int) -> None:
        cancel(cluster, [job_id])

    def down(self, cluster: str, progress: Output) -> None:
        down(cluster, progress=progress)


def dryrun_dag(dag: Dag, cluster_name: str | None = None, clouds: list[str] | None = None,
               out_dir: Path | None = None) -> list[LaunchResult]:
    """Every task's dry run: candidates and rendered module, nothing created."""
    return _dag.dryrun(dag, cluster_name, clouds, out_dir)


def _launch_autostop(task: Task, idle_minutes: int | None, down: bool
                     ) -> autostop.Autostop | None:
    return autostop.for_launch(task.resources[0].autostop, idle_minutes, down)


def stop(cluster_name: str, *, progress: Output = print_line) -> str:
    """Stop the cluster's nodes: disks and state kept, compute no longer paid."""
    fetch_shared(cluster_name, progress)
    return power.stop(cluster_name, progress=progress)


def start(cluster_name: str, *, progress: Output = print_line) -> state.ClusterRecord:
    """Start a stopped cluster's nodes again (same disks; new IPs are read back)."""
    fetch_shared(cluster_name, progress)
    power.start(cluster_name, progress=progress)
    return state.ClusterDir(cluster_name).load()


def autostop_cluster(cluster_name: str, idle_minutes: int | None = None, *, down: bool = False,
                     wait_for: str = "jobs_and_ssh", cancel: bool = False) -> None:
    """Set (or cancel) autostop on an UP cluster; idle_minutes None: SkyPilot's 5."""
    if cancel:
        power.set_autostop(cluster_name, None)
        return
    power.set_autostop(cluster_name, autostop.parse(
        {"idle_minutes": autostop.DEFAULT_IDLE_MINUTES if idle_minutes is None
         else idle_minutes, "down": down, "wait_for": wait_for}, "autostop"))


def cost_report(now: float | None = None) -> list[ledger.CostRow]:
    """Every cluster this home launched, destroyed ones included: price, up-time, cost."""
    return ledger.report(now=now)


def get_cluster(name: str) -> tuple[state.ClusterDir, state.ClusterRecord, Cluster]:
    """An UP cluster by name (fetched from the shared backend if launched elsewhere)."""
    fetch_shared(name)
    cluster_dir = state.ClusterDir(name)
    record = cluster_dir.load()
    if record.status != state.STATUS_UP or not record.nodes:
        raise SkyterraError(f"cluster '{name}' is {record.status}, not UP. Run `skyterra "
                            f"launch` to finish it, or `skyterra destroy {name}`.")
    return cluster_dir, record, Cluster.from_record(record, cluster_dir.known_hosts_path)


def exec(task: Task, cluster_name: str, *, detach_run: bool = False, out: Output = print_line,
         progress: Output = print_line) -> LaunchResult:
    """Run `task` on an existing cluster: re-sync the workdir, no setup, a new job."""
    task.check_required_envs()
    task.check_local_paths()
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    buckets.check_ready(task, cluster.cloud)
    if task.num_nodes > len(cluster.nodes):
        raise TaskError(f"the task wants {task.num_nodes} nodes but cluster '{cluster_name}' "
                        f"has {len(cluster.nodes)}.", field="num_nodes")
    with cluster_dir.lock("exec"):
        job = submit(cluster, cluster_dir, task, out, run_setup=False, progress=progress)
    result = LaunchResult(cluster_name, job.job_id, None, [])
    if not detach_run:
        result.exit_code = follow_job(cluster, cluster_dir, job, out)
    return result


def down(cluster_name: str, *, progress: Output = print_line, purge: bool = False) -> str | bool:
    """Destroy the cluster's resources and forget it.

    Returns "destroyed", "forgotten" (an attached cluster with purge=True: its
    nodes are the pipeline's, untouched), or False if there was no such cluster.
    """
    cluster_dir = state.ClusterDir(cluster_name)
    fetch_shared(cluster_name, progress)
    if not cluster_dir.path.exists():
        return False
    with cluster_dir.lock("destroy"):
        try:
            record = cluster_dir.load()
        except ClusterNotFoundError:
            record = state.ClusterRecord(name=cluster_name, cloud=provision.guess_cloud(cluster_dir))
        if record.owner == "external" and not purge:
            raise SkyterraError(f"cluster '{cluster_name}' was attached, not created by "
                                "skyterra: its nodes belong to your pipeline. Destroy them "
                                f"there; `skyterra destroy --forget {cluster_name}` only "
                                "removes skyterra's record.")
        if record.owner != "external" and record.cloud:
            _remove_containers(cluster_dir, record, progress)
            power.before_destroy(cluster_dir, record)
            provision.destroy_cluster(cluster_dir, record, progress)
            if record.launched_at:
                ledger.record_event(cluster_name, ledger.DESTROY)
        buckets.release(cluster_name, progress)
        state.forget(cluster_dir)
    return "forgotten" if record.owner == "external" else "destroyed"


def _remove_containers(cluster_dir: state.ClusterDir, record: state.ClusterRecord,
                       progress: Output) -> None:
    """Before destroy, each node removes its task container properly (on a node that
    is a process tree of this machine, nothing of it may outlive the node)."""
    if not record.container or not record.nodes:
        return
    from skyterra import container

    progress("removing the task containers")
    try:
        container.remove(Cluster.from_record(record, cluster_dir.known_hosts_path))
    except Exception as error:  # noqa: BLE001 - best effort: destroy removes the nodes anyway
        progress(f"could not remove every task container ({error}); destroying the nodes")


def status(cluster_names: list[str] | None = None, *, notes: list[str] | None = None,
           progress: Output = print_line) -> list[state.ClusterRecord]:
    """Clusters of this machine, plus those in the shared backend (when it can be listed).

    A cluster whose autostop watcher fired is reconciled first (recorded STOPPED, or
    destroyed and forgotten); what happened is appended to `notes`.
    """
    for record in list(state.list_clusters()):
        if cluster_names and record.name not in cluster_names:
            continue
        note = power.reconcile(record.name, progress)
        if note and notes is not None:
            notes.append(note)
    shared = backend.shared_backend(config.load())
    listed = backend.list_cluster_names(shared) if shared else None
    for name in cluster_names or listed or []:
        fetch_shared(name)
    if listed is not None:
        forget_destroyed_elsewhere(set(listed))
    records = list(state.list_clusters())
    if cluster_names:
        records = [r for r in records if r.name in cluster_names]
    return records


def queue(cluster_name: str, refresh: bool = True) -> list[jobs.Job]:
    """The cluster's jobs, oldest first; with refresh, unfinished ones are asked on the nodes."""
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    result = store.all()
    if refresh:
        result = [jobs.refresh(cluster, store, job) for job in result]
    return result


def cancel(cluster_name: str, job_ids: list[int] | None = None, all: bool = False
           ) -> list[int]:
    """Stop jobs on every node (default: the latest unfinished one); return the ids stopped."""
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    if all:
        targets = [j for j in store.all() if j.status not in jobs.TERMINAL]
    elif job_ids:
        targets = [store.get(job_id) for job_id in job_ids]
    else:
        latest = store.latest()
        targets = [latest] if latest and latest.status not in jobs.TERMINAL else []
    done = []
    for job in targets:
        if job.status not in jobs.TERMINAL:
            jobs.cancel(cluster, store, job)
            done.append(job.job_id)
    return done


def tail_logs(cluster_name: str, job_id: int | None = None, follow: bool = True,
              tail: int | None = None, out: Output = print_line) -> int:
    """Print a job's logs (all nodes, prefixed); return its exit code like SkyPilot."""
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    job = store.get(job_id) if job_id is not None else store.latest()
    if job is None:
        raise SkyterraError(f"cluster '{cluster_name}' has no jobs yet.")
    job = jobs.refresh(cluster, store, job)
    if follow and job.status not in jobs.TERMINAL:
        return follow_job(cluster, cluster_dir, job, out)

    def show(node):
        shell = executor.NodeShell(cluster, node)
        try:
            executor.stream_log(shell, job.key, executor.PrefixWriter(node.label, out),
                                follow=False, tail=tail)
        finally:
            shell.close()
    for node in cluster.nodes:
        show(node)
    return job_exit_code(job)


def provision_log(cluster_name: str) -> str:
    """The cluster's provision log: everything Terraform and setup printed at its last launch."""
    cluster_dir = state.ClusterDir(cluster_name)
    path = cluster_dir.path / "provision.log"
    if not cluster_dir.exists():
        raise ClusterNotFoundError(f"cluster '{cluster_name}' does not exist. `skyterra "
                                   "status` lists clusters.")
    if not path.exists():
        raise SkyterraError(f"cluster '{cluster_name}' has no provision log yet (it is "
                            "written by `skyterra launch`).")
    return path.read_text(encoding="utf-8", errors="replace")


def job_exit_code(job: jobs.Job) -> int:
    """SkyPilot's `logs --status` codes: 0 succeeded, 100 failed, 101 not finished, 103 cancelled."""
    return {jobs.SUCCEEDED: 0, jobs.FAILED: 100, jobs.FAILED_SETUP: 100,
            jobs.CANCELLED: 103}.get(job.status, 101)


def job_status(cluster_name: str, job_id: int | None = None) -> jobs.Job:
    """One job (default: the latest), refreshed from the nodes."""
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    job = store.get(job_id) if job_id is not None else store.latest()
    if job is None:
        raise SkyterraError(f"cluster '{cluster_name}' has no jobs yet.")
    return jobs.refresh(cluster, store, job)


def render(task: Task | str | Path, cloud: str | None = None, out_dir: str | Path = "train",
           cluster_name: str | None = None, provider: bool = True) -> Any:
    """Write a standalone Terraform module for `task` into `out_dir`; return a RenderResult.

    The directory holds the template, terraform.tfvars.json (every value), an SSH
    key under ssh/ and a README of inputs and outputs: plain `terraform apply`
    works there with no skyterra. provider=False leaves out the provider
    configuration, for a pipeline that calls the module as a child (with
    count/for_each). Attach the result with `attach`.
    """
    if not isinstance(task, Task):
        task = Task.from_yaml(task)
    return pipeline.render_standalone(task, out_dir, cloud=cloud, cluster_name=cluster_name,
                                      provider=provider)


def attach(cluster_name: str, outputs: dict[str, Any] | str | Path | None = None, *,
           tf_dir: str | Path | None = None, ssh_key: str | Path | None = None,
           task: Task | str | Path | None = None, progress: Output = print_line
           ) -> state.ClusterRecord:
    """Register nodes created by a pipeline (Terraform outputs) as cluster `cluster_name`.

    `outputs` is `terraform output -json` as a dict or a path to that JSON; or
    give `tf_dir` to read them with `terraform output`. Afterwards exec, logs,
    queue and cancel work; `down` refuses unless purge=True (forget only).
    """
    if task is not None and not isinstance(task, Task):
        task = Task.from_yaml(task)
    return pipeline.attach_outputs(cluster_name, outputs, tf_dir=tf_dir, ssh_key=ssh_key,
                                   task=task, progress=progress)


# --- managed jobs (skyterra/managed/) ---------------------------------------------------
def jobs_launch(task: Task | str | Path, name: str | None = None, *,
                clouds: list[str] | None = None, controller: str | None = None,
                keep_controller: bool = False, progress: Output = print_line) -> int:
    """Start a managed job: its own cluster, recovered after preemption or node loss and
    restarted per `resources.job_recovery`, torn down when it ends. Returns its id.

    controller=None runs the controller as a detached process of this machine;
    controller=CLOUD runs it on a small on-demand node of that cloud (state kept there
    and in the shared backend), destroyed when the job ends unless keep_controller.
    """
    if not isinstance(task, Task):
        task = Task.from_yaml(task)
    if controller:
        from skyterra.managed import remote

        return remote.launch(task, name=name, clouds=clouds, cloud=controller,
                             keep_controller=keep_controller, progress=progress)
    from skyterra.managed import client

    return client.launch(task, name=name, clouds=clouds, progress=progress)


def jobs_queue(refresh: bool = True) -> list[dict[str, Any]]:
    """Managed jobs as plain records (dicts), oldest first: status (STARTING, RUNNING,
    RECOVERING, SUCCEEDED, FAILED, CANCELLED), recovery_count, down_time, cluster_name,
    where, exit_code, failure, log paths. refresh restarts dead controllers."""
    from skyterra.managed import client

    return client.queue(refresh=refresh)


def jobs_cancel(job_ids: list[int] | None = None, all: bool = False) -> list[int]:
    """Cancel managed jobs (default: the latest unfinished one); returns the ids asked."""
    from skyterra.managed import client

    return client.cancel(job_ids, all=all)


def jobs_logs(job_id: int | None = None, follow: bool = True, out: Output = print_line,
              controller: bool = False) -> int:
    """Print a managed job's log (all attempts and recovery events); SkyPilot's exit codes."""
    from skyterra.managed import client

    return client.logs(job_id, follow=follow, out=out, controller=controller)


def jobs_wait(job_id: int, timeout: float | None = None) -> dict[str, Any]:
    """Block until the managed job ends; its final record."""
    from skyterra.managed import client

    job = client.wait(job_id, timeout)
    return client.describe(job)


def storage_ls() -> list[bucketstate.BucketRecord]:
    """The buckets skyterra knows: those it created (each with its own Terraform state),
    and those a cluster of this machine uses."""
    return bucketstate.all_records()


def storage_delete(name: str, progress: Output = print_line) -> None:
    """Delete a bucket skyterra created: `terraform destroy` of its own module (the
    objects go with it). A bucket skyterra did not create is refused, never deleted;
    so is one a cluster still uses."""
    record = bucketstate.load(name)
    if record is None:
        raise StorageError(f"skyterra knows no bucket {name!r}; `skyterra storage ls` lists "
                           "them.")
    bucketstate.check_deletable(record)
    in_use = [c for c in record.clusters if state.ClusterDir(c).exists()]
    if in_use:
        raise StorageError(f"bucket {name!r} is used by cluster '{in_use[0]}'; destroy it "
                           f"first (`skyterra destroy {in_use[0]}`).")
    bucketstate.destroy(record, progress)
