"""Launching: task → candidates → provisioned cluster → synced, set up, job started.

`launch_cluster` is the whole of `skyterra launch`; `dryrun` stops after
rendering. A new cluster is recorded before Terraform runs and removed again
if it fails to come up; an existing one stays where it is and is repaired
(dead nodes replaced) instead of moved.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import secrets as _secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import backend, config, jobs, state
from skyterra.clouds import ClusterSpec, get_cloud
from skyterra.cluster import Cluster
from skyterra.errors import (
    ClusterBusyError,
    ConfigError,
    SkyterraError,
    TaskError,
)
from skyterra.optimizer import Candidate, optimize
from skyterra.provision import check_nothing_left, spec_for
from skyterra.request import print_line
from skyterra.sharing import fetch_shared
from skyterra.task import Task

Output = Callable[[str], None]


@dataclasses.dataclass
class LaunchResult:
    """What a launch did: the cluster, the job it started, where it went and why."""

    cluster_name: str
    job_id: int | None
    candidate: Candidate | None
    candidates: list[Candidate]
    exit_code: int | None = None
    rendered_dir: Path | None = None


def default_cluster_name() -> str:
    """SkyPilot's shape, sky-<4 hex>-<user>: valid on every cloud."""
    user = re.sub(r"[^a-z0-9]", "", getpass.getuser().lower())[:10] or "user"
    return f"sky-{_secrets.token_hex(2)}-{user}"


def _clouds_for(task: Task, clouds: list[str] | None) -> list[str]:
    """Clouds to consider: explicit ones, the task's own, else those with credentials."""
    if clouds:
        return clouds
    named = sorted({r.cloud for r in task.resources if r.cloud})
    if named:
        return named
    enabled = config.enabled_clouds()
    if enabled:
        return enabled
    found = [name for name in ("aws", "gcp", "azure")
             if get_cloud(name).check_credentials().ok]
    if not found:
        raise TaskError("no cloud has credentials here (`skyterra check` says why). Use "
                        "`--cloud local` to run on this machine, or set up AWS, GCP or Azure "
                        "credentials.", field="resources.cloud")
    return found


def plan_candidates(task: Task, clouds: list[str] | None = None) -> list[Candidate]:
    return optimize(task, _clouds_for(task, clouds))


def dryrun(task: Task, cluster_name: str | None = None, clouds: list[str] | None = None,
           out_dir: Path | None = None) -> LaunchResult:
    """Choose candidates and render the module for the best one; create nothing."""
    from skyterra.provision import render_for

    name = state.check_cluster_name(default_cluster_name() if cluster_name is None else
                                    cluster_name)
    candidates = plan_candidates(task, clouds)
    best = candidates[0]
    directory = Path(out_dir) if out_dir else state.ensure_home().parent / "dryrun" / name
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "ssh" / "id_ed25519"
    public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDRYRUNLRVlSRU5ERVJFRE9OTFlGT1JEUllSVU4 " \
                 f"skyterra-dryrun-{name}"
    spec = ClusterSpec(name=name, directory=directory, num_nodes=task.num_nodes,
                       public_key=public_key, private_key_path=key, slot=1,
                       options=config.provision_options())
    render_for(task, best, spec)
    return LaunchResult(name, None, best, candidates, rendered_dir=directory)


def launch_cluster(task: Task, cluster_name: str | None = None, *,
                   clouds: list[str] | None = None, detach_run: bool = False,
                   provision_only: bool = False, dryrun_only: bool = False,
                   out: Output = print_line, progress: Output = print_line) -> LaunchResult:
    """Provision (or reuse) the cluster, sync, set up, and start the run as a job."""
    from skyterra import provision

    task.check_required_envs()
    if dryrun_only:
        return dryrun(task, cluster_name, clouds)
    task.check_local_paths()
    name = state.check_cluster_name(default_cluster_name() if cluster_name is None else
                                    cluster_name)
    _check_tools()
    cluster_dir = state.ClusterDir(name)
    fetch_shared(name, progress)
    existing = cluster_dir.load() if cluster_dir.exists() else None
    candidates = _with_credentials(_candidates_for(task, existing, clouds))
    state.ensure_home()
    with cluster_dir.lock("launch"):
        record = existing or _new_record(cluster_dir, task)
        spec = spec_for(cluster_dir, record, task.num_nodes)
        for warning in get_cloud(candidates[0].cloud).warnings(task, candidates[0]):
            progress(f"warning: {warning}")

        def remember(candidate: Candidate) -> None:
            cluster_dir.update(cloud=candidate.cloud, region=candidate.region,
                               zone=candidate.zone, instance_type=candidate.instance_type,
                               accelerator=candidate.accelerator,
                               accelerator_count=candidate.accelerator_count,
                               price=candidate.cluster_price, num_nodes=task.num_nodes)
        try:
            try:
                done = provision.provision(task, candidates, spec, cluster_dir, progress,
                                           remember)
                if not provision_only:  # (emulated clouds have no SSH to wait for)
                    _repair_dead_nodes(task, done, spec, cluster_dir, progress)
                    provision.publish_host_keys(task, done, spec, cluster_dir, progress)
            except OSError as os_error:  # disk full, read-only home: no traceback
                raise ConfigError(f"cannot write {os_error.filename or cluster_dir.path} "
                                  f"({os_error.strerror}). Free disk space or fix the "
                                  "permissions, then launch again.") from None
            cluster = done.cluster
        except SkyterraError as error:
            if getattr(error, "kind", "") == "locked":
                if existing is None:
                    state.remove_cluster_dir(cluster_dir, keep_lock=True)
                raise ClusterBusyError(f"cluster '{name}' is busy: another machine or command "
                                       "holds its Terraform state lock. Wait for it to "
                                       "finish, then try again.") from None
            if existing is None:
                _clean_up_failed_launch(cluster_dir, error, progress)
            cluster_dir.update(status=state.STATUS_FAILED, last_error=str(error)[:2000])
            raise
        finally:
            cluster_dir.protect_files()  # Terraform wrote its state 0644
        record = cluster_dir.update(status=state.STATUS_UP, nodes=cluster.node_records(),
                                    ssh_user=cluster.ssh_user, ssh_port=cluster.ssh_port,
                                    ssh_key=str(cluster.ssh_key), node_env=cluster.node_env,
                                    launched_at=record.launched_at or time.time(),
                                    task=task.to_yaml_config(), last_error="")
        from skyterra import ssh_config

        ssh_config.write(cluster)
        progress(f"cluster '{name}' is up: {len(cluster.nodes)} node(s), head {cluster.head.ip}"
                 f" (ssh {name}, once `skyterra ssh-setup` is done)")
        if provision_only:
            return LaunchResult(name, None, done.candidate, candidates)
        job = submit(cluster, cluster_dir, task, out, run_setup=True, progress=progress)
    result = LaunchResult(name, job.job_id, done.candidate, candidates)
    if not detach_run:
        result.exit_code = follow_job(cluster, cluster_dir, job, out)
    return result


def _clean_up_failed_launch(cluster_dir: state.ClusterDir, error: SkyterraError,
                            progress: Output) -> None:
    """A new cluster that failed to come up is destroyed and forgotten, like SkyPilot does.

    If the cleanup itself fails, the record stays (FAILED) so that `skyterra
    destroy` can finish the job, and the error says so.
    """
    from skyterra import provision

    record = cluster_dir.load()
    progress(f"launch failed; removing what was created for cluster '{cluster_dir.name}'")
    applied = any((cluster_dir.path / name).exists() for name in
                  ("terraform.tfstate", backend.BACKEND_VALUES_FILE))
    try:
        if record.cloud and applied:
            provision.destroy(cluster_dir, record.cloud, progress)
        if record.cloud:
            check_nothing_left(cluster_dir, record, progress)
    except (SkyterraError, OSError) as cleanup_error:
        error.args = ((f"{error}\nThe partial cluster could not be removed ({cleanup_error}). "
                      f"Run `skyterra destroy {cluster_dir.name}` to retry."),)
        return

    state.forget(cluster_dir)
    error.args = ((f"{error}\nNothing was left behind: cluster '{cluster_dir.name}' was "
                  "removed."),)
    raise error


def _with_credentials(candidates: list[Candidate]) -> list[Candidate]:
    """Drop candidates on clouds without credentials; none left is a clear error, raised
    before anything is recorded (Terraform would only fail later, less clearly)."""
    from skyterra.errors import ConfigError

    reports = {name: get_cloud(name).check_credentials()
               for name in dict.fromkeys(c.cloud for c in candidates)}
    usable = [c for c in candidates if reports[c.cloud].ok]
    if usable:
        return usable
    reasons = " ".join(f"{name}: {r.detail}{' Fix: ' + r.hint if r.hint else ''}"
                       for name, r in reports.items())
    raise ConfigError(f"cannot use {', '.join(reports)} from this machine (no credentials or "
                      f"missing tools). {reasons} (`skyterra check` shows what is found.)")


def _check_tools() -> None:
    """Missing programs are reported before anything is recorded or created."""
    import shutil

    from skyterra.errors import MissingToolError
    from skyterra.terraform import find_binary

    find_binary()
    for tool, package in (("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"),
                          ("ssh-keyscan", "openssh-client"), ("rsync", "rsync")):
        if not shutil.which(tool):
            raise MissingToolError(f"{tool} is not installed; install it (Debian: apt-get "
                                   f"install {package}) and run the command again.")


def _candidates_for(task: Task, existing: state.ClusterRecord | None,
                    clouds: list[str] | None) -> list[Candidate]:
    """A new cluster may go anywhere; one that has nodes stays where they are (also when
    its last command failed: its nodes still exist, moving would orphan them)."""
    if existing is None or not existing.cloud or not (
            existing.status == state.STATUS_UP or existing.nodes):
        return plan_candidates(task, clouds)
    if clouds and existing.cloud not in clouds:
        raise TaskError(f"cluster '{existing.name}' already exists on {existing.cloud}; "
                        f"destroy it first (`skyterra destroy {existing.name}`) or choose "
                        "another name with -c.", field="cloud")
    if task.num_nodes != existing.num_nodes:
        pass  # a changed node count is applied in place (Terraform adds or removes nodes)
    same = [c for c in optimize(task, [existing.cloud])
            if (c.region, c.zone, c.instance_type) == (existing.region, existing.zone,
                                                       existing.instance_type)]
    if not same:
        raise TaskError(f"cluster '{existing.name}' runs {existing.instance_type} in "
                        f"{existing.zone or existing.region}, which does not satisfy this "
                        "task's resources. Destroy it or use another cluster name.",
                        field="resources")
    return same[:1]


def _new_record(cluster_dir: state.ClusterDir, task: Task) -> state.ClusterRecord:
    """Record the cluster before anything is created, so destroy can always find it."""
    from skyterra.clouds.local import choose_slot, ssh_port_for

    cluster_dir.create()
    slot = choose_slot(str(cluster_dir.path), state.used_slots())
    record = state.ClusterRecord(name=cluster_dir.name, num_nodes=task.num_nodes, slot=slot,
                                 ssh_port=ssh_port_for(slot), task=task.to_yaml_config(),
                                 cloud_options={"nodes_dir": str(cluster_dir.path / "nodes")})
    cluster_dir.save(record)
    return record


def _repair_dead_nodes(task: Task, done: Any, spec: ClusterSpec,
                       cluster_dir: state.ClusterDir, progress: Output) -> None:
    """Wait for SSH; a node that stays dead on an unchanged cluster is replaced."""
    from skyterra import executor, provision

    cluster = done.cluster
    if not done.changed:
        dead = executor.probe(cluster)
        if dead:
            cloud = get_cloud(done.candidate.cloud)
            names = ", ".join(n.name for n in dead)
            progress(f"node(s) {names} do not answer; replacing them")
            executor.forget_host_keys(cluster, dead)
            addresses = [cloud.node_resource_address(n.rank) for n in dead]
            done.cluster = provision.apply_candidate(task, done.candidate, spec, cluster_dir,
                                                     progress, replace=addresses).cluster
            cluster = done.cluster
    if done.changed:
        executor.forget_host_keys(cluster, cluster.nodes)
    executor.pin_host_keys(cluster, timeout=float(os.environ.get("SKYTERRA_SSH_TIMEOUT", "300")))


def _sync(cluster: Cluster, task: Task) -> None:
    from skyterra import executor

    if task.workdir is not None:
        executor.rsync_to_nodes(cluster, task.workdir, executor.WORKDIR)
    for remote, local in task.resolved_file_mounts().items():
        executor.rsync_to_nodes(cluster, local, remote)


def _task_env(task: Task) -> dict[str, str]:
    return {**{k: v for k, v in task.envs.items() if v is not None},
            **{k: v for k, v in task.secrets.items() if v is not None}}


def submit(cluster: Cluster, cluster_dir: state.ClusterDir, task: Task, out: Output, *,
            run_setup: bool, progress: Output) -> jobs.Job:
    """Sync files, run setup (blocking), then start the run detached on every node."""
    store = jobs.JobStore(cluster_dir.jobs_path)
    _wait_for_idle(cluster, store, progress)
    job = store.new(task.name or "", len(cluster.nodes))
    envs = _task_env(task)
    try:
        _sync(cluster, task)
        if run_setup and task.setup:
            job.status = jobs.SETTING_UP
            store.save(job)
            progress("running setup on all nodes")
            jobs.run_setup(cluster, task.setup, envs, job, out)
        job.status, job.started_at = jobs.RUNNING, time.time()
        store.save(job)
        if task.run:
            jobs.start_all(cluster, job.key, task.run,
                           lambda node: jobs.job_env(cluster, node, envs, job.job_id, "run"))
        else:
            jobs.finish(store, job, {n.rank: 0 for n in cluster.nodes}, cluster)
    except BaseException as error:
        if job.status not in jobs.TERMINAL:
            job.status = jobs.FAILED_SETUP if job.status == jobs.SETTING_UP else jobs.FAILED
            job.ended_at = time.time()
            store.save(job)
        if isinstance(error, KeyboardInterrupt):
            raise
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
