"""One Deployment: every decision about a cluster's module, made once, read by all below.

The optimizer ranks candidates; for the one being rendered, `build` gathers
everything the renderer, the provisioner and the executor need — the task, the
candidate and the Resources that chose it, the Cloud object itself with its
typed settings, the cluster's name, key and directory, the shared backend —
into a frozen object. Nothing further down re-derives any of it. What differs
between a launch, a dry run, a standalone render, a shared-backend fetch and a
destroy is data here (`directory`, `ssh_cidrs`, `backend`, `root`), not a code path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from skyterra import backend, config, state
from skyterra.catalog import Candidate
from skyterra.clouds import get_cloud
from skyterra.clouds.base import (
    STORED_NODES_RUNNING,
    Cloud,
    CloudSettings,
    cidr_list,
    detect_caller_cidrs,
)
from skyterra.resources import Resources
from skyterra.task import Task

# Key of the stored values (ClusterRecord.cloud_options) that keeps the SSH ingress
# chosen at launch, so that later renders (destroy, fetch) need no network.
STORED_SSH_CIDRS = "ssh_cidrs"
# Key of the stored values that says whether the nodes run (skyterra stop/start); absent: yes.


@dataclasses.dataclass(frozen=True)
class Deployment:
    """A cluster's module, fully decided: what `renderer.render` writes and Terraform applies."""

    name: str                        # the cluster name (every cloud resource carries it)
    task: Task
    candidate: Candidate             # cloud, place, machine, price; .resources chose it
    cloud: Cloud
    settings: CloudSettings          # the cloud's own typed settings
    stored: dict[str, Any]           # values the cloud keeps stable (record.cloud_options)
    num_nodes: int
    directory: Path                  # where the module is written
    public_key: str                  # OpenSSH public key the nodes trust
    private_key_path: Path
    # Who may SSH in. None: not known here (dry run, standalone render): the module's
    # variable is left unset, and Terraform asks for it at plan time.
    ssh_cidrs: tuple[str, ...] | None = None
    backend: dict[str, Any] | None = None   # shared state backend settings
    registry: dict[str, Any] | None = None  # the cluster's record kept in that state
    root: bool = True                # a root module: provider configuration included

    @property
    def nodes_running(self) -> bool:
        """False once the cluster was stopped: every cloud's module gets `nodes_running`."""
        return bool(self.stored.get(STORED_NODES_RUNNING, True))

    @property
    def resources(self) -> Resources:
        """The task's Resources choice that produced the candidate."""
        return self.candidate.resources or self.task.resources[0]

    def with_registry(self, registry: dict[str, Any]) -> Deployment:
        return dataclasses.replace(self, registry=registry)


def build(task: Task, candidate: Candidate, *, name: str, directory: Path, public_key: str,
          private_key_path: Path, stored: dict[str, Any] | None = None,
          settings: dict[str, Any] | None = None, detect_address: bool = False,
          shared_backend: dict[str, Any] | None = None,
          registry: dict[str, Any] | None = None, root: bool = True,
          num_nodes: int | None = None) -> Deployment:
    """The Deployment of `candidate` for `task`.

    `stored`: the cluster's kept values (from its record), so a re-render is
    identical. `settings`: the skyterra config mapping (default: read it).
    `detect_address`: look up this machine's public address when no SSH CIDRs
    are configured or stored — only when a real cluster is about to be applied.
    """
    settings = config.load() if settings is None else settings
    cloud = get_cloud(candidate.cloud)
    kept = cloud.prepare(name, directory, dict(stored or {}))
    cidrs = _ssh_cidrs(cloud, kept, settings, detect_address)
    if cidrs is not None:
        kept[STORED_SSH_CIDRS] = list(cidrs)
    if registry is not None:  # the shared record carries what this cloud keeps stable
        registry = {**registry, "cloud_options": kept}
    return Deployment(
        name=name, task=task, candidate=candidate, cloud=cloud,
        settings=cloud.settings(settings, kept), stored=kept,
        num_nodes=task.num_nodes if num_nodes is None else num_nodes, directory=directory,
        public_key=public_key.strip(), private_key_path=private_key_path, ssh_cidrs=cidrs,
        backend=shared_backend, registry=registry, root=root)


def _ssh_cidrs(cloud: Cloud, stored: dict[str, Any], settings: dict[str, Any],
               detect: bool) -> tuple[str, ...] | None:
    """Stored (an existing cluster's), else configured, else detected (launch only)."""
    if not cloud.needs_ssh_cidrs:
        return None
    if stored.get(STORED_SSH_CIDRS):
        return tuple(cidr_list(stored[STORED_SSH_CIDRS], "ssh_cidrs"))
    configured = config.ssh_cidrs(settings)
    if configured:
        return tuple(cidr_list(configured, "ssh_cidrs"))
    return tuple(detect_caller_cidrs()) if detect else None


def for_record(cluster_dir: state.ClusterDir, record: state.ClusterRecord, *,
               task: Task | None = None, candidate: Candidate | None = None,
               detect_address: bool = False, settings: dict[str, Any] | None = None
               ) -> Deployment:
    """The Deployment of a recorded cluster: its own dir, key, stored values and backend.

    Without `task`/`candidate`, the ones the record was launched with (destroy and
    shared-backend fetch render the module again from the record alone).
    """
    settings = config.load() if settings is None else settings
    public_key, key_path = cluster_dir.ensure_key()
    shared = backend.shared_backend(settings)
    registry = None
    if shared:
        registry = {"name": record.name, "ssh_port": record.ssh_port, "owner": record.owner,
                    "task": record.task, "created_at": record.created_at,
                    "private_key": key_path.read_text(), "public_key": public_key,
                    "known_hosts": pinned_host_keys(cluster_dir)}
    num_nodes = task.num_nodes if task is not None else record.num_nodes
    task = task or Task.from_yaml_config(record.task or {"run": "true"})
    return build(task, candidate or record_candidate(record), name=record.name,
                 directory=cluster_dir.path, public_key=public_key, private_key_path=key_path,
                 stored=record.cloud_options, settings=settings, detect_address=detect_address,
                 shared_backend=shared, registry=registry,
                 num_nodes=num_nodes)


def pinned_host_keys(cluster_dir: state.ClusterDir) -> str:
    path = cluster_dir.known_hosts_path
    return path.read_text() if path.exists() else ""


def record_candidate(record: Any) -> Candidate:
    """The candidate a cluster record was launched on (to render its module again)."""
    task = Task.from_yaml_config(record.task or {"run": "true"})
    chosen = next((r for r in task.resources if r.cloud in (None, record.cloud)
                   and (r.accelerator or (None,))[0] == record.accelerator), task.resources[0])
    return Candidate(cloud=record.cloud, region=record.region or "", zone=record.zone,
                     instance_type=record.instance_type, accelerator=record.accelerator,
                     accelerator_count=record.accelerator_count, vcpus=0, memory_gib=0,
                     price=record.price / max(record.num_nodes, 1), num_nodes=record.num_nodes,
                     use_spot=chosen.use_spot, resources=chosen)

