"""Candidates → a running cluster: render, plan, apply; on capacity errors, fail over.

Each attempt renders the module for one candidate and applies it. If the
cloud says "no capacity" or "over quota" the attempt's partial resources are
destroyed before the next candidate is tried, so a failed attempt never
leaves anything in the state. Any other error stops: it would fail the same
way everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from skyterra import backend, config
from skyterra.clouds import ClusterSpec, get_cloud
from skyterra.clouds.base import detect_caller_cidrs
from skyterra.cluster import Cluster
from skyterra.errors import ProvisionError, SkyterraError, TerraformError
from skyterra.optimizer import Candidate
from skyterra.renderer import render_module
from skyterra.state import ClusterDir, ClusterRecord
from skyterra.task import Task
from skyterra.terraform import Workspace

FAILOVER_KINDS = ("capacity", "quota")
Progress = Callable[[str], None]


@dataclasses.dataclass
class Provisioned:
    candidate: Candidate
    cluster: Cluster
    changed: bool


def render_for(task: Task, candidate: Candidate, spec: ClusterSpec) -> None:
    """Render the cloud's module; with a shared backend, add backend files and the registry."""
    cloud = get_cloud(candidate.cloud)
    if cloud.needs_ssh_cidrs and not spec.options.get("ssh_cidrs"):
        spec.options["ssh_cidrs"] = detect_caller_cidrs()
    tfvars = cloud.tfvars(task, candidate, spec)
    extra = dict(cloud.extra_files(spec))
    shared = spec.options.get("backend")
    if shared:
        extra.update(backend.backend_files_for(spec.name, shared))
        extra[backend.REGISTRY_FILE] = backend.REGISTRY_TF
        tfvars[backend.REGISTRY_VARIABLE] = backend.registry_value(
            spec.options.get("registry", {}), candidate, spec.num_nodes)
    render_module(cloud.template, spec.directory, cloud.template_context(task, candidate, spec),
                  tfvars, extra)


def workspace(cluster_dir: ClusterDir, cloud_name: str, progress: Progress) -> Workspace:
    return Workspace(cluster_dir.path, progress=progress,
                     classify=get_cloud(cloud_name).classify_error)


def init(ws: Workspace) -> None:
    """terraform init, with the shared backend's settings when the module has them."""
    values = ws.directory / backend.BACKEND_VALUES_FILE
    ws.init(backend_config=values if values.exists() else None)


def apply_candidate(task: Task, candidate: Candidate, spec: ClusterSpec, cluster_dir: ClusterDir,
                    progress: Progress, replace: list[str] = ()) -> Provisioned:
    """Render and apply one candidate; return the cluster built from the outputs."""
    render_for(task, candidate, spec)
    ws = workspace(cluster_dir, candidate.cloud, progress)
    init(ws)
    changed = ws.plan(replace=replace)
    if changed:
        ws.apply_plan()
    cluster = Cluster.from_terraform_outputs(spec.name, ws.outputs(),
                                             ssh_key=spec.private_key_path,
                                             known_hosts=cluster_dir.known_hosts_path,
                                             cloud=candidate.cloud, region=candidate.region,
                                             zone=candidate.zone,
                                             num_gpus_per_node=candidate.accelerator_count,
                                             node_env=get_cloud(candidate.cloud).node_env(spec))
    return Provisioned(candidate, cluster, changed)


def provision(task: Task, candidates: list[Candidate], spec: ClusterSpec,
              cluster_dir: ClusterDir, progress: Progress,
              on_attempt: Callable[[Candidate], None] | None = None) -> Provisioned:
    """Try candidates in order until one applies; clean up after each failed one."""
    attempts: list[tuple[str, str]] = []
    for candidate in candidates:
        if on_attempt:
            on_attempt(candidate)
        progress(f"provisioning {spec.num_nodes} x {candidate.describe()}")
        try:
            return apply_candidate(task, candidate, spec, cluster_dir, progress)
        except TerraformError as error:
            if error.kind not in FAILOVER_KINDS:
                raise
            reason = _first_line(str(error).split("\n", 1)[-1])
            attempts.append((candidate.describe(), f"{error.kind}: {reason}"))
            progress(f"{candidate.where}: {error.kind} error, cleaning up and trying the next "
                     "candidate")
            _destroy_partial(cluster_dir, candidate.cloud, progress)
    lines = "\n".join(f"  - {where}: {reason}" for where, reason in attempts)
    raise ProvisionError(f"could not provision cluster '{spec.name}': every candidate failed "
                         f"({len(attempts)} tried):\n{lines}\nNothing is left running. Try "
                         "other regions or accelerators (`skyterra show-gpus`), or later.",
                         attempts)


def _destroy_partial(cluster_dir: ClusterDir, cloud_name: str, progress: Progress) -> None:
    ws = workspace(cluster_dir, cloud_name, progress)
    try:
        init(ws)
        ws.destroy()
    except TerraformError as error:
        raise ProvisionError(f"a failed attempt left resources that could not be destroyed: "
                             f"{error}\nRun `skyterra destroy {cluster_dir.name}` to retry the "
                             "cleanup.") from None


def destroy(cluster_dir: ClusterDir, cloud_name: str, progress: Progress) -> None:
    """terraform destroy of a cluster dir (idempotent: an empty state destroys nothing)."""
    ws = workspace(cluster_dir, cloud_name, progress)
    if not any(cluster_dir.path.glob("*.tf")):
        return  # never rendered: nothing was created
    init(ws)
    ws.destroy()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


# --- clusters recorded in the registry ----------------------------------------------------


def spec_for(cluster_dir: ClusterDir, record: ClusterRecord, num_nodes: int) -> ClusterSpec:
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
                               "private_key": key_path.read_text(), "public_key": public_key,
                               "known_hosts": _pinned_host_keys(cluster_dir)}
    return ClusterSpec(name=record.name, directory=cluster_dir.path, num_nodes=num_nodes,
                       public_key=public_key, private_key_path=key_path, slot=record.slot,
                       options=options)


def _pinned_host_keys(cluster_dir: ClusterDir) -> str:
    path = cluster_dir.known_hosts_path
    return path.read_text() if path.exists() else ""


def publish_host_keys(task: Task, done: Provisioned, spec: ClusterSpec, cluster_dir: ClusterDir,
                      progress: Progress) -> None:
    """With a shared backend, put the host keys pinned here into the registry (one more,
    small apply) so that other machines check them instead of trusting on first use."""
    pinned = _pinned_host_keys(cluster_dir)
    registry = spec.options.get("registry")
    if not spec.options.get("backend") or registry is None or registry.get("known_hosts") == pinned:
        return
    spec.options["registry"] = {**registry, "known_hosts": pinned}
    apply_candidate(task, done.candidate, spec, cluster_dir, progress)


def record_candidate(record: ClusterRecord) -> Candidate:
    return Candidate(cloud=record.cloud, region=record.region or "", zone=record.zone,
                     instance_type=record.instance_type, accelerator=record.accelerator,
                     accelerator_count=record.accelerator_count, vcpus=0, memory_gib=0,
                     price=record.price / max(record.num_nodes, 1), num_nodes=record.num_nodes)


def render_from_record(cluster_dir: ClusterDir, record: ClusterRecord) -> ClusterSpec:
    """Render the cluster's module again from what cluster.json (or the registry) says."""
    spec = spec_for(cluster_dir, record, record.num_nodes)
    task = Task.from_yaml_config(record.task or {"run": "true"})
    render_for(task, record_candidate(record), spec)
    return spec


def ensure_module(cluster_dir: ClusterDir, record: ClusterRecord) -> None:
    """Destroy needs the module's .tf files: re-render them from cluster.json if they are gone."""
    if not (cluster_dir.path / "variables.tf").exists() and record.instance_type:
        render_from_record(cluster_dir, record)


def check_nothing_left(cluster_dir: ClusterDir, record: ClusterRecord,
                        progress: Progress) -> None:
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


def guess_cloud(cluster_dir: ClusterDir) -> str:
    """For a dir whose cluster.json was lost: the rendered module says which cloud it is."""
    text = " ".join(p.read_text(errors="replace") for p in cluster_dir.path.glob("*.tf"))
    for cloud, provider in (("aws", "hashicorp/aws"), ("gcp", "hashicorp/google"),
                            ("azure", "hashicorp/azurerm")):
        if provider in text:
            return cloud
    if (cluster_dir.path / "nodes").is_dir() or "terraform_data" in text:
        return "local"
    return ""


def destroy_cluster(cluster_dir: ClusterDir, record: ClusterRecord, progress: Progress) -> None:
    """Everything `skyterra destroy` does to a cluster's resources, in order: re-render a
    lost module, terraform destroy, remove what the state no longer knew, drop the shared
    state object."""
    ensure_module(cluster_dir, record)
    destroy(cluster_dir, record.cloud, progress)
    check_nothing_left(cluster_dir, record, progress)
    shared = backend.shared_backend(config.load())
    if shared and (cluster_dir.path / backend.BACKEND_VALUES_FILE).exists():
        backend.delete_state(shared, record.name)
