"""Google Cloud: Compute Engine GPU clusters through templates/gcp/.

What is GCP-specific lives here: which machine types carry their GPUs built in
(A2, A3, A4, G2: no guest_accelerator) and which get them attached (N1 + T4,
V100, P100), spot scheduling, compact placement, the Deep Learning VM image,
application default credentials, and the error texts of the Compute API.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

from skyterra import container
from skyterra.catalog import fabric as fabrics
from skyterra.catalog.fabric import chosen_fabric, fabric_notes
from skyterra.clouds import register
from skyterra.clouds.base import WATCHER_GUARD, Cloud, CloudSettings, CredentialReport
from skyterra.errors import ConfigError, TaskError
from skyterra.resources import machine_image

if TYPE_CHECKING:
    from skyterra.catalog import Candidate
    from skyterra.deployment import Deployment

# Deep Learning VM image family: Ubuntu 22.04, CUDA 12.8, NVIDIA driver 570
# (supports T4 up to B200). The family always points at the newest image.
DEFAULT_GPU_IMAGE = ("projects/deeplearning-platform-release/global/images/family/"
                     "common-cu128-ubuntu-2204-nvidia-570")
DEFAULT_CPU_IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
DEFAULT_DISK_GB = 256

# Machine-type prefixes whose GPUs are part of the machine type: the instance
# must NOT have a guest_accelerator block.
FIXED_GPU_PREFIXES = ("a2-", "a3-", "a4-", "a4x-", "g2-", "g4-")
# Accelerators that are attached to N1 machine types through guest_accelerator.
ATTACHABLE_GPUS = {
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
}
# Which machine series accept a COLLOCATED (compact) placement policy, and which
# get GPUDirect NICs, is data: skyterra/catalog/fabrics/families.csv. A compact
# policy holds at most this many VMs (placement policies overview).
COMPACT_PLACEMENT_MAX_VMS = 150
# Series whose boot disk must be Hyperdisk (no Persistent Disk support).
HYPERDISK_ONLY_PREFIXES = ("a3-ultragpu", "a4-", "a4x-", "c4-", "c4a-", "c4d-", "n4-", "g4-")
DISK_TIERS = {"low": "pd-standard", "medium": "pd-balanced", "high": "pd-ssd",
              "ultra": "pd-ssd", "best": "pd-ssd"}

# Run as root at every boot: make `uv` available system-wide, the way SkyPilot
# task `setup:` sections expect it. Idempotent; never fails the boot.
NODE_SETUP_SCRIPT = """\
#!/bin/bash
# skyterra node setup: runs at every boot.
if ! command -v uv >/dev/null 2>&1 && [ ! -x /usr/local/bin/uv ]; then
  for attempt in 1 2 3 4 5; do
    curl -LsSf https://astral.sh/uv/install.sh \\
      | env UV_INSTALL_DIR=/usr/local/bin UV_NO_MODIFY_PATH=1 sh && break
    python3 -m pip install --quiet uv && break
    sleep 10
  done
fi
mkdir -p /var/lib/skyterra && touch /var/lib/skyterra/node-ready
"""

_PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "GOOGLE_PROJECT", "GCLOUD_PROJECT",
                "CLOUDSDK_CORE_PROJECT")
_GCP_LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")


def machine_series(machine_type: str) -> str:
    """'g2-standard-48' → 'g2'; 'custom-8-30720' → 'n1' (custom types are N1)."""
    if machine_type.startswith("custom-"):
        return "n1"
    return machine_type.split("-", 1)[0]


def has_fixed_gpus(machine_type: str) -> bool:
    """A2/A3/A4/G2 machine types carry their GPUs; nothing may be attached."""
    return machine_type.startswith(FIXED_GPU_PREFIXES)


def source_ranges(deployment: Deployment) -> dict[str, Any]:
    """SSH and port ingress variables shared by the GCP and Azure modules.

    Without known SSH CIDRs (dry run, standalone render) `ssh_source_ranges` is
    left out, so Terraform asks for it at plan time; ports then follow it there.
    """
    values: dict[str, Any] = {}
    cidrs = list(deployment.ssh_cidrs) if deployment.ssh_cidrs is not None else None
    if cidrs is not None:
        values["ssh_source_ranges"] = cidrs
    ports = list(deployment.resources.ports)
    port_cidrs = (list(deployment.settings.port_cidrs) if deployment.settings.port_cidrs
                  else cidrs)
    values["ports"] = ports
    values["port_source_ranges"] = port_cidrs if ports and port_cidrs is not None else []
    return values


@dataclasses.dataclass(frozen=True)
class GCPSettings(CloudSettings):
    """`provision:` keys for GCP (all optional)."""

    gcp_project: str | None = None        # default: GOOGLE_CLOUD_PROJECT and friends
    gcp_network: str | None = None
    gcp_subnetwork: str | None = None
    gcp_service_account: str | None = None


@register
class GCP(Cloud):
    name = "gcp"
    template = "gcp"
    node_resource = "google_compute_instance.node"
    supports_autostop = True   # the head's watcher; a guest shutdown stops a GCE instance
    default_ssh_user = "gcpuser"
    provider_source = "hashicorp/google"
    settings_class = GCPSettings
    task_config_ignored: ClassVar[dict[str, str]] = {
        "managed_instance_group": "only changes how SkyPilot asks GCP for capacity (a "
                                  "managed instance group and its DWS queue); skyterra "
                                  "creates the instances directly",
        "enable_gpu_direct": "skyterra sets up GPUDirect-TCPX/TCPXO itself on the machine "
                             "families that have it (multi-node GPU clusters, or "
                             "network_tier: best)",
        "enable_gvnic": "skyterra picks the network interface type of each machine family "
                        "itself",
    }
    # First match wins: capacity before quota before auth before invalid, since
    # e.g. a quota error also carries "403" and a stockout also says "zone".
    error_patterns = (
        ("capacity", r"ZONE_RESOURCE_POOL_EXHAUSTED"),
        ("capacity", r"does not have enough resources available to fulfill the request"),
        ("capacity", r"resource pool exhausted|STOCKOUT"),
        ("capacity", (r"does not exist in zone|is not available in zone|"
                      r"not available in the (zone|region)")),
        ("quota", r"QUOTA_EXCEEDED|quotaExceeded"),
        ("quota", r"Quota '[A-Z0-9_]+' exceeded"),
        ("quota", r"Quota exceeded for quota (metric|group)"),
        ("auth", r"could not find default credentials"),
        ("auth", r"No credentials loaded|Attempted to load application default credentials"),
        ("auth", (r"oauth2: cannot fetch token|invalid_grant|Reauthentication is needed|"
                  r"Token has been expired or revoked")),
        ("auth", (r"Error 403|Error 401|forbidden|PERMISSION_DENIED|[Pp]ermission denied|"
                  r"Required '[a-z.]+' permission|accessNotConfigured|has not been used in project")),
        ("invalid", (r"Error 400|badRequest|Invalid value for field|features are not compatible|"
                     r"is not a valid|invalid ?argument")),
        ("invalid", (r"Error 404|was not found|notFound|Could not find image|"
                     r"Error 409|alreadyExists|already exists")),
        ("invalid", r"project: required field is not set"),
        ("invalid", r"Invalid value for variable"),
    )

    # --- credentials ----------------------------------------------------------------
    def interruption_watcher(self) -> str | None:
        """Waits on the metadata server's `preempted` value (it turns TRUE on preemption)."""
        return GCP_INTERRUPTION_WATCHER

    def parse_interruption(self, text: str) -> str | None:
        return parse_gcp_preempted(text)

    def has_local_credentials(self) -> bool:
        """A key file (GOOGLE_APPLICATION_CREDENTIALS) or gcloud's application default
        credentials file; google.auth.default would also ask the GCE metadata server."""
        key = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        gcloud = os.environ.get("CLOUDSDK_CONFIG", os.path.expanduser("~/.config/gcloud"))
        return bool(key and os.path.isfile(key)) or os.path.isfile(
            os.path.join(gcloud, "application_default_credentials.json"))

    def check_credentials(self) -> CredentialReport:
        try:
            import google.auth
            from google.auth import exceptions as auth_exceptions
        except ImportError:
            return CredentialReport(
                self.name, False, "not installed: pip install skyterra[gcp]",
                hint="pip install 'skyterra[gcp]' (google-auth), then "
                     "`gcloud auth application-default login`.")
        try:
            credentials, project = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except auth_exceptions.DefaultCredentialsError:
            return CredentialReport(
                self.name, False, "no application default credentials found",
                hint="run `gcloud auth application-default login`, or set "
                     "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file.")
        except Exception as error:  # noqa: BLE001 - a malformed key file, an unreadable path …
            return CredentialReport(
                self.name, False,
                f"application default credentials could not be loaded ({type(error).__name__})",
                hint="check the file GOOGLE_APPLICATION_CREDENTIALS points to, or run "
                     "`gcloud auth application-default login` again.")
        project = project or _project_from_env()
        kind = type(credentials).__name__
        account = getattr(credentials, "service_account_email", None)
        who = f"{kind} {account}" if account and "@" in str(account) else kind
        if not project:
            return CredentialReport(
                self.name, False, f"credentials found ({who}) but no project",
                hint="set GOOGLE_CLOUD_PROJECT, or `gcloud config set project PROJECT_ID`.")
        return CredentialReport(self.name, True,
                                f"application default credentials ({who}), project {project}")

    # --- rendering --------------------------------------------------------------------
    def _gpu(self, candidate: Candidate) -> tuple[str | None, int]:
        """(guest accelerator type, count) to attach, or (None, 0)."""
        if not candidate.accelerator or has_fixed_gpus(candidate.instance_type):
            return None, 0
        gpu_type = ATTACHABLE_GPUS.get(candidate.accelerator)
        if gpu_type is None or machine_series(candidate.instance_type) != "n1":
            raise TaskError(
                f"{candidate.accelerator} GPUs cannot be attached to GCP machine type "
                f"{candidate.instance_type}: only T4, V100, P100 and P4 attach to N1 machine types; "
                "L4, A100, H100, H200 and B200 come built into G2, A2, A3 and A4 machine types.",
                field="resources.accelerators")
        return gpu_type, candidate.accelerator_count

    def placement_supported(self, candidate: Candidate) -> bool:
        return fabrics.family(self.name, candidate.instance_type).placement

    def placement(self, deployment: Deployment) -> bool:
        """Compact placement: several nodes of a supporting series, within the policy's size."""
        return (1 < deployment.num_nodes <= COMPACT_PLACEMENT_MAX_VMS
                and self.placement_supported(deployment.candidate))

    def fabric(self, deployment: Deployment) -> fabrics.Family | None:
        """The GPUDirect family row when the cluster uses its extra NICs, else None."""
        return chosen_fabric(deployment)

    def node_env(self, deployment: Deployment) -> dict[str, str]:
        """The NCCL GPUDirect-TCPX/TCPXO plugin settings when the cluster uses them."""
        fabric = self.fabric(deployment)
        return fabric.env if fabric else {}

    def node_power(self, cluster_dir: Any, record: Any) -> dict[int, str] | None:
        """Ask the compute API (google-auth's default credentials) about each node."""
        try:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession
        except ImportError:
            return None
        import json
        from pathlib import Path

        try:  # the project the module applied to, not whatever is configured today
            project = json.loads((Path(cluster_dir) / "terraform.tfvars.json").read_text()
                                 ).get("project")
            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except Exception:  # noqa: BLE001 - no module or no credentials here: cannot tell
            return None
        if not project or not record.zone:
            return None
        names = {node["rank"]: f"{record.name}-{node['rank']}" for node in record.nodes}
        session = AuthorizedSession(credentials)
        return instance_power(lambda url: session.get(url, timeout=20), project, record.zone,
                              names)

    def template_context(self, deployment: Deployment) -> dict[str, Any]:
        candidate = deployment.candidate
        gpu_type, _ = self._gpu(candidate)
        return {
            "gpu": bool(candidate.accelerator),
            "guest_accelerator": gpu_type is not None,
            "spot": bool(candidate.use_spot),
            "placement": self.placement(deployment),
            "gpu_nics": self.fabric(deployment) is not None,
            "ports": bool(deployment.resources.ports),
            "storage": bool(_gcs_buckets(deployment)),
            "autodown": _launched_with_autodown(deployment),
        }

    def tfvars(self, deployment: Deployment) -> dict[str, Any]:
        resources, candidate, settings = (deployment.resources, deployment.candidate,
                                          deployment.settings)
        if not candidate.zone:
            raise ConfigError(f"GCP needs a zone for {candidate.describe()}; the catalog row "
                              "has none.")
        gpu_type, gpu_count = self._gpu(candidate)
        fabric = self.fabric(deployment)
        labels = dict(resources.labels)
        for key, value in labels.items():
            if not _GCP_LABEL.match(value):
                raise TaskError(f"GCP label values may only contain lowercase letters, digits, "
                                f"'_' and '-'; got {value!r}.", field=f"resources.labels.{key}")
        image = machine_image(resources.image_id) or (
            DEFAULT_GPU_IMAGE if candidate.accelerator else DEFAULT_CPU_IMAGE)
        return {
            "cluster_name": deployment.name,
            "num_nodes": deployment.num_nodes,
            "project": settings.gcp_project or _project_from_env(),
            "region": candidate.region,
            "zone": candidate.zone,
            "machine_type": candidate.instance_type,
            "gpu_type": gpu_type,
            "gpu_count": gpu_count,
            "gpu_nic_count": fabric.interfaces if fabric else 0,
            "spot_termination_action": "DELETE",
            "disk_size_gb": resources.disk_size or DEFAULT_DISK_GB,
            "disk_type": _disk_type(candidate.instance_type, resources.disk_tier),
            "image": image,
            "network": settings.gcp_network or "default",
            "subnetwork": settings.gcp_subnetwork,
            "ssh_user": self.default_ssh_user,
            "ssh_public_key": deployment.public_key,
            **source_ranges(deployment),
            "labels": labels,
            "nodes_running": deployment.nodes_running,
            "startup_script": container.boot_script(
                NODE_SETUP_SCRIPT + (STORAGE_TOOLS if _gcs_buckets(deployment) else ""),
                deployment),
            "service_account": settings.gcp_service_account,
            **({"storage_buckets": _gcs_buckets(deployment)} if _gcs_buckets(deployment)
               else {}),
        }

    def warnings(self, deployment: Deployment) -> list[str]:
        out = []
        candidate = deployment.candidate
        if deployment.num_nodes > 1 and not self.placement_supported(candidate):
            out.append(f"{candidate.instance_type} does not support compact placement; the "
                       f"{deployment.num_nodes} nodes may land far apart in {candidate.zone}.")
        elif deployment.num_nodes > COMPACT_PLACEMENT_MAX_VMS:
            out.append(f"a compact placement policy holds at most {COMPACT_PLACEMENT_MAX_VMS} "
                       f"VMs; the {deployment.num_nodes} nodes run without one.")
        elif self.placement(deployment):
            out.append("compact placement: nodes terminate (not live-migrate) on host "
                       "maintenance and are not restarted automatically.")
        out.extend(fabric_notes(deployment))
        fabric = self.fabric(deployment)
        if fabric is not None:
            out.append(f"network: {fabric.label.split(' x')[0]} with {fabric.interfaces} extra "
                       f"NICs per node, each in its own VPC, and the NCCL plugin settings "
                       "exported to setup/run. The image must provide the plugin and the "
                       "receive-datapath-manager (RxDM) service; skyterra does not start RxDM.")
        return out


def _project_from_env() -> str | None:
    for name in _PROJECT_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _disk_type(machine_type: str, disk_tier: str | None) -> str:
    if machine_type.startswith(HYPERDISK_ONLY_PREFIXES):
        return "hyperdisk-balanced"
    return DISK_TIERS.get(disk_tier or "medium", "pd-balanced")


# Started on each node of a managed job (see Cloud.interruption_watcher).
GCP_INTERRUPTION_WATCHER = WATCHER_GUARD + r"""
url=${SKYTERRA_GCE_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}
url=$url/instance/preempted
while :; do
  value=$(curl -sf -m 70 -H 'Metadata-Flavor: Google' "$url?wait_for_change=true&timeout_sec=60")
  if [ "$value" = TRUE ]; then printf 'TRUE\n' > "$HOME/.skyterra/interruption"; exit 0; fi
  [ -n "$value" ] || sleep "${SKYTERRA_WATCH_INTERVAL:-5}"
done
"""


def parse_gcp_preempted(text: str) -> str | None:
    """The metadata server's instance/preempted value: TRUE once Compute Engine preempts."""
    if str(text).strip().upper() == "TRUE":
        return "GCP preemption notice: Compute Engine is preempting the instance (~30 s)"
    return None


# Appended to the startup script of nodes whose task mounts buckets.
STORAGE_TOOLS = ("\n# skyterra: tools for bucket file_mounts\n"
                 "DEBIAN_FRONTEND=noninteractive apt-get install -y -q rclone fuse3 || true\n")


def _gcs_buckets(deployment: Deployment) -> list[str]:
    """The GCS buckets of the task's bucket file_mounts, sorted (a stable render)."""
    mounts = getattr(deployment.task, "storage_mounts", [])
    return sorted({m.ref.bucket for m in mounts if m.ref.store == "gcs"})


# Compute Engine instance statuses (instances.get) → what autostop's reconcile reads.
_GCE_POWER = {"PROVISIONING": "running", "STAGING": "running", "RUNNING": "running",
              "REPAIRING": "running", "STOPPING": "stopped", "STOPPED": "stopped",
              "TERMINATED": "stopped", "SUSPENDING": "stopped", "SUSPENDED": "stopped"}
COMPUTE_API = "https://compute.googleapis.com/compute/v1"


def instance_power(get: Any, project: str, zone: str, names: dict[int, str]
                   ) -> dict[int, str] | None:
    """rank → running/stopped/gone from the compute API's instances.get (`get(url)` returns
    a response with status_code and json()); None when it does not answer clearly."""
    found: dict[int, str] = {}
    for rank, name in names.items():
        try:
            reply = get(f"{COMPUTE_API}/projects/{project}/zones/{zone}/instances/{name}")
        except OSError:
            return None
        if reply.status_code == 404:
            found[rank] = "gone"
        elif reply.status_code == 200:
            found[rank] = _GCE_POWER.get(str(reply.json().get("status")), "running")
        else:
            return None
    return found


def _launched_with_autodown(deployment: Deployment) -> bool:
    """The task asked for autodown at launch: the nodes get a service account that may
    delete exactly their own instances. Only the launch-time setting counts: changing
    an instance's service account needs it stopped, so a later `skyterra autostop
    --down` keeps the nodes as they are; they then stop themselves (a guest shutdown)
    and the next `skyterra status` destroys what is left."""
    setting = deployment.resources.autostop
    return bool(setting and setting.get("down"))
