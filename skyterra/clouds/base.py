"""What every cloud must say about itself; the rest of skyterra asks only this.

A cloud is the one place that knows a provider's quirks: which template,
which values go into terraform.tfvars.json, which error texts mean "no
capacity", how credentials are found. Everything cloud-specific lives in a
subclass, so the provisioner, renderer and executor never branch on a name.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skyterra.optimizer import Candidate
    from skyterra.resources import Resources
    from skyterra.task import Task


@dataclasses.dataclass
class ClusterSpec:
    """What the provisioner knows about the cluster before Terraform runs."""

    name: str
    directory: Path          # the cluster's own dir (rendered module, state, key)
    num_nodes: int
    public_key: str          # OpenSSH public key text of the cluster key
    private_key_path: Path
    slot: int = 0            # a small integer unique among live clusters (local subnets)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # config/test settings


@dataclasses.dataclass
class CredentialReport:
    cloud: str
    ok: bool
    detail: str              # what was found or what is missing; never a secret
    hint: str = ""           # how to fix it when not ok


class Cloud:
    """Base class. Subclasses set the class attributes and override what differs."""

    name = ""
    template = ""             # folder under templates/
    default_ssh_user = "ubuntu"
    # (kind, regex) pairs, first match wins; kinds: capacity, quota, auth, invalid
    error_patterns: tuple[tuple[str, str], ...] = ()

    def offers(self, resources: Resources, num_nodes: int) -> list[Candidate]:
        """Catalog rows that satisfy `resources`, cheapest first."""
        from skyterra import catalog

        return catalog.offers(self.name, resources, num_nodes)

    node_resource = ""       # Terraform address of the per-node resource (count-indexed)
    needs_ssh_cidrs = True   # SSH ingress is limited to the caller's address(es)

    def node_resource_address(self, rank: int) -> str:
        """`-replace` target for a dead node."""
        return f"{self.node_resource}[{rank}]"

    def check_credentials(self) -> CredentialReport:
        raise NotImplementedError

    def classify_error(self, text: str) -> str:
        for kind, pattern in self.error_patterns:
            if re.search(pattern, text, re.IGNORECASE):
                return kind
        return "other"

    def template_context(self, task: Task, candidate: Candidate,
                         spec: ClusterSpec) -> dict[str, Any]:
        """Structure switches for the Jinja templates (never user values)."""
        return {}

    def tfvars(self, task: Task, candidate: Candidate, spec: ClusterSpec) -> dict[str, Any]:
        """Every value the module needs: written to terraform.tfvars.json."""
        raise NotImplementedError

    def extra_files(self, spec: ClusterSpec) -> dict[str, str]:
        """Extra files for the module dir, e.g. a test-only `*_override.tf`."""
        return {}

    def node_env(self, spec: ClusterSpec) -> dict[str, str]:
        """Extra environment for setup/run on this cloud's nodes."""
        return {}

    def warnings(self, task: Task, candidate: Candidate) -> list[str]:
        return []

    def orphans(self, cluster_dir: Path) -> list[str]:
        """Resources of this cluster that outlived `terraform destroy` (lost state).

        Clouds that cannot look without credentials return []: their resources
        carry the tag skyterra-cluster=<name> for a manual search.
        """
        return []

    def remove_orphans(self, cluster_dir: Path, orphans: list[str]) -> None:
        """Remove what orphans() found."""


def detect_caller_cidrs(timeout: float = 5.0) -> list[str]:
    """The caller's public IPv4 address as a /32: the default SSH ingress of every cloud.

    Asked of checkip.amazonaws.com only when the user configured no addresses
    (`ssh_cidrs:` in the config or SKYTERRA_SSH_CIDRS); never 0.0.0.0/0.
    """
    import ipaddress
    import urllib.request

    from skyterra.errors import ConfigError

    try:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=timeout) as reply:
            text = reply.read(64).decode().strip()
        address = ipaddress.ip_address(text)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"could not find this machine's public IP address ({error}); the cluster's "
            "firewall only lets that address in over SSH. Set the addresses yourself: "
            "ssh_cidrs: [203.0.113.7/32] in ~/.skyterra/config.yaml, or "
            "SKYTERRA_SSH_CIDRS=203.0.113.7/32.") from None
    return [f"{address}/{address.max_prefixlen}"]
