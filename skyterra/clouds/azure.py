"""Azure: GPU clusters of Linux VMs through templates/azure/.

What is Azure-specific lives here: the subscription (azurerm 4.x needs one),
the Ubuntu HPC image, marketplace URNs vs image resource ids, premium-storage
support by size name, spot settings, the az CLI / azure-identity credential
check, and the error codes of Azure Resource Manager.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from skyterra import autostop, container
from skyterra.catalog import fabric as fabrics
from skyterra.catalog.fabric import chosen_fabric, fabric_notes
from skyterra.clouds import register
from skyterra.clouds.base import Cloud, CloudSettings, CredentialReport
from skyterra.clouds.gcp import NODE_SETUP_SCRIPT, STORAGE_TOOLS, source_ranges
from skyterra.errors import NotSupportedError, TaskError
from skyterra.resources import machine_image

if TYPE_CHECKING:
    from skyterra.deployment import Deployment

# Default images by the kind families.csv (skyterra/catalog/fabrics/) gives a size:
# hpc: Ubuntu 22.04 HPC image (NVIDIA driver, CUDA, NCCL, InfiniBand drivers), whose
#   supported sizes are ND, NC A100 v4, HB and HC; gpu: the Ubuntu 22.04 Data Science VM
#   (NVIDIA driver, CUDA) for NC T4 v3 / NC A10 v4 / NV A10 v5, which the HPC image does
#   not list; cpu: plain Ubuntu 22.04 LTS (Gen2).
IMAGES = {
    "hpc": {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204",
            "version": "latest"},
    "gpu": {"publisher": "microsoft-dsvm", "offer": "ubuntu-2204", "sku": "2204-gen2",
            "version": "latest"},
    "cpu": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy",
            "sku": "22_04-lts-gen2", "version": "latest"},
}
DEFAULT_IMAGE = IMAGES["hpc"]
DEFAULT_DISK_GB = 256
# publisher:offer:sku:version, the form `az vm create --image` and SkyPilot use.
_URN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9][A-Za-z0-9._-]*):"
                  r"([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9][A-Za-z0-9._-]*)$")
# "Standard_NC24ads_A100_v4" → family "NC", vCPUs "24", features "ads".
_SIZE = re.compile(r"^Standard_([A-Z]+)(\d+)(-\d+)?([a-z]*)")
_SUBSCRIPTION_ENV = ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")
_SP_ENV_SECRETS = ("ARM_CLIENT_SECRET", "ARM_CLIENT_CERTIFICATE_PATH", "ARM_USE_OIDC",
                   "ARM_USE_MSI", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                   "AZURE_FEDERATED_TOKEN_FILE")


def premium_storage(vm_size: str) -> bool:
    """Sizes with an 's' among their feature letters support Premium SSD OS disks."""
    match = _SIZE.match(vm_size)
    return bool(match and "s" in match.group(4))


def default_image(vm_size: str, has_gpu: bool) -> dict[str, str]:
    """The marketplace image a size needs when the task names none (families.csv)."""
    kind = fabrics.family("azure", vm_size).image or ("hpc" if has_gpu else "cpu")
    return dict(IMAGES[kind])


def image_source(image_id: str | None, default: dict[str, str] | None = None
                 ) -> tuple[dict[str, str] | None, str | None]:
    """The task's image_id → (marketplace image, None) or (None, resource id)."""
    if not image_id:
        return dict(default or DEFAULT_IMAGE), None
    match = _URN.match(image_id.strip())
    if match:
        publisher, offer, sku, version = match.groups()
        return {"publisher": publisher, "offer": offer, "sku": sku, "version": version}, None
    if image_id.startswith("/"):
        return None, image_id.strip()
    raise TaskError(f"Azure image_id {image_id!r} is neither a marketplace URN "
                    "(publisher:offer:sku:version) nor an image resource id (/subscriptions/…, "
                    "/communityGalleries/…, /sharedGalleries/…).", field="resources.image_id")


def _az_account_show() -> dict[str, Any] | None:
    """`az account show` as JSON (local profile, no network), or None."""
    az = shutil.which("az")
    if not az:
        return None
    try:
        done = subprocess.run([az, "account", "show", "--output", "json"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _subscription_from_env() -> str | None:
    for name in _SUBSCRIPTION_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _masked(subscription: str) -> str:
    """Enough of a subscription id to recognise it."""
    return f"…{subscription[-4:]}" if len(subscription) > 8 else subscription


@dataclasses.dataclass(frozen=True)
class AzureSettings(CloudSettings):
    """`provision:` keys for Azure (all optional)."""

    azure_subscription_id: str | None = None   # default: ARM_SUBSCRIPTION_ID
    azure_subnet_id: str | None = None          # an existing subnet instead of our own VNet
    azure_address_space: str | None = None
    azure_accelerated_networking: bool | None = None


@register
class Azure(Cloud):
    name = "azure"
    template = "azure"
    supports_autostop = True   # the head's watcher; the nodes deallocate themselves via ARM
    autostop_in_module = True  # the nodes' identity and its role on their VMs
    node_resource = "azurerm_linux_virtual_machine.node"
    default_ssh_user = "azureuser"
    provider_source = "hashicorp/azurerm"
    settings_class = AzureSettings
    label_key = (r"[^<>%&\\?/]{1,512}", "at most 512 characters, none of < > % & \\ ? /")
    # First match wins. Quota errors arrive with Code="OperationNotAllowed", so quota
    # patterns come before the generic invalid ones.
    error_patterns = (
        ("capacity", r"SkuNotAvailable"),
        ("capacity", r"ZonalAllocationFailed|AllocationFailed"),
        ("capacity", r"Overconstrained(Zonal)?AllocationRequest"),
        ("capacity", r"do not have sufficient capacity|is currently not available in location"),
        ("quota", r"QuotaExceeded|PublicIPCountLimitReached"),
        ("quota", r"exceeding approved .*quota|Cores quota|LowPriorityCores"),
        ("auth", r"AuthorizationFailed|LinkedAuthorizationFailed"),
        ("auth", r"InvalidAuthenticationToken|ExpiredAuthenticationToken"),
        ("auth", (r"AADSTS\d+|Please run 'az login'|az login|building account|"
                  r"unable to build authorizer|obtaining subscription|"
                  r"DefaultAzureCredential failed")),
        ("auth", r"MissingSubscriptionRegistration|SubscriptionNotFound"),
        ("auth", r"subscription_id.{0,40}required|subscription ID could not be determined"),
        ("invalid", (r"InvalidParameter|InvalidTemplate|BadRequest|VMMarketplaceInvalidInput|"
                     r"PlatformImageNotFound|ImageNotFound|InvalidResourceName|"
                     r"NotSupported|NotPermitted|OperationNotAllowed")),
        ("invalid", r"Invalid value for variable"),
    )

    # --- credentials ----------------------------------------------------------------
    def has_local_credentials(self) -> bool:
        """A subscription in the environment, or an `az login` profile on disk (read
        without running az, which is slow to start)."""
        config = os.environ.get("AZURE_CONFIG_DIR", os.path.expanduser("~/.azure"))
        return bool(_subscription_from_env()) or os.path.isfile(
            os.path.join(config, "azureProfile.json"))

    def check_credentials(self) -> CredentialReport:
        try:
            import azure.identity as azure_identity
        except ImportError:
            azure_identity = None
        subscription = _subscription_from_env()
        account = None if subscription else _az_account_show()
        if account and not subscription:
            subscription = account.get("id")
        service_principal = bool(
            (os.environ.get("ARM_CLIENT_ID") or os.environ.get("AZURE_CLIENT_ID"))
            and any(os.environ.get(name) for name in _SP_ENV_SECRETS))
        if account is None and subscription and not service_principal:
            account = _az_account_show()   # the login behind an env subscription id
        if not subscription:
            if azure_identity is None and not shutil.which("az"):
                return CredentialReport(
                    self.name, False, "not installed: pip install skyterra[azure]",
                    hint="pip install 'skyterra[azure]' (azure-identity), or install the "
                         "Azure CLI and run `az login`.")
            return CredentialReport(
                self.name, False, "no Azure subscription found",
                hint="run `az login` (and `az account set -s SUBSCRIPTION`), or set "
                     "ARM_SUBSCRIPTION_ID with a service principal's ARM_CLIENT_ID, "
                     "ARM_TENANT_ID and ARM_CLIENT_SECRET.")
        where = f"subscription {_masked(subscription)}"
        if account and account.get("name"):
            where = f"subscription {account['name']} ({_masked(subscription)})"
        if service_principal:
            return CredentialReport(self.name, True, f"service principal from the environment, "
                                                     f"{where}")
        if account:
            user = account.get("user") or {}
            who = user.get("name") if isinstance(user, dict) else None
            kind = user.get("type", "user") if isinstance(user, dict) else "user"
            detail = f"az CLI login ({kind} {who})" if who else "az CLI login"
            return CredentialReport(self.name, True, f"{detail}, {where}")
        if azure_identity is None:
            return CredentialReport(
                self.name, False, f"{where} set but no login found; "
                                  "not installed: pip install skyterra[azure]",
                hint="run `az login`, or pip install 'skyterra[azure]' for managed identity "
                     "and service principals.")
        try:
            credential = azure_identity.DefaultAzureCredential(
                exclude_interactive_browser_credential=True)
            credential.get_token("https://management.azure.com/.default")
        except Exception as error:  # noqa: BLE001 - CredentialUnavailableError, ClientAuthenticationError …
            return CredentialReport(
                self.name, False, f"{where} set but DefaultAzureCredential found no usable "
                                  f"login ({type(error).__name__})",
                hint="run `az login`, or set ARM_CLIENT_ID, ARM_TENANT_ID and "
                     "ARM_CLIENT_SECRET for a service principal.")
        return CredentialReport(self.name, True, f"DefaultAzureCredential, {where}")

    # --- rendering --------------------------------------------------------------------
    def template_context(self, deployment: Deployment) -> dict[str, Any]:
        resources, candidate = deployment.resources, deployment.candidate
        _, image_id = image_source(machine_image(resources.image_id))
        return {
            "gpu": bool(candidate.accelerator),
            "spot": bool(candidate.use_spot),
            "placement": deployment.num_nodes > 1,
            "scale_set": self.fabric(deployment) is not None,
            "own_network": not deployment.settings.azure_subnet_id,
            "image_id": image_id is not None,
            "ports": bool(resources.ports),
            "storage": bool(_containers(deployment)),
            # the nodes' identity may deallocate/delete their VMs once autostop is asked
            "autostop": bool(autostop.module_setting(deployment.stored, resources)),
        }

    def node_power(self, cluster_dir: Any, record: Any) -> dict[int, str] | None:
        """Ask ARM (azure-identity's default credential) for each VM's instance view."""
        ids = {node["rank"]: str(node.get("instance_id") or "") for node in record.nodes}
        if not all(i.startswith("/subscriptions/") for i in ids.values()):
            return None  # an InfiniBand scale set's instances carry no ARM path: cannot tell
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            return None
        import requests

        try:
            token = DefaultAzureCredential().get_token(
                "https://management.azure.com/.default").token
        except Exception:  # noqa: BLE001 - no credentials here: cannot tell
            return None
        return vm_power(lambda url: requests.get(
            url, headers={"Authorization": f"Bearer {token}"}, timeout=20), ids)

    def check_stoppable(self, deployment: Any) -> None:
        """azurerm cannot express a VM's power state (no argument or resource for it), so a
        stop through Terraform would drift; the Azure CLI does it, outside skyterra."""
        name = deployment.name
        raise NotSupportedError(
            f"skyterra cannot stop Azure cluster '{name}' yet: the azurerm provider has no "
            "power-state setting, so Terraform cannot keep it stopped. Deallocate the VMs "
            f"with the Azure CLI (`az vm deallocate --ids $(az vm list -g skyterra-{name} "
            "--query '[].id' -o tsv)`, later `az vm start --ids ...`), or destroy the "
            f"cluster with `skyterra destroy {name}`.", field="cluster")

    def tfvars(self, deployment: Deployment) -> dict[str, Any]:
        resources, candidate, settings = (deployment.resources, deployment.candidate,
                                          deployment.settings)
        image, image_id = image_source(machine_image(resources.image_id), default_image(
            candidate.instance_type, bool(candidate.accelerator)))
        premium = premium_storage(candidate.instance_type)
        disk_type = "Premium_LRS" if premium and resources.disk_tier != "low" \
            else "StandardSSD_LRS"
        accelerated = settings.azure_accelerated_networking
        return {
            "cluster_name": deployment.name,
            "num_nodes": deployment.num_nodes,
            "subscription_id": settings.azure_subscription_id or _subscription_from_env(),
            "location": candidate.region,
            "zone": str(candidate.zone) if candidate.zone else None,
            "vm_size": candidate.instance_type,
            "accelerated_networking": True if accelerated is None else bool(accelerated),
            "os_disk_size_gb": resources.disk_size or DEFAULT_DISK_GB,
            "os_disk_type": disk_type,
            "image": image or dict(DEFAULT_IMAGE),
            "image_id": image_id,
            "address_space": settings.azure_address_space or "10.42.0.0/16",
            "subnet_id": settings.azure_subnet_id,
            "ssh_user": self.default_ssh_user,
            "ssh_public_key": deployment.public_key,
            **source_ranges(deployment),
            "tags": dict(resources.labels),
            "custom_data": container.boot_script(
                NODE_SETUP_SCRIPT + (STORAGE_TOOLS if _containers(deployment) else ""),
                deployment),
            **({"storage_containers": _containers(deployment)} if _containers(deployment)
               else {}),
        }

    def warnings(self, deployment: Deployment) -> list[str]:
        out = []
        candidate = deployment.candidate
        wanted = deployment.resources.accelerator
        if wanted and candidate.accelerator and wanted[0] != candidate.accelerator:
            out.append(f"Azure offers no {wanted[0]}; using {candidate.accelerator_count}x "
                       f"{candidate.accelerator} ({candidate.instance_type}) instead.")
        if not premium_storage(candidate.instance_type):
            out.append(f"{candidate.instance_type} has no premium storage; the OS disk is "
                       "StandardSSD_LRS.")
        out.extend(fabric_notes(deployment))
        if self.fabric(deployment) is not None:
            out.append(f"network: InfiniBand: the {deployment.num_nodes} nodes are one VM scale "
                       "set (single placement group, at most 100 nodes) in a proximity "
                       "placement group, on the Ubuntu HPC image; NCCL settings for IB are "
                       "exported to setup/run.")
        return out

    def fabric(self, deployment: Deployment) -> fabrics.Family | None:
        """The InfiniBand family row when the nodes form one scale set, else None."""
        return chosen_fabric(deployment)

    def node_env(self, deployment: Deployment) -> dict[str, str]:
        """NCCL settings for InfiniBand (topology file of the size, relaxed ordering)."""
        fabric = self.fabric(deployment)
        return fabric.env if fabric else {}


# Appended to the boot script of nodes whose task mounts buckets.
def _containers(deployment: Deployment) -> list[dict[str, str]]:
    """The Blob containers of the task's bucket file_mounts, sorted (a stable render)."""
    mounts = getattr(deployment.task, "storage_mounts", [])
    pairs = sorted({(m.ref.account, m.ref.bucket) for m in mounts if m.ref.store == "azure"})
    return [{"account": account, "container": container} for account, container in pairs]


ARM = "https://management.azure.com"


def vm_power(get: Any, vm_ids: dict[int, str]) -> dict[int, str] | None:
    """rank → running/stopped/gone from each VM's instance view (vm_ids: the VMs' ARM
    resource ids; `get(url)` returns a response with status_code and json());
    deallocated and stopped VMs are "stopped"."""
    found: dict[int, str] = {}
    for rank, vm_id in vm_ids.items():
        url = f"{ARM}{vm_id}/instanceView?api-version=2024-07-01"
        try:
            reply = get(url)
        except OSError:
            return None
        if reply.status_code == 404:
            found[rank] = "gone"
            continue
        if reply.status_code != 200:
            return None
        codes = [str(s.get("code", "")) for s in reply.json().get("statuses", [])]
        power = [c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")]
        found[rank] = ("stopped" if power and power[0] in ("deallocated", "deallocating",
                                                           "stopped", "stopping")
                       else "running")
    return found
