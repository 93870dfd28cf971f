"""Stopping and starting a cluster: keep its disks and state, stop paying for compute.

Both are a Terraform apply of the cluster's own module with one value
changed, `nodes_running` (stored with the cluster, written to the tfvars),
so that a plan afterwards shows no drift. Start reads the nodes back from the
outputs (a cloud gives new public IPs) and pins their host keys again. The
ledger gets a stop/start event, so cost-report counts only running time.
Autostop's watcher (autostop.py) stops a cluster by itself; `reconcile`
makes the record agree with what it did.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from skyterra import autostop, deployment, executor, ledger, provision, ssh_config, state
from skyterra.cluster import Cluster
from skyterra.errors import SkyterraError

Progress = Callable[[str], None]

# Called with the Cluster just before its nodes stop (and before destroy): a place for
# whoever keeps connections to the nodes (e.g. SSH ControlMaster sockets) to close them.
BEFORE_NODES_STOP: list[Callable[[Cluster], None]] = []


def _recorded_cluster(cluster_dir: state.ClusterDir, record: state.ClusterRecord
                      ) -> Cluster | None:
    if not record.nodes:
        return None
    return Cluster.from_record(record, cluster_dir.known_hosts_path)


def run_before_stop_hooks(cluster_dir: state.ClusterDir, record: state.ClusterRecord) -> None:
    cluster = _recorded_cluster(cluster_dir, record)
    if cluster is not None:
        for hook in BEFORE_NODES_STOP:
            hook(cluster)


def before_destroy(cluster_dir: state.ClusterDir, record: state.ClusterRecord) -> None:
    """What stop does first, for destroy: no watcher left, connections closed."""
    from skyterra.clouds import get_cloud

    get_cloud(record.cloud).cancel_autostop(cluster_dir.path, record)
    run_before_stop_hooks(cluster_dir, record)


def _owned(cluster_dir: state.ClusterDir, verb: str) -> state.ClusterRecord:
    record = cluster_dir.load()
    if record.owner == "external":
        raise SkyterraError(f"cluster '{record.name}' was attached, not created by skyterra: "
                            f"{verb} its nodes in the pipeline that made them.")
    return record


def _apply_power(cluster_dir: state.ClusterDir, record: state.ClusterRecord, running: bool,
                 progress: Progress) -> tuple[deployment.Deployment, dict]:
    options = {**record.cloud_options, deployment.STORED_NODES_RUNNING: running}
    chosen = deployment.for_record(cluster_dir, dataclasses.replace(record,
                                                                    cloud_options=options))
    try:
        outputs = provision.apply_outputs(chosen, progress, refresh=running)
    finally:
        cluster_dir.protect_files()
    cluster_dir.update(cloud_options=chosen.stored)
    return chosen, outputs


def stop(name: str, *, progress: Progress, reason: str = "", at: float | None = None,
         fired: bool = False) -> str:
    """Stop every node (disks and state kept); "stopped", or "already stopped".

    fired: the cloud's nodes stopped by themselves (their watcher): nothing is left
    on them to remove, and a cloud that cannot stop through Terraform is recorded
    STOPPED as it is."""
    cluster_dir = state.ClusterDir(name)
    record = _owned(cluster_dir, "stop")
    if record.status == state.STATUS_STOPPED and not reason:
        return "already stopped"
    if record.status not in (state.STATUS_UP, state.STATUS_STOPPED):
        raise SkyterraError(f"cluster '{name}' is {record.status}; only an UP cluster can be "
                            f"stopped. `skyterra destroy {name}` removes it.")
    with cluster_dir.lock("stop"):
        chosen = deployment.for_record(cluster_dir, record)
        try:
            chosen.cloud.check_stoppable(chosen)
        except SkyterraError:
            if not fired:
                raise
            stoppable = False
        else:
            stoppable = True
        if not fired:
            chosen.cloud.cancel_autostop(cluster_dir.path, record)
        run_before_stop_hooks(cluster_dir, record)
        if stoppable:
            progress(f"stopping the {record.num_nodes} node(s) of cluster '{name}'")
            _apply_power(cluster_dir, record, False, progress)
        cluster_dir.update(status=state.STATUS_STOPPED, status_reason=reason)
        if record.status != state.STATUS_STOPPED:
            ledger.record_event(name, ledger.STOP, at=at, reason=reason)
    return "stopped"


def start(name: str, *, progress: Progress) -> Cluster:
    """Start a stopped cluster's nodes again; new IPs are read back, host keys re-pinned."""
    cluster_dir = state.ClusterDir(name)
    record = _owned(cluster_dir, "start")
    if record.status not in (state.STATUS_STOPPED, state.STATUS_UP):
        raise SkyterraError(f"cluster '{name}' is {record.status}, not STOPPED; `skyterra "
                            f"launch -c {name} TASK.yaml` repairs it.")
    with cluster_dir.lock("start"):
        if record.status == state.STATUS_STOPPED:  # stopped by its watcher, maybe (Azure):
            chosen = deployment.for_record(cluster_dir, record)   # what Terraform cannot
            chosen.cloud.check_stoppable(chosen)                 # stop, it cannot start
        progress(f"starting the {record.num_nodes} node(s) of cluster '{name}'")
        chosen, outputs = _apply_power(cluster_dir, record, True, progress)
        cluster = provision.cluster_from_outputs(chosen, outputs, cluster_dir.known_hosts_path)
        old = _recorded_cluster(cluster_dir, record)
        moved = [n for n in cluster.nodes if old is None or n.rank >= len(old.nodes)
                 or old.nodes[n.rank].ip != n.ip]
        if old is not None:
            executor.forget_host_keys(old, [n for n in old.nodes
                                            if n.rank in {m.rank for m in moved}])
        executor.forget_host_keys(cluster, moved)
        executor.pin_host_keys(cluster,
                               timeout=float(os.environ.get("SKYTERRA_SSH_TIMEOUT", "300")))
        was_stopped = record.status == state.STATUS_STOPPED
        record = cluster_dir.update(status=state.STATUS_UP, nodes=cluster.node_records(),
                                    status_reason="")
        ssh_config.write(cluster)
        if was_stopped:
            ledger.record_event(name, ledger.START)
        setting = autostop.Autostop.from_record(record.autostop)
        if setting is not None:
            chosen.cloud.start_autostop(cluster_dir.path, record, setting)
    return cluster


def set_autostop(name: str, setting: autostop.Autostop | None,
                 progress: Progress = lambda line: None) -> None:
    """Install (or, with None, cancel) the cluster's idle watcher and remember it.

    Where the module has a part for autostop (AWS: the shutdown behaviour; GCP and
    Azure: the nodes' identity and its role), it is applied first with the new
    setting (nothing runs when it renders as before)."""
    cluster_dir = state.ClusterDir(name)
    record = _owned(cluster_dir, "set autostop on")
    if record.status != state.STATUS_UP:
        raise SkyterraError(f"cluster '{name}' is {record.status}; autostop is set on an UP "
                            f"cluster (`skyterra start {name}` first).")
    from skyterra.clouds import get_cloud

    cloud = get_cloud(record.cloud)
    if setting is not None and not cloud.supports_autostop:
        cloud.start_autostop(cluster_dir.path, record, setting)  # its clear refusal
    with cluster_dir.lock("autostop"):
        autostop.clear_event(cluster_dir.path)
        cloud.cancel_autostop(cluster_dir.path, record)
        if cloud.autostop_in_module:
            options = {**record.cloud_options,
                       autostop.STORED_KEY: setting.to_record() if setting else {}}
            chosen = deployment.for_record(cluster_dir, dataclasses.replace(
                record, cloud_options=options))
            try:
                provision.apply_outputs(chosen, progress)
            finally:
                cluster_dir.protect_files()
            record = cluster_dir.update(cloud_options=chosen.stored)
        if setting is not None:
            cloud.start_autostop(cluster_dir.path, record, setting)
        cluster_dir.update(autostop=setting.to_record() if setting else {})


def reconcile(name: str, progress: Progress) -> str | None:
    """Make the record agree with a watcher that fired: a note for the user, or None.

    The local cloud's watcher leaves an event file here; on a cloud the watcher ran
    on the head, so the cloud is asked what its nodes are (Cloud.node_power)."""
    cluster_dir = state.ClusterDir(name)
    event = autostop.read_event(cluster_dir.path) or _cloud_event(cluster_dir)
    if event is None:
        return None
    record = cluster_dir.load()
    reason = str(event.get("reason") or "autostopped")
    at = float(event.get("at") or time.time())
    if event["action"] == "down":
        with cluster_dir.lock("autodown"):
            record = cluster_dir.update(autostop={})  # its watcher is gone with the nodes
            provision.destroy_cluster(cluster_dir, record, progress)
            ledger.record_event(name, ledger.DESTROY, at=at, reason=reason)
            state.forget(cluster_dir)
        return f"cluster '{name}' was {reason}; it is gone (its record and state removed)."
    stop(name, progress=progress, reason=reason, at=at, fired=bool(event.get("cloud")))
    autostop.clear_event(cluster_dir.path)
    return f"cluster '{name}' was {reason}; it is STOPPED (`skyterra start {name}`)."


def _cloud_event(cluster_dir: state.ClusterDir) -> dict | None:
    """What a cloud cluster's own watcher did, read from the cloud: its head node (the
    last to go) stopped → "stop", gone → "down"; None while it runs (or unknown)."""
    try:
        record = cluster_dir.load()
    except SkyterraError:
        return None
    setting = autostop.Autostop.from_record(record.autostop)
    if setting is None or record.status != state.STATUS_UP or not record.nodes:
        return None
    from skyterra.clouds import get_cloud

    cloud = get_cloud(record.cloud)
    if not cloud.supports_autostop or not cloud.autostop_on_head:
        return None
    power = cloud.node_power(cluster_dir.path, record) or {}
    head = power.get(record.nodes[0]["rank"])
    if head not in ("stopped", "gone"):
        return None
    action = "down" if head == "gone" or setting.down else "stop"
    return {"action": action, "at": time.time(), "reason": setting.reason(), "cloud": True}
