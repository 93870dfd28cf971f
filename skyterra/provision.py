"""Deployments → a running cluster: render, plan, apply; on capacity errors, fail over.

Each attempt renders one Deployment and applies it. If the cloud says "no
capacity" or "over quota" the attempt's partial resources are destroyed
before the next deployment is tried, so a failed attempt never leaves
anything in the state. Any other error stops: it would fail the same way
everywhere. Destroying a cluster is here too: it is the same module, applied
the other way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path

from skyterra import backend, config, connection
from skyterra.clouds import all_clouds, get_cloud
from skyterra.cluster import Cluster
from skyterra.deployment import Deployment, for_record
from skyterra.errors import ProvisionError, SkyterraError, TerraformError
from skyterra.renderer import render
from skyterra.state import ClusterDir, ClusterRecord
from skyterra.terraform import Workspace

FAILOVER_KINDS = ("capacity", "quota")
Progress = Callable[[str], None]


@dataclasses.dataclass
class Provisioned:
    """The outcome of an apply: the deployment that applied and the nodes it gave."""

    deployment: Deployment
    cluster: Cluster
    changed: bool


def workspace(directory: Path, cloud_name: str, progress: Progress) -> Workspace:
    cloud = get_cloud(cloud_name)
    return Workspace(directory, progress=progress, classify=cloud.classify_error,
                     parallelism=cloud.terraform_parallelism)


def init(ws: Workspace) -> None:
    """terraform init, with the shared backend's settings when the module has them."""
    values = ws.directory / backend.BACKEND_VALUES_FILE
    ws.init(backend_config=values if values.exists() else None)


APPLIED_FILE = ".skyterra-applied"   # fingerprint of module + tfvars + state after an apply


def apply(deployment: Deployment, known_hosts: Path, progress: Progress,
          replace: Iterable[str] = ()) -> Provisioned:
    """Render and apply one deployment; return the cluster built from the outputs.

    No Terraform run that cannot change anything: when the rendered module, its
    tfvars and the (local) state are byte for byte what the last successful apply
    left, plan and apply are skipped and the outputs come from the state file.
    (Terraform itself would not notice a node that died since: the caller probes
    the nodes and applies again with `replace` for the dead ones.) One plan file is
    applied; the outputs are read once.
    """
    render(deployment)
    directory = deployment.directory
    replace = list(replace)
    if not replace and _unchanged_since_apply(directory):
        outputs = _state_outputs(directory)
        if outputs is not None:
            progress("nothing changed since the last apply (module, variables and state); "
                     "skipping terraform plan")
            return Provisioned(deployment, cluster_from_outputs(deployment, outputs,
                                                                known_hosts), False)
    ws = workspace(directory, deployment.cloud.name, progress)
    init(ws)
    changed = ws.plan(replace=replace)
    if changed:
        ws.apply_plan()
    outputs = _state_outputs(directory)
    if outputs is None:
        outputs = ws.outputs()  # remote state: ask Terraform
    _remember_apply(directory)
    return Provisioned(deployment, cluster_from_outputs(deployment, outputs, known_hosts),
                       changed)


def _local_state(directory: Path) -> Path | None:
    """The state file, when the state is local (a shared backend keeps it elsewhere)."""
    if (directory / backend.BACKEND_VALUES_FILE).exists():
        return None
    state = directory / "terraform.tfstate"
    return state if state.exists() else None


def _fingerprint(directory: Path) -> str | None:
    import hashlib

    state = _local_state(directory)
    if state is None:
        return None
    digest = hashlib.sha256()
    for path in sorted([*directory.glob("*.tf"), *directory.glob("*.tfvars.json"),
                        *directory.glob("scripts/*"), state]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _unchanged_since_apply(directory: Path) -> bool:
    marker = directory / APPLIED_FILE
    try:
        return marker.read_text().strip() == _fingerprint(directory)
    except OSError:
        return False


def _remember_apply(directory: Path) -> None:
    fingerprint = _fingerprint(directory)
    marker = directory / APPLIED_FILE
    if fingerprint is None:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text(fingerprint + "\n")


def _state_outputs(directory: Path) -> dict | None:
    """Output values from the local state file (what `terraform output -json` would print,
    without starting Terraform); None for remote state or an unreadable file."""
    import json

    state = _local_state(directory)
    if state is None:
        return None
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    return {name: item.get("value") for name, item in outputs.items()
            if isinstance(item, dict)}


def apply_outputs(deployment: Deployment, progress: Progress, refresh: bool = False) -> dict:
    """Render and apply one deployment; return its outputs (no cluster is built: a
    stopped cluster's outputs may have no addresses). refresh: read the resources again
    after the apply (a started instance has a new public IP)."""
    render(deployment)
    ws = workspace(deployment.directory, deployment.cloud.name, progress)
    init(ws)
    if ws.plan():
        ws.apply_plan()
        if refresh:
            ws.refresh()
    return ws.outputs()


def cluster_from_outputs(deployment: Deployment, outputs: dict, known_hosts: Path) -> Cluster:
    candidate = deployment.candidate
    return Cluster.from_terraform_outputs(
        deployment.name, outputs, ssh_key=deployment.private_key_path, known_hosts=known_hosts,
        cloud=candidate.cloud, region=candidate.region, zone=candidate.zone,
        num_gpus_per_node=candidate.accelerator_count,
        node_env=deployment.cloud.node_env(deployment))


def first_that_applies(deployments: Iterable[Deployment], known_hosts: Path,
                       progress: Progress) -> Provisioned:
    """Apply deployments in order until one works; clean up after each failed one."""
    attempts: list[tuple[str, str]] = []
    name = ""
    for attempt in deployments:
        name, candidate = attempt.name, attempt.candidate
        progress(f"provisioning {attempt.num_nodes} x {candidate.describe()}")
        try:
            return apply(attempt, known_hosts, progress)
        except TerraformError as error:
            if error.kind not in FAILOVER_KINDS:
                raise
            reason = _first_line(str(error).split("\n", 1)[-1])
            attempts.append((candidate.describe(), f"{error.kind}: {reason}"))
            progress(f"{candidate.where}: {error.kind} error, cleaning up and trying the next "
                     "candidate")
            _destroy_partial(attempt, progress)
    lines = "\n".join(f"  - {where}: {reason}" for where, reason in attempts)
    raise ProvisionError(f"could not provision cluster '{name}': every candidate failed "
                         f"({len(attempts)} tried):\n{lines}\nNothing is left running. Try "
                         "other regions or accelerators (`skyterra show-gpus`), or later.",
                         attempts)


def _destroy_partial(deployment: Deployment, progress: Progress) -> None:
    try:
        destroy(deployment.directory, deployment.cloud.name, progress)
    except TerraformError as error:
        raise ProvisionError(f"a failed attempt left resources that could not be destroyed: "
                             f"{error}\nRun `skyterra destroy {deployment.name}` to retry the "
                             "cleanup.") from None


def destroy(directory: Path, cloud_name: str, progress: Progress) -> None:
    """terraform destroy of a module dir (idempotent: an empty state destroys nothing)."""
    if not any(directory.glob("*.tf")):
        return  # never rendered: nothing was created
    ws = workspace(directory, cloud_name, progress)
    init(ws)
    ws.destroy()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


# --- tearing a recorded cluster down ---------------------------------------------------
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
    if not text and not cluster_dir.path.is_dir():
        return ""
    # Clouds with a provider first: the local module has none to recognise it by.
    for cloud in sorted(all_clouds(), key=lambda c: not c.provider_source):
        if cloud.owns_module(text, cluster_dir.path):
            return cloud.name
    return ""


def destroy_cluster(cluster_dir: ClusterDir, record: ClusterRecord, progress: Progress) -> None:
    """Everything `skyterra destroy` does to a cluster's resources, in order: re-render a
    lost module, terraform destroy, remove what the state no longer knew, drop the shared
    state object."""
    connection.close(cluster_dir.known_hosts_path.parent)  # no session into a dying node
    if not (cluster_dir.path / "variables.tf").exists() and record.instance_type:
        render(for_record(cluster_dir, record))
    destroy(cluster_dir.path, record.cloud, progress)
    check_nothing_left(cluster_dir, record, progress)
    shared = backend.shared_backend(config.load())
    if shared and (cluster_dir.path / backend.BACKEND_VALUES_FILE).exists():
        backend.delete_state(shared, record.name)
