"""Bringing a cluster up: task → candidates → Deployments → applied, answering nodes.

`bring_up` is the provisioning half of `skyterra launch` (the job half is
submission.py). A new cluster is recorded before Terraform runs and removed
again if it fails to come up; an existing one stays where it is and is
repaired (dead nodes replaced) instead of moved. Deciding and `dryrun` live in
planning.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator

from skyterra import (
    backend,
    container,
    deployment,
    executor,
    ledger,
    provision,
    ssh_config,
    state,
)
from skyterra import progress as reporting
from skyterra.catalog import Candidate
from skyterra.clouds import get_cloud
from skyterra.cluster import Cluster
from skyterra.errors import (
    ClusterBusyError,
    ConfigError,
    MissingToolError,
    SkyterraError,
    TaskError,
)
from skyterra.optimizer import optimize
from skyterra.planning import default_cluster_name, plan_candidates
from skyterra.sharing import fetch_shared
from skyterra.task import Task
from skyterra.terraform import find_binary

Output = Callable[[str], None]


@dataclasses.dataclass
class ClusterUp:
    """A cluster whose nodes all answer SSH, recorded UP."""

    name: str
    cluster: Cluster
    cluster_dir: state.ClusterDir
    candidate: Candidate
    candidates: list[Candidate]
    progress: Output = print   # the launch's reporter: also writes the provision log


@contextlib.contextmanager
def bring_up(task: Task, cluster_name: str | None = None, *, clouds: list[str] | None = None,
             candidates: list[Candidate] | None = None, wait_for_ssh: bool = True,
             progress: Output) -> Iterator[ClusterUp]:
    """Provision (or reuse and repair) the cluster until every node answers; record it UP.

    A context manager: the cluster's lock is held from before the apply until the
    `with` block ends, so the caller can submit its job before anyone else gets in.
    `candidates`: the ranking the caller already showed the user (a new cluster only).
    """
    task.check_required_envs()
    task.check_local_paths()
    name = state.check_cluster_name(default_cluster_name() if cluster_name is None else
                                    cluster_name)
    check_tools()
    for warning in task.warnings:
        progress(f"warning: {warning}")
    cluster_dir = state.ClusterDir(name)
    fetch_shared(name, progress)
    existing = cluster_dir.load() if cluster_dir.exists() else None
    candidates = _with_credentials(_candidates_for(task, existing, clouds, candidates))
    candidates = _with_bucket_access(task, candidates)
    state.ensure_home()
    with cluster_dir.lock("launch"):
        if existing is None:
            cluster_dir.save(state.ClusterRecord(name=name, num_nodes=task.num_nodes,
                                                 task=task.to_yaml_config()))
        # Everything Terraform and setup print goes to <cluster>/provision.log as well
        # (`skyterra logs --provision`); the reporter decides what the terminal shows.
        logged = reporting.Logged(progress, cluster_dir.path / reporting.LOG_FILE)
        progress = logged
        try:
            done = _provision(task, cluster_dir, candidates, wait_for_ssh, progress)
        except SkyterraError as error:
            logged.log(f"error: {error}")
            _after_failure(cluster_dir, existing is None, error, progress)
            raise
        finally:
            cluster_dir.protect_files()  # Terraform wrote its state 0644
        cluster = done.cluster
        spec = container.spec_for(done.deployment)
        cluster.container = spec.to_record() if spec else None
        record = cluster_dir.load()
        _record_in_ledger(record, done.deployment.candidate)
        cluster_dir.update(status=state.STATUS_UP, status_reason="", nodes=cluster.node_records(),
                           container=cluster.container or {},
                           ssh_user=cluster.ssh_user, ssh_port=cluster.ssh_port,
                           ssh_key=str(cluster.ssh_key), node_env=cluster.node_env,
                           launched_at=record.launched_at or time.time(),
                           task=task.to_yaml_config(), last_error="")
        ssh_config.write(cluster)
        progress(f"cluster '{name}' is up: {len(cluster.nodes)} node(s), head "
                 f"{cluster.head.ip} (ssh {name}, once `skyterra ssh-setup` is done)")
        try:
            yield ClusterUp(name, cluster, cluster_dir, done.deployment.candidate, candidates,
                            progress)
        except SkyterraError as error:
            logged.log(f"error: {error}")
            raise
        finally:
            logged.close()


def _record_in_ledger(record: state.ClusterRecord, candidate: Candidate) -> None:
    """A first launch opens the cluster's line in the cost ledger; a stopped one restarts
    its clock."""
    if not record.launched_at:
        ledger.record_event(record.name, ledger.LAUNCH, price=candidate.cluster_price,
                            resources={"cloud": candidate.cloud, "region": candidate.region,
                                       "zone": candidate.zone,
                                       "instance_type": candidate.instance_type,
                                       "accelerator": candidate.accelerator,
                                       "accelerator_count": candidate.accelerator_count,
                                       "num_nodes": record.num_nodes,
                                       "use_spot": candidate.use_spot})
    elif record.status == state.STATUS_STOPPED:
        ledger.record_event(record.name, ledger.START)


def _provision(task: Task, cluster_dir: state.ClusterDir, candidates: list[Candidate],
               wait_for_ssh: bool, progress: Output) -> provision.Provisioned:
    try:
        done = provision.first_that_applies(_recorded(task, cluster_dir, candidates, progress),
                                            cluster_dir.known_hosts_path, progress)
        if wait_for_ssh:  # (emulated clouds have no SSH to wait for)
            done = _repair_dead_nodes(done, cluster_dir, progress)
            _publish_host_keys(done, cluster_dir, progress)
    except OSError as os_error:  # disk full, read-only home: no traceback
        raise ConfigError(f"cannot write {os_error.filename or cluster_dir.path} "
                          f"({os_error.strerror}). Free disk space or fix the "
                          "permissions, then launch again.") from None
    return done


def _recorded(task: Task, cluster_dir: state.ClusterDir, candidates: list[Candidate],
              progress: Output) -> Iterator[deployment.Deployment]:
    """Each candidate's Deployment, written into the record before it is applied, so that
    `skyterra destroy` can always find what an interrupted apply created."""
    for index, candidate in enumerate(candidates):
        record = cluster_dir.load()
        stored = record.cloud_options if record.cloud == candidate.cloud else {}
        # A launch starts a stopped cluster again (SkyPilot's `launch` does too).
        stored = {k: v for k, v in stored.items() if k != deployment.STORED_NODES_RUNNING}
        chosen = deployment.for_record(cluster_dir, dataclasses.replace(
            record, cloud_options=stored), task=task, candidate=candidate,
            detect_address=True)
        cluster_dir.update(cloud=candidate.cloud, region=candidate.region, zone=candidate.zone,
                           instance_type=candidate.instance_type,
                           accelerator=candidate.accelerator,
                           accelerator_count=candidate.accelerator_count,
                           price=candidate.cluster_price, num_nodes=task.num_nodes,
                           cloud_options=chosen.stored)
        if index == 0:
            for warning in chosen.cloud.warnings(chosen):
                progress(f"warning: {warning}")
        yield chosen


def _after_failure(cluster_dir: state.ClusterDir, new: bool, error: SkyterraError,
                   progress: Output) -> None:
    """A state lock held elsewhere is "busy"; a new cluster that failed is removed; an
    existing one keeps its record (FAILED) so that its nodes are not orphaned."""
    if getattr(error, "kind", "") == "locked":
        if new:
            state.remove_cluster_dir(cluster_dir, keep_lock=True)
        raise ClusterBusyError(f"cluster '{cluster_dir.name}' is busy: another machine or "
                               "command holds its Terraform state lock. Wait for it to "
                               "finish, then try again.") from None
    if new:
        _clean_up_failed_launch(cluster_dir, error, progress)
    cluster_dir.update(status=state.STATUS_FAILED, last_error=str(error)[:2000])


def _clean_up_failed_launch(cluster_dir: state.ClusterDir, error: SkyterraError,
                            progress: Output) -> None:
    """A new cluster that failed to come up is destroyed and forgotten, like SkyPilot does.

    If the cleanup itself fails, the record stays (FAILED) so that `skyterra
    destroy` can finish the job, and the error says so.
    """
    record = cluster_dir.load()
    progress(f"launch failed; removing what was created for cluster '{cluster_dir.name}'")
    applied = any((cluster_dir.path / name).exists() for name in
                  ("terraform.tfstate", backend.BACKEND_VALUES_FILE))
    try:
        if record.cloud and applied:
            provision.destroy(cluster_dir.path, record.cloud, progress)
        if record.cloud:
            provision.check_nothing_left(cluster_dir, record, progress)
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
    reports = {name: get_cloud(name).check_credentials()
               for name in dict.fromkeys(c.cloud for c in candidates)}
    usable = [c for c in candidates if reports[c.cloud].ok]
    if usable:
        return usable
    reasons = " ".join(f"{name}: {r.detail}{' Fix: ' + r.hint if r.hint else ''}"
                       for name, r in reports.items())
    raise ConfigError(f"cannot use {', '.join(reports)} from this machine (no credentials or "
                      f"missing tools). {reasons} (`skyterra check` shows what is found.)")


def _with_bucket_access(task: Task, candidates: list[Candidate]) -> list[Candidate]:
    """Drop candidates whose nodes could not reach the task's buckets; none left: the
    first reason, before anything is created."""
    from skyterra import buckets

    errors: dict[str, SkyterraError] = {}
    for name in dict.fromkeys(c.cloud for c in candidates):
        try:
            buckets.check_ready(task, name)
        except SkyterraError as error:
            errors[name] = error
    usable = [c for c in candidates if c.cloud not in errors]
    if not usable:
        raise next(iter(errors.values()))
    return usable


def check_tools() -> None:
    """Missing programs are reported before anything is recorded or created."""
    find_binary()
    for tool, package in (("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"),
                          ("ssh-keyscan", "openssh-client"), ("rsync", "rsync")):
        if not shutil.which(tool):
            raise MissingToolError(f"{tool} is not installed; install it (Debian: apt-get "
                                   f"install {package}) and run the command again.")


def _candidates_for(task: Task, existing: state.ClusterRecord | None,
                    clouds: list[str] | None,
                    ranked: list[Candidate] | None = None) -> list[Candidate]:
    """A new cluster may go anywhere; one that has nodes stays where they are (also when
    its last command failed: its nodes still exist, moving would orphan them). A changed
    node count is applied in place (Terraform adds or removes nodes)."""
    if existing is None or not existing.cloud or not (
            existing.status == state.STATUS_UP or existing.nodes):
        return ranked or plan_candidates(task, clouds)
    if clouds and existing.cloud not in clouds:
        raise TaskError(f"cluster '{existing.name}' already exists on {existing.cloud}; "
                        f"destroy it first (`skyterra destroy {existing.name}`) or choose "
                        "another name with -c.", field="cloud")
    same = [c for c in optimize(task, [get_cloud(existing.cloud)])
            if (c.region, c.zone, c.instance_type) == (existing.region, existing.zone,
                                                       existing.instance_type)]
    if not same:
        raise TaskError(f"cluster '{existing.name}' runs {existing.instance_type} in "
                        f"{existing.zone or existing.region}, which does not satisfy this "
                        "task's resources. Destroy it or use another cluster name.",
                        field="resources")
    return same[:1]


def _repair_dead_nodes(done: provision.Provisioned, cluster_dir: state.ClusterDir,
                       progress: Output) -> provision.Provisioned:
    """Wait for SSH; a node that stays dead on an unchanged cluster is replaced."""
    cluster = done.cluster
    if not done.changed:
        dead = executor.probe(cluster)
        if dead:
            names = ", ".join(n.name for n in dead)
            progress(f"node(s) {names} do not answer; replacing them")
            executor.close_connections(cluster, dead)
            executor.forget_host_keys(cluster, dead)
            cloud = done.deployment.cloud
            addresses = [cloud.node_resource_address(n.rank) for n in dead]
            done = dataclasses.replace(
                provision.apply(done.deployment, cluster_dir.known_hosts_path, progress,
                                replace=addresses), changed=False)
    if done.changed:
        executor.forget_host_keys(done.cluster, done.cluster.nodes)
        executor.close_connections(done.cluster)
    executor.pin_host_keys(done.cluster,
                           timeout=float(os.environ.get("SKYTERRA_SSH_TIMEOUT", "300")),
                           progress=progress,
                           known=done.deployment.cloud.host_key_lines(done.deployment))
    return done


def _publish_host_keys(done: provision.Provisioned, cluster_dir: state.ClusterDir,
                       progress: Output) -> None:
    """With a shared backend, put the host keys pinned here into the registry (one more,
    small apply) so that other machines check them instead of trusting on first use."""
    registry = done.deployment.registry
    pinned = deployment.pinned_host_keys(cluster_dir)
    if registry is None or registry.get("known_hosts") == pinned:
        return
    provision.apply(done.deployment.with_registry({**registry, "known_hosts": pinned}),
                    cluster_dir.known_hosts_path, progress)
