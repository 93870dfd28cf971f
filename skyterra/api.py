"""The SDK: what `import skyterra as sky` offers, and what the CLI calls.

Each function takes a task or a cluster name, does one user-level thing and
returns plain values (job ids, records). Output goes to `sink`/`progress`
callables so the CLI can print with rich and pipelines can capture it.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import secrets as _secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import backend, config, jobs, state
from skyterra.clouds import ClusterSpec, get_cloud
from skyterra.cluster import Cluster
from skyterra.errors import (
    ClusterBusyError,
    ClusterNotFoundError,
    ConfigError,
    SkyterraError,
    TaskError,
)
from skyterra.optimizer import Candidate, optimize
from skyterra.task import Task

Output = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


@dataclasses.dataclass
class LaunchResult:
    cluster_name: str
    job_id: int | None
    candidate: Candidate | None
    candidates: list[Candidate]
    exit_code: int | None = None
    rendered_dir: Path | None = None


def default_cluster_name() -> str:
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


def _spec(cluster_dir: state.ClusterDir, record: state.ClusterRecord, num_nodes: int) -> ClusterSpec:
    public_key, key_path = cluster_dir.ensure_key()
    settings = config.load()
    options = {**config.provision_options(settings), **record.cloud_options,
               "ssh_port": record.ssh_port}
    shared = backend.shared_backend(settings)
    if shared:
        options["backend"] = shared
        options["registry"] = {"name": record.name, "slot": record.slot,
                               "ssh_port": record.ssh_port, "owner": record.owner,
                               "task": record.task, "created_at": record.created_at,
                               "cloud_options": record.cloud_options,
                               "private_key": key_path.read_text(), "public_key": public_key}
    return ClusterSpec(name=record.name, directory=cluster_dir.path, num_nodes=num_nodes,
                       public_key=public_key, private_key_path=key_path, slot=record.slot,
                       options=options)


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


def launch(task: Task, cluster_name: str | None = None, *, clouds: list[str] | None = None,
           detach_run: bool = False, provision_only: bool = False, dryrun: bool = False,
           out: Output = _print, progress: Output = _print, stream: bool = True
           ) -> LaunchResult | Request:
    """Launch `task` on a (new or existing) cluster.

    From Python this returns a Request, like SkyPilot's SDK: pass it to
    `stream_and_get` to watch provisioning and get `(job_id, handle)`. The
    job then runs detached; follow it with `tail_logs`.
    """
    if stream and not provision_only and out is _print and progress is _print:
        return Request(lambda o, p: launch_cluster(task, cluster_name, clouds=clouds,
                                                   detach_run=True, dryrun_only=dryrun,
                                                   out=o, progress=p))
    return launch_cluster(task, cluster_name, clouds=clouds, detach_run=detach_run,
                          provision_only=provision_only, dryrun_only=dryrun, out=out,
                          progress=progress)


def launch_cluster(task: Task, cluster_name: str | None = None, *,
                   clouds: list[str] | None = None, detach_run: bool = False,
                   provision_only: bool = False, dryrun_only: bool = False,
                   out: Output = _print, progress: Output = _print) -> LaunchResult:
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
        spec = _spec(cluster_dir, record, task.num_nodes)
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
        job = _submit(cluster, cluster_dir, task, out, run_setup=True, progress=progress)
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
            _check_nothing_left(cluster_dir, record, progress)
    except (SkyterraError, OSError) as cleanup_error:
        error.args = ((f"{error}\nThe partial cluster could not be removed ({cleanup_error}). "
                      f"Run `skyterra destroy {cluster_dir.name}` to retry."),)
        return
    from skyterra import ssh_config

    ssh_config.remove(cluster_dir.name)
    state.remove_cluster_dir(cluster_dir, keep_lock=True)
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


def _submit(cluster: Cluster, cluster_dir: state.ClusterDir, task: Task, out: Output, *,
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


# --- existing clusters ---------------------------------------------------------------------
def fetch_shared(name: str, progress: Output = lambda line: None) -> bool:
    """Copy a cluster launched elsewhere from the shared backend into this machine's registry.

    Reads the `skyterra_registry` output from the cluster's Terraform state
    (record and SSH key), re-renders the module from it and records the nodes
    from the outputs. True if a copy was made; False when there is no shared
    backend, the cluster is already known here, or the backend has no such cluster.
    """
    from skyterra.provision import init, render_for
    from skyterra.terraform import Workspace

    shared = backend.shared_backend(config.load())
    cluster_dir = state.ClusterDir(name)
    if not shared or cluster_dir.exists():
        return False
    state.ensure_home()
    with cluster_dir.lock("fetch"):
        for file_name, text in backend.backend_files_for(name, shared).items():
            (cluster_dir.path / file_name).write_text(text)
        ws = Workspace(cluster_dir.path, progress=progress)
        try:
            init(ws)
            outputs = ws.outputs()
        except SkyterraError:
            outputs = {}
        registry = outputs.get(backend.REGISTRY_VARIABLE)
        if not registry:
            state.remove_cluster_dir(cluster_dir, keep_lock=True)
            return False
        data = json.loads(registry)
        key = cluster_dir.key_path
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path, text in ((key, data.pop("private_key")),
                           (key.with_suffix(".pub"), data.pop("public_key") + "\n")):
            path.write_text(text)
            path.chmod(0o600)
        record = state.ClusterRecord.from_json({**data, "ssh_key": str(key)})
        cluster_dir.save(record)
        task = Task.from_yaml_config(record.task or {"run": "true"})
        render_for(task, _record_candidate(record), _spec(cluster_dir, record, record.num_nodes))
        cluster = Cluster.from_terraform_outputs(
            name, outputs, ssh_key=key, known_hosts=cluster_dir.known_hosts_path,
            cloud=record.cloud, region=record.region, zone=record.zone,
            num_gpus_per_node=record.accelerator_count,
            node_env=get_cloud(record.cloud).node_env(_spec(cluster_dir, record,
                                                            record.num_nodes)))
        cluster_dir.update(status=state.STATUS_UP, nodes=cluster.node_records(),
                           ssh_user=cluster.ssh_user, ssh_port=cluster.ssh_port,
                           node_env=cluster.node_env, launched_at=record.created_at)
        from skyterra import executor, ssh_config

        executor.pin_host_keys(cluster, timeout=60)
        ssh_config.write(cluster)
    progress(f"cluster '{name}' fetched from the shared backend")
    return True


def _forget_destroyed_elsewhere(listed: set[str]) -> None:
    """Shared clusters whose state is gone from the backend were destroyed on another machine."""
    from skyterra import ssh_config

    for record in list(state.list_clusters()):
        cluster_dir = state.ClusterDir(record.name)
        if (record.name in listed or record.status != state.STATUS_UP
                or not (cluster_dir.path / backend.BACKEND_VALUES_FILE).exists()):
            continue  # still there, or still being launched here
        try:
            with cluster_dir.lock("forget"):
                ssh_config.remove(record.name)
                state.remove_cluster_dir(cluster_dir, keep_lock=True)
        except ClusterBusyError:
            continue


def _record_candidate(record: state.ClusterRecord) -> Candidate:
    return Candidate(cloud=record.cloud, region=record.region or "", zone=record.zone,
                     instance_type=record.instance_type, accelerator=record.accelerator,
                     accelerator_count=record.accelerator_count, vcpus=0, memory_gib=0,
                     price=record.price / max(record.num_nodes, 1), num_nodes=record.num_nodes)


def get_cluster(name: str) -> tuple[state.ClusterDir, state.ClusterRecord, Cluster]:
    fetch_shared(name)
    cluster_dir = state.ClusterDir(name)
    record = cluster_dir.load()
    if record.status != state.STATUS_UP or not record.nodes:
        raise SkyterraError(f"cluster '{name}' is {record.status}, not UP. Run `skyterra "
                            f"launch` to finish it, or `skyterra destroy {name}`.")
    return cluster_dir, record, Cluster.from_record(record, cluster_dir.known_hosts_path)


def exec(task: Task, cluster_name: str, *, detach_run: bool = False, out: Output = _print,
         progress: Output = _print) -> LaunchResult:
    """Run `task` on an existing cluster: re-sync the workdir, no setup, a new job."""
    task.check_required_envs()
    task.check_local_paths()
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    if task.num_nodes > len(cluster.nodes):
        raise TaskError(f"the task wants {task.num_nodes} nodes but cluster '{cluster_name}' "
                        f"has {len(cluster.nodes)}.", field="num_nodes")
    with cluster_dir.lock("exec"):
        job = _submit(cluster, cluster_dir, task, out, run_setup=False, progress=progress)
    result = LaunchResult(cluster_name, job.job_id, None, [])
    if not detach_run:
        result.exit_code = follow_job(cluster, cluster_dir, job, out)
    return result


def down(cluster_name: str, *, progress: Output = _print, purge: bool = False) -> str | bool:
    """Destroy the cluster's resources and forget it.

    Returns "destroyed", "forgotten" (an attached cluster with purge=True: its
    nodes are the pipeline's, untouched), or False if there was no such cluster.
    """
    from skyterra import provision, ssh_config

    cluster_dir = state.ClusterDir(cluster_name)
    fetch_shared(cluster_name, progress)
    if not cluster_dir.path.exists():
        return False
    with cluster_dir.lock("destroy"):
        try:
            record = cluster_dir.load()
        except ClusterNotFoundError:
            record = state.ClusterRecord(name=cluster_name, cloud=_guess_cloud(cluster_dir))
        if record.owner == "external" and not purge:
            raise SkyterraError(f"cluster '{cluster_name}' was attached, not created by "
                                "skyterra: its nodes belong to your pipeline. Destroy them "
                                f"there; `skyterra destroy --forget {cluster_name}` only "
                                "removes skyterra's record.")
        if record.owner != "external" and record.cloud:
            _ensure_module(cluster_dir, record)
            provision.destroy(cluster_dir, record.cloud, progress)
            _check_nothing_left(cluster_dir, record, progress)
            shared = backend.shared_backend(config.load())
            if shared and (cluster_dir.path / backend.BACKEND_VALUES_FILE).exists():
                backend.delete_state(shared, cluster_name)
        ssh_config.remove(cluster_name)
        state.remove_cluster_dir(cluster_dir, keep_lock=True)
    return "forgotten" if record.owner == "external" else "destroyed"


def _guess_cloud(cluster_dir: state.ClusterDir) -> str:
    """For a dir whose cluster.json was lost: the rendered module says which cloud it is."""
    text = " ".join(p.read_text(errors="replace") for p in cluster_dir.path.glob("*.tf"))
    for cloud, provider in (("aws", "hashicorp/aws"), ("gcp", "hashicorp/google"),
                            ("azure", "hashicorp/azurerm")):
        if provider in text:
            return cloud
    if (cluster_dir.path / "nodes").is_dir() or "terraform_data" in text:
        return "local"
    return ""


def _ensure_module(cluster_dir: state.ClusterDir, record: state.ClusterRecord) -> None:
    """Destroy needs the module's .tf files: re-render them from cluster.json if they are gone."""
    from skyterra.provision import render_for

    if (cluster_dir.path / "variables.tf").exists() or not record.instance_type:
        return
    task = Task.from_yaml_config(record.task or {"run": "true"})
    render_for(task, _record_candidate(record), _spec(cluster_dir, record, record.num_nodes))


def _check_nothing_left(cluster_dir: state.ClusterDir, record: state.ClusterRecord,
                        progress: Output) -> None:
    """After destroy: clean up what Terraform no longer knew about, or say what to check."""
    cloud = get_cloud(record.cloud)
    leftovers = cloud.orphans(cluster_dir.path)
    if not leftovers:
        return
    progress(f"the Terraform state did not list {len(leftovers)} node(s); removing them")
    cloud.remove_orphans(cluster_dir.path, leftovers)
    still = cloud.orphans(cluster_dir.path)
    if still:
        raise SkyterraError(f"cluster '{record.name}': {', '.join(still)} could not be removed "
                            f"and the Terraform state does not know them. Remove them by hand, "
                            f"then run `skyterra destroy {record.name}` again.")


def status(cluster_names: list[str] | None = None) -> list[state.ClusterRecord]:
    """Clusters of this machine, plus those in the shared backend (when it can be listed)."""
    shared = backend.shared_backend(config.load())
    listed = backend.list_cluster_names(shared) if shared else None
    for name in cluster_names or listed or []:
        fetch_shared(name)
    if listed is not None:
        _forget_destroyed_elsewhere(set(listed))
    records = list(state.list_clusters())
    if cluster_names:
        records = [r for r in records if r.name in cluster_names]
    return records


def queue(cluster_name: str, refresh: bool = True) -> list[jobs.Job]:
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    result = store.all()
    if refresh:
        result = [jobs.refresh(cluster, store, job) for job in result]
    return result


def cancel(cluster_name: str, job_ids: list[int] | None = None, all: bool = False
           ) -> list[int]:
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
              tail: int | None = None, out: Output = _print) -> int:
    """Print a job's logs (all nodes, prefixed); return its exit code like SkyPilot."""
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    job = store.get(job_id) if job_id is not None else store.latest()
    if job is None:
        raise SkyterraError(f"cluster '{cluster_name}' has no jobs yet.")
    job = jobs.refresh(cluster, store, job)
    if follow and job.status not in jobs.TERMINAL:
        return follow_job(cluster, cluster_dir, job, out)
    from skyterra import executor

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


def job_exit_code(job: jobs.Job) -> int:
    """SkyPilot's `logs --status` codes: 0 succeeded, 100 failed, 101 not finished, 103 cancelled."""
    return {jobs.SUCCEEDED: 0, jobs.FAILED: 100, jobs.FAILED_SETUP: 100,
            jobs.CANCELLED: 103}.get(job.status, 101)


def job_status(cluster_name: str, job_id: int | None = None) -> jobs.Job:
    cluster_dir, _record, cluster = get_cluster(cluster_name)
    store = jobs.JobStore(cluster_dir.jobs_path)
    job = store.get(job_id) if job_id is not None else store.latest()
    if job is None:
        raise SkyterraError(f"cluster '{cluster_name}' has no jobs yet.")
    return jobs.refresh(cluster, store, job)


# --- SkyPilot-style request handles --------------------------------------------------------
class Request:
    """A launch running in a background thread; its output is replayed by stream_and_get."""

    def __init__(self, work: Callable[[Output, Output], LaunchResult]):
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        self.result: LaunchResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _emit(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def _run(self, work: Callable[[Output, Output], LaunchResult]) -> None:
        try:
            self.result = work(self._emit, self._emit)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = error
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def lines(self):
        index = 0
        while True:
            with self._cond:
                while index >= len(self._lines) and not self._done:
                    self._cond.wait(0.5)
                batch = self._lines[index:]
                index = len(self._lines)
                finished = self._done and index >= len(self._lines)
            yield from batch
            if finished:
                return

    def get(self) -> LaunchResult:
        for _ in self.lines():
            pass
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def stream_and_get(request: Request, out: Output = _print) -> tuple[int | None, LaunchResult]:
    """Print the request's output as it comes; return (job_id, handle) like SkyPilot."""
    for line in request.lines():
        out(line)
    result = request.get()
    return result.job_id, result


def get(request: Request) -> LaunchResult:
    return request.get()


# --- pipelines: render a module for someone else's Terraform, attach their nodes ------------
def render(task: Task | str | Path, cloud: str | None = None, out_dir: str | Path = "train",
           cluster_name: str | None = None) -> Any:
    """Write a standalone Terraform module for `task` into `out_dir`; return a RenderResult.

    The directory holds the template, terraform.tfvars.json (every value), an SSH
    key under ssh/ and a README of inputs and outputs: plain `terraform apply`
    works there with no skyterra. Attach the result with `attach`.
    """
    from skyterra import pipeline

    if not isinstance(task, Task):
        task = Task.from_yaml(task)
    return pipeline.render_standalone(task, out_dir, cloud=cloud, cluster_name=cluster_name)


def attach(cluster_name: str, outputs: dict[str, Any] | str | Path | None = None, *,
           tf_dir: str | Path | None = None, ssh_key: str | Path | None = None,
           task: Task | str | Path | None = None, progress: Output = _print
           ) -> state.ClusterRecord:
    """Register nodes created by a pipeline (Terraform outputs) as cluster `cluster_name`.

    `outputs` is `terraform output -json` as a dict or a path to that JSON; or
    give `tf_dir` to read them with `terraform output`. Afterwards exec, logs,
    queue and cancel work; `down` refuses unless purge=True (forget only).
    """
    from skyterra import pipeline

    if task is not None and not isinstance(task, Task):
        task = Task.from_yaml(task)
    return pipeline.attach_outputs(cluster_name, outputs, tf_dir=tf_dir, ssh_key=ssh_key,
                                   task=task, progress=progress)
