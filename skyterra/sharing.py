"""Clusters launched on another machine, through the shared backend (see backend.py).

`fetch_shared` copies a cluster's record, SSH key and nodes from its Terraform
state into this machine's registry on first use; `forget_destroyed_elsewhere`
drops local copies whose state another machine destroyed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from skyterra import backend, config, deployment, executor, provision, ssh_config, state
from skyterra.errors import ClusterBusyError, SkyterraError
from skyterra.renderer import render
from skyterra.terraform import Workspace

Output = Callable[[str], None]


def fetch_shared(name: str, progress: Output = lambda line: None) -> bool:
    """Copy a cluster launched elsewhere from the shared backend into this machine's registry.

    Reads the `skyterra_registry` output from the cluster's Terraform state
    (record and SSH key), re-renders the module from it and records the nodes
    from the outputs. True if a copy was made; False when there is no shared
    backend, the cluster is already known here, or the backend has no such cluster.
    """
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
            provision.init(ws)
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
        known_hosts = data.pop("known_hosts", "")
        if known_hosts:  # keys pinned by the machine that launched: checked, not trusted
            cluster_dir.known_hosts_path.write_text(known_hosts)
            cluster_dir.known_hosts_path.chmod(0o600)
        for path, text in ((key, data.pop("private_key")),
                           (key.with_suffix(".pub"), data.pop("public_key") + "\n")):
            path.write_text(text)
            path.chmod(0o600)
        record = state.ClusterRecord.from_json({**data, "ssh_key": str(key)})
        cluster_dir.save(record)
        chosen = deployment.for_record(cluster_dir, record)
        render(chosen)
        cluster = provision.cluster_from_outputs(chosen, outputs, cluster_dir.known_hosts_path)
        cluster_dir.update(status=state.STATUS_UP, nodes=cluster.node_records(),
                           ssh_user=cluster.ssh_user, ssh_port=cluster.ssh_port,
                           node_env=cluster.node_env, launched_at=record.created_at)
        executor.pin_host_keys(cluster, timeout=60)
        ssh_config.write(cluster)
    progress(f"cluster '{name}' fetched from the shared backend")
    return True


def forget_destroyed_elsewhere(listed: set[str]) -> None:
    """Shared clusters whose state is gone from the backend were destroyed on another machine."""

    for record in list(state.list_clusters()):
        cluster_dir = state.ClusterDir(record.name)
        if (record.name in listed or record.status != state.STATUS_UP
                or not (cluster_dir.path / backend.BACKEND_VALUES_FILE).exists()):
            continue  # still there, or still being launched here
        try:
            with cluster_dir.lock("forget"):
                state.forget(cluster_dir)
        except ClusterBusyError:
            continue
