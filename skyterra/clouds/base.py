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
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from skyterra.catalog import Candidate
    from skyterra.deployment import Deployment
    from skyterra.resources import Resources


# Key of a cluster's stored values (ClusterRecord.cloud_options) that says whether its
# nodes should run; present once the cluster was first stopped (power.py).
STORED_NODES_RUNNING = "nodes_running"


@dataclasses.dataclass
class CredentialReport:
    cloud: str
    ok: bool
    detail: str              # what was found or what is missing; never a secret
    hint: str = ""           # how to fix it when not ok


@dataclasses.dataclass(frozen=True)
class CloudSettings:
    """Settings every cloud reads from the skyterra config's `provision:` section.

    Each cloud subclasses this with its own typed fields; a field's name is the
    config key. Values are read once, when the Deployment is built.
    """

    ssh_user: str | None = None          # login user of a custom image
    port_cidrs: tuple[str, ...] | None = None   # who may reach resources.ports (None: SSH's)

    @classmethod
    def from_config(cls, provision: dict[str, Any], stored: dict[str, Any]) -> CloudSettings:
        """The fields this class knows, from `provision:` and the cluster's stored values
        (stored wins: they keep an existing cluster's module unchanged)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in {**provision, **stored}.items() if k in known}
        if isinstance(values.get("port_cidrs"), (list, tuple)):
            values["port_cidrs"] = tuple(str(c) for c in values["port_cidrs"])
        return cls(**values)


class Cloud:
    """Base class. Subclasses set the class attributes and override what differs.

    Every rendering hook takes the Deployment (skyterra/deployment.py): the
    task, the chosen candidate and its Resources, this cloud's typed settings
    and the cluster's identity, decided once before anything is rendered.
    """

    name = ""
    template = ""             # folder under templates/
    default_ssh_user = "ubuntu"
    provider_source = ""      # "hashicorp/aws": how a module of this cloud is recognised
    auto_enabled = True       # considered when a task names no cloud (local: only if asked)
    settings_class: type[CloudSettings] = CloudSettings
    # (kind, regex) pairs, first match wins; kinds: capacity, quota, auth, invalid
    error_patterns: tuple[tuple[str, str], ...] = ()
    node_resource = ""       # Terraform address of the per-node resource (count-indexed)
    needs_ssh_cidrs = True   # SSH ingress is limited to the caller's address(es)
    supports_autostop = False  # start_autostop works here (a task with autostop goes only here)
    terraform_parallelism: int | None = None  # apply/destroy -parallelism; None: Terraform's 10
    # Commands to clusters of more nodes go through the head (executor.relay_threshold)
    relay_threshold: int | None = 32
    # The module has a part for autostop (shutdown behaviour, the nodes' identity and its
    # role): `skyterra autostop` re-applies it when the setting changes.
    autostop_in_module = False
    autostop_on_head = True    # the watcher runs on the head node (local: on this machine)
    # Where sshd on a node reads authorized keys (a shell word; the autostop key goes there).
    authorized_keys_file = '"$HOME/.ssh/authorized_keys"'
    # Keys of a SkyPilot task's `config.<this cloud>:` section that only tune how SkyPilot
    # itself provisions (or what skyterra already does on its own): accepted with a warning
    # saying why. Any other key of the section is refused (spec.config_warnings).
    task_config_ignored: ClassVar[dict[str, str]] = {}
    # The label (tag) keys this cloud takes, as (regex for fullmatch, what to tell the
    # user); None: the rule every cloud shares (resources.parse_labels), as for a task
    # that names no cloud. The module's variable validation checks the same.
    label_key: ClassVar[tuple[str, str] | None] = None

    def offers(self, resources: Resources, num_nodes: int) -> list[Candidate]:
        """Catalog rows that satisfy `resources`, cheapest first."""
        from skyterra import catalog

        return catalog.offers(self.name, resources, num_nodes)

    def explain(self, resources: Resources) -> str:
        """Why no offer matches `resources`: what was asked and the nearest offers."""
        from skyterra import catalog

        return catalog.explain(self.name, resources)

    def prepare(self, name: str, directory: Path, stored: dict[str, Any]) -> dict[str, Any]:
        """Values this cloud must keep stable for a cluster (stored in its record and
        given back on every later render); `stored` holds those of an earlier call."""
        return dict(stored)

    def settings(self, config: dict[str, Any], stored: dict[str, Any]) -> CloudSettings:
        """Typed settings from the skyterra config mapping (its `provision:` section)."""
        return self.settings_class.from_config(dict(config.get("provision") or {}), stored)

    def node_resource_address(self, rank: int) -> str:
        """`-replace` target for a dead node."""
        return f"{self.node_resource}[{rank}]"

    def check_credentials(self) -> CredentialReport:
        raise NotImplementedError

    def has_local_credentials(self) -> bool:
        """Does this machine hold credentials for the cloud (environment, config files)?

        What a dry run picks clouds by: it must make no network call, and an SDK's full
        lookup may ask the instance metadata service (169.254.169.254) when nothing else
        is found -- and costs the SDK's import. A launch asks `check_credentials`."""
        return self.check_credentials().ok

    def classify_error(self, text: str) -> str:
        for kind, pattern in self.error_patterns:
            if re.search(pattern, text, re.IGNORECASE):
                return kind
        return "other"

    def owns_module(self, module_text: str, directory: Path) -> bool:
        """Is this rendered module (its .tf text) one of this cloud's? (cluster.json lost)"""
        return bool(self.provider_source) and self.provider_source in module_text

    def template_context(self, deployment: Deployment) -> dict[str, Any]:
        """Structure switches for the Jinja templates (never user values)."""
        return {}

    def tfvars(self, deployment: Deployment) -> dict[str, Any]:
        """Every value the module needs: written to terraform.tfvars.json."""
        raise NotImplementedError

    def check_stoppable(self, record: Any) -> None:
        """Raise a SkyterraError if this cluster's nodes cannot be stopped (kept, not paid)."""

    def start_autostop(self, cluster_dir: Path, record: Any, setting: Any) -> None:
        """Install the idle watcher for `setting` on the cluster's head node (over SSH,
        skyterra/idle_watcher.py); when it fires every node runs autostop_node_action."""
        from skyterra.errors import NotSupportedError

        if not self.supports_autostop:
            raise NotSupportedError(f"autostop is not available on {self.name} yet: stop or "
                                    "destroy the cluster yourself (`skyterra stop NAME`).",
                                    field="resources.autostop")
        from skyterra import idle_watcher

        idle_watcher.install(_recorded_cluster(record), setting,
                             node_action=self.autostop_node_action(),
                             authorized_keys=self.authorized_keys_file)

    def cancel_autostop(self, cluster_dir: Path, record: Any) -> None:
        """Remove the idle watcher again (nothing happens when there is none).

        Best effort: a node that does not answer (being destroyed, already
        stopped) keeps nothing that matters, the watcher dies with it."""
        from skyterra import state
        from skyterra.errors import SkyterraError

        if not (self.supports_autostop and record.autostop and record.nodes
                and record.status == state.STATUS_UP):
            return
        from skyterra import idle_watcher

        try:
            idle_watcher.remove(_recorded_cluster(record),
                                authorized_keys=self.authorized_keys_file)
        except (SkyterraError, OSError, TimeoutError):
            pass

    def autostop_node_action(self) -> str:
        """The bash script with which a node of this cloud stops (SKYTERRA_AUTOSTOP_ACTION
        stop) or removes (down) itself: templates/autostop/<cloud>-node.sh."""
        from skyterra import paths

        return (paths.templates_dir() / "autostop" / f"{self.template}-node.sh").read_text()

    def node_power(self, cluster_dir: Path, record: Any) -> dict[int, str] | None:
        """What the cloud says of each node: rank → "running", "stopped" or "gone"
        (terminated, deleted); None when it cannot tell from here. `skyterra status`
        reconciles a cluster whose watcher stopped or removed it by itself."""
        return None

    def root_files(self, deployment: Deployment) -> dict[str, str]:
        """Extra files for a root module only (never a child module): e.g. a provider
        override that points at an emulator."""
        return {}

    def node_env(self, deployment: Deployment) -> dict[str, str]:
        """Extra environment for setup/run on this cloud's nodes."""
        return {}

    def attached_node_env(self, outputs: dict[str, Any]) -> dict[str, str] | None:
        """For nodes a pipeline made (`skyterra attach`): the node environment when the
        outputs are this cloud's, else None."""
        return None

    def warnings(self, deployment: Deployment) -> list[str]:
        return []

    def host_key_lines(self, deployment: Deployment) -> dict[int, str]:
        """known_hosts lines of the nodes (by rank) that this cloud knows first-hand, so
        that launch pins them without an ssh-keyscan per node (a key exchange each).
        Default: none known; every node is scanned (trust on first use)."""
        return {}

    def container_runtime(self, deployment: Deployment) -> dict[str, Any]:
        """How this cloud's nodes run a task's container (`image_id: docker:...`):
        {"runtime": "docker" | "podman", "image_stores": [...]} (skyterra/container.py).
        The boot script of a cloud installs the runtime when the image lacks it."""
        return {"runtime": "docker"}

    def orphans(self, cluster_dir: Path) -> list[str]:
        """Resources of this cluster that outlived `terraform destroy` (lost state).

        Clouds that cannot look without credentials return []: their resources
        carry the tag skyterra-cluster=<name> for a manual search.
        """
        return []

    def remove_orphans(self, cluster_dir: Path, orphans: list[str]) -> None:
        """Remove what orphans() found."""

    # --- managed jobs: telling a lost node from a failing program ---------------------
    def instances_gone(self, cluster_dir: Path, record: Any) -> list[int] | None:
        """Ranks of the cluster's nodes that the cloud says no longer exist (preempted,
        terminated), or None when this cloud cannot tell from here: a managed job then
        counts a node as lost once it stopped answering for a grace period."""
        return None

    def interruption_watcher(self) -> str | None:
        """A bash script started on each node with a managed job: it polls the cloud's
        metadata service for a spot interruption notice and writes what it finds to
        ~/.skyterra/interruption (None: this cloud has no such notice)."""
        return None

    def parse_interruption(self, text: str) -> str | None:
        """A readable notice from what interruption_watcher wrote, or None if none."""
        return None

    def controller_credentials(self) -> dict[str, str]:
        """Credentials (environment variables of this process) that a managed-job controller
        on a VM of its own needs to launch on this cloud; handed over as task secrets (never
        printed), as SkyPilot hands its jobs controller the user's credentials. {}: none
        here (the controller VM then needs its own, e.g. an instance role)."""
        return {}


# The first lines of every interruption watcher: one watcher per node (a recovery that
# keeps a node starts the watcher again; the one already there goes on alone).
WATCHER_GUARD = r"""
mkdir -p "$HOME/.skyterra"
pidfile="$HOME/.skyterra/interruption-watch.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then exit 0; fi
echo $$ > "$pidfile"
"""


def _recorded_cluster(record: Any) -> Any:
    from skyterra import state
    from skyterra.cluster import Cluster

    return Cluster.from_record(record, state.ClusterDir(record.name).known_hosts_path)


def cidr_list(value: Any, name: str) -> list[str]:
    """Addresses or CIDR blocks (a string or a list) → normalised, de-duplicated CIDRs."""
    import ipaddress

    from skyterra.errors import ConfigError

    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an address or CIDR block like "
                              "203.0.113.7/32.") from None
    return sorted(set(out), key=out.index)


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
