"""The local cloud: N nodes on this machine, each a real sshd on its own 127.x.y.z.

A node can be taken away the way a cloud takes a spot instance, without
skyterra being told (for managed-job tests and demos):
`python -m skyterra.clouds.local preempt CLUSTER NODE_RANK` (or `preempt()`)
runs node-down.sh for that node: its processes are killed, its sshd stops and
its directory is removed; the cluster's record and Terraform state still list it.

It lets the whole pipeline (Terraform, SSH, rsync, torchrun) run with no
cloud account: the default for the examples and the tests. Nodes have no GPU;
a task asking for `L4:4` still gets SKYPILOT_NUM_GPUS_PER_NODE=4 so that its
multi-node logic can be tried with CPU processes.

As root each node is a machine of its own (templates/local/scripts/node-root.sh):
a private mount namespace with a copy-on-write overlay of the host's filesystem,
so installs, /opt, /data, /tmp and /dev/shm are per node and the host is never
changed. Not root, nodes share the host's filesystem outside their HOME, and
`warnings()` says so at launch.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyterra import paths, state
from skyterra.catalog import Candidate
from skyterra.clouds import register
from skyterra.clouds.base import WATCHER_GUARD, Cloud, CloudSettings, CredentialReport

if TYPE_CHECKING:
    from skyterra.deployment import Deployment
    from skyterra.resources import Resources

ZONES = ("local-a", "local-b")
# Test-only: zones that fail with a capacity error, so failover runs for real.
UNAVAILABLE_ZONES_ENV = "SKYTERRA_LOCAL_UNAVAILABLE_ZONES"
BOOT_DELAY_ENV = "SKYTERRA_LOCAL_BOOT_DELAY"   # test-only: slow node boot
# Test-only: simulated GPU faults for the GPU check, "NODE=VALUE ..." with NODE head or
# workerK: another GPU count (SKYTERRA_LOCAL_GPU_COUNTS="worker1=1") or an Xid in the
# node's kernel log (SKYTERRA_LOCAL_GPU_XID="worker1=79"). Read by templates/local/bin/.
GPU_FAULT_ENVS = ("SKYTERRA_LOCAL_GPU_COUNTS", "SKYTERRA_LOCAL_GPU_XID")
SLOTS = 16384
# Node k of a cluster listens on host number k + 2 of the cluster's own /24 (.2 to .254).
MAX_NODES = 253


def subnet_for_slot(slot: int) -> str:
    """Slot n → 127.(100 + n // 256).(n % 256).0/24: one /24 per live cluster."""
    return f"127.{100 + slot // 256}.{slot % 256}.0/24"


def node_ip(slot: int, rank: int) -> str:
    return subnet_for_slot(slot).rsplit(".", 1)[0] + f".{rank + 2}"


def slot_of(ip: str) -> int | None:
    """Inverse of node_ip: 127.(100 + s // 256).(s % 256).x → s (None: not one of ours)."""
    match = re.fullmatch(r"127\.(\d+)\.(\d+)\.\d+", ip)
    if not match or int(match.group(1)) < 100:
        return None
    slot = (int(match.group(1)) - 100) * 256 + int(match.group(2))
    return slot or None


def used_slots() -> set[int]:
    """Slots of the local clusters this skyterra home knows."""
    return {int(r.cloud_options["slot"]) for r in state.list_clusters()
            if r.cloud_options.get("slot")}


def address_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def choose_slot(seed: str, taken: set[int]) -> int:
    """A slot not used by this registry and whose head address is free on the machine.

    Seeded by the cluster dir path so that two skyterra homes (two users, two
    test runs) rarely start probing at the same place.
    """
    import zlib

    start = zlib.crc32(seed.encode()) % (SLOTS - 1) + 1
    for offset in range(SLOTS - 1):
        slot = (start + offset) % (SLOTS - 1) + 1
        if slot not in taken and address_free(node_ip(slot, 0), ssh_port_for(slot)):
            return slot
    raise RuntimeError("no free loopback subnet for a local cluster")


def ssh_port_for(slot: int) -> int:
    """22 as root when free on that address (a system sshd on 0.0.0.0:22 takes it), else 2222."""
    if os.geteuid() == 0 and address_free(node_ip(slot, 0), 22):
        return 22
    return 2222


def master_port_for(slot: int) -> int:
    """A torchrun master port per cluster: TCPStore binds every address, so ports must differ."""
    return 20000 + slot % 20000


@dataclasses.dataclass(frozen=True)
class LocalSettings(CloudSettings):
    """Where a local cluster lives on this machine (chosen by Local.prepare, then kept)."""

    slot: int = 0                 # the cluster's own loopback /24 and torchrun port
    ssh_port: int = 22
    nodes_dir: str = ""
    node_path: str | None = None  # PATH of every node session (default: see node_path())
    local_unavailable_zones: tuple[str, ...] | None = None   # test-only: simulated stockouts
    # podman image stores the nodes use read-only, so an image built here runs without
    # a registry (`podman --root DIR import ...`); `image_id: docker:` on the local cloud.
    container_image_stores: tuple[str, ...] = ()


@register
class Local(Cloud):
    name = "local"
    template = "local"
    node_resource = "terraform_data.node"
    needs_ssh_cidrs = False  # loopback only
    supports_autostop = True
    # A node is a few local processes that spend most of their start waiting for sshd:
    # more at once than Terraform's default 10 (bench/RESULTS.md, 64 and 128 nodes).
    terraform_parallelism = 32
    # The head is this machine: going through it adds a hop and saves the client nothing
    # (bench/RESULTS.md: 128 nodes both ways). SKYTERRA_RELAY_THRESHOLD still forces it.
    relay_threshold = None
    autostop_on_head = False  # the watcher runs on this machine (node-down.sh stops nodes)
    authorized_keys_file = '"$SKYTERRA_NODE_ID/authorized_keys"'  # node-up.sh's sshd_config
    auto_enabled = False     # only when asked for (--cloud local, cloud: local, SKYTERRA_CLOUDS)
    settings_class = LocalSettings
    error_patterns = (("capacity", r"InsufficientInstanceCapacity"),
                      ("invalid", r"Invalid value for variable"))

    @property
    def default_ssh_user(self) -> str:  # type: ignore[override]
        import getpass

        return getpass.getuser()

    def offers(self, resources: Resources, num_nodes: int) -> list[Candidate]:
        if self.unsupported(resources) or num_nodes > MAX_NODES:
            return []
        accel = resources.accelerator
        zones = [resources.zone] if resources.zone else list(ZONES)
        memory = _memory_gib()
        return [Candidate(cloud="local", region="local", zone=zone, instance_type="local",
                          accelerator=accel[0] if accel else None,
                          accelerator_count=accel[1] if accel else 0,
                          vcpus=float(os.cpu_count() or 1), memory_gib=memory, price=0.0,
                          use_spot=resources.use_spot, num_nodes=num_nodes)
                for zone in zones]

    @staticmethod
    def unsupported(resources: Resources) -> list[str]:
        """Fields the local cloud cannot honour (it has one kind of machine, this one)."""
        return [f"{key}: {getattr(resources, key)}" for key in ("region", "instance_type")
                if getattr(resources, key) not in (None, "local")] + (
            [f"zone: {resources.zone}"] if resources.zone not in (None, *ZONES) else [])

    def explain(self, resources: Resources) -> str:
        fields = ", ".join(self.unsupported(resources))
        if fields:
            return (f"the local cloud runs the nodes on this machine: it has no {fields} "
                    f"(zones: {', '.join(ZONES)}). Remove those fields, or choose their cloud.")
        # Local offers every request it can honour, so what is left is the node count.
        return (f"the local cloud runs at most {MAX_NODES} nodes per cluster (each cluster "
                "has one 127.x.y.0/24 of loopback addresses); ask for fewer nodes.")

    def check_credentials(self) -> CredentialReport:
        tools = ["sshd", "ssh", "ssh-keyscan", "ssh-keygen", "rsync"]
        if os.geteuid() == 0:
            tools += ["unshare", "chroot"]  # each node's own filesystem (node-root.sh)
        missing = [tool for tool in tools
                   if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
        if missing:
            return CredentialReport("local", False, f"missing: {', '.join(missing)}",
                                    "Debian: apt-get install openssh-server openssh-client "
                                    "rsync util-linux coreutils (do not start the system ssh "
                                    "service).")
        return CredentialReport("local", True, "sshd, ssh and rsync found")

    def warnings(self, deployment: Deployment) -> list[str]:
        candidate = deployment.candidate
        notes = []
        if candidate.accelerator:
            notes.append(f"the local cloud has no GPU: {candidate.accelerator}:"
                         f"{candidate.accelerator_count} is simulated (SKYPILOT_NUM_GPUS_PER_NODE="
                         f"{candidate.accelerator_count}, CPU processes).")
        if os.geteuid() != 0:
            notes.append("not running as root: the local nodes share this machine's filesystem "
                         "outside their HOME (installs, /tmp, absolute paths such as /data and "
                         "file_mounts targets are the host's and common to all nodes); run as "
                         "root to give each node a copy-on-write filesystem of its own.")
        return notes

    def container_runtime(self, deployment: Deployment) -> dict[str, Any]:
        """podman (Debian's, with runc): each node gets a container store of its own."""
        settings = deployment.settings
        stores = getattr(settings, "container_image_stores", ()) or ()
        if isinstance(stores, str):
            stores = (stores,)
        return {"runtime": "podman", "image_stores": [str(s) for s in stores]}

    def prepare(self, name: str, directory: Path, stored: dict[str, Any]) -> dict[str, Any]:
        """A loopback slot, SSH port and nodes dir for the cluster, chosen once and kept.

        A directory rendered before (a standalone module) keeps its subnet, so
        re-rendering it does not replace applied nodes.
        """
        kept = dict(stored)
        if not kept.get("slot"):
            kept["slot"] = (_rendered_slot(directory)
                            or choose_slot(str(directory), used_slots()))
        kept.setdefault("ssh_port", ssh_port_for(int(kept["slot"])))
        kept.setdefault("nodes_dir", str(directory / "nodes"))
        return kept

    def owns_module(self, module_text: str, directory: Path) -> bool:
        return (directory / "nodes").is_dir() or "terraform_data" in module_text

    def tfvars(self, deployment: Deployment) -> dict[str, Any]:
        settings = deployment.settings
        unavailable = settings.local_unavailable_zones
        if unavailable is None:
            unavailable = [z for z in os.environ.get(UNAVAILABLE_ZONES_ENV, "").split(",") if z]
        return {
            "cluster_name": deployment.name,
            "num_nodes": deployment.num_nodes,
            "subnet_cidr": subnet_for_slot(settings.slot),
            "ssh_port": int(settings.ssh_port),
            "ssh_user": str(settings.ssh_user or self.default_ssh_user),
            "ssh_public_key": deployment.public_key,
            "ssh_private_key_path": str(deployment.private_key_path),
            "nodes_dir": settings.nodes_dir,
            "node_path": str(settings.node_path or node_path()),
            "node_env": self._simulated_gpus(deployment),
            "zone": deployment.candidate.zone or ZONES[0],
            "unavailable_zones": sorted(unavailable),
            "boot_delay_seconds": float(os.environ.get(BOOT_DELAY_ENV, "0") or 0),
            "nodes_running": deployment.nodes_running,
            "relay_public_key": _relay_public_key(deployment),
        }

    @staticmethod
    def _simulated_gpus(deployment: Deployment) -> dict[str, str]:
        """What the simulated nvidia-smi of every node reports (templates/local/bin/)."""
        candidate = deployment.candidate
        if not candidate.accelerator:
            return {}
        env = {"SKYTERRA_LOCAL_GPUS": str(candidate.accelerator_count),
               "SKYTERRA_LOCAL_GPU_MODEL": f"NVIDIA {candidate.accelerator} (simulated)"}
        env.update({name: os.environ[name] for name in GPU_FAULT_ENVS if os.environ.get(name)})
        return env

    def orphans(self, cluster_dir: Path) -> list[str]:
        """Node dirs (with their sshd and jobs) that survive destroy, e.g. a lost tfstate."""
        return [str(path) for path in _node_dirs(cluster_dir)]

    def remove_orphans(self, cluster_dir: Path, orphans: list[str]) -> None:
        script = paths.templates_dir() / "local" / "scripts" / "node-down.sh"
        for node_dir in orphans:
            subprocess.run(["bash", str(script)], check=False, capture_output=True, timeout=60,
                           env={**os.environ, "SKYTERRA_NODE_DIR": node_dir,
                                "SKYTERRA_NODE_NAME": Path(node_dir).name})

    def start_autostop(self, cluster_dir: Path, record: Any, setting: Any) -> None:
        """The watcher runs on this machine (the local nodes' "cloud"), reading the head's
        job files in its home. It carries the head's node marker, so stopping or
        destroying the cluster ends it like every process of the head; when it fires it
        stops (or removes) the nodes with node-down.sh, workers first."""
        from skyterra import autostop

        self.cancel_autostop(cluster_dir, record)
        dirs = [f"{record.cloud_options['nodes_dir']}/{record.name}-{k}"
                for k in range(record.num_nodes)]
        script = paths.templates_dir() / "local" / "scripts" / "node-down.sh"
        stop_nodes = ('for d in "$@"; do SKYTERRA_NODE_KEEP=$KEEP SKYTERRA_NODE_DIR="$d" '
                      f'bash {shlex.quote(str(script))} >/dev/null 2>&1; done')
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYTERRA_NODE")}
        env.update(autostop.watcher_env(setting, jobs_dir=f"{dirs[0]}/home/.skyterra/jobs",
                                        event_file=str(cluster_dir / autostop.EVENT_FILE),
                                        host_pids=True),
                   SKYTERRA_NODE_ID=dirs[0], KEEP="0" if setting.down else "1")
        process = subprocess.Popen(
            ["bash", str(autostop.watcher_path()), "bash", "-c",
             stop_nodes, "stop-nodes", *reversed(dirs)], env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (cluster_dir / "autostop.pid").write_text(f"{process.pid}\n")

    def cancel_autostop(self, cluster_dir: Path, record: Any) -> None:
        import signal

        pid_file = cluster_dir / "autostop.pid"
        try:
            pid = int(pid_file.read_text().strip())
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            return
        if f"SKYTERRA_AUTOSTOP_EVENT={cluster_dir}".encode() in environ:
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        pid_file.unlink(missing_ok=True)

    def node_env(self, deployment: Deployment) -> dict[str, str]:
        return _loopback_env(deployment.settings.slot)

    def host_key_lines(self, deployment: Deployment) -> dict[int, str]:
        """Each node's host key as node-up.sh wrote it (known_hosts_line in the node dir:
        made from the key it generated, once the node's sshd listened on its address) --
        first-hand, unlike a scan. A node without the file is scanned as usual."""
        lines = {}
        for rank in range(deployment.num_nodes):
            path = Path(deployment.settings.nodes_dir) / f"{deployment.name}-{rank}"
            try:
                lines[rank] = (path / "known_hosts_line").read_text().strip()
            except OSError:
                continue
        return lines

    def interruption_watcher(self) -> str | None:
        """Polls the node's stand-in of a metadata service (`notice` writes it) each second."""
        return LOCAL_INTERRUPTION_WATCHER

    def parse_interruption(self, text: str) -> str | None:
        text = text.strip()
        return f"local cloud preemption notice: {text}" if text else None

    def instances_gone(self, cluster_dir: Path, record: Any) -> list[int] | None:
        """A local node is gone when its directory is, or its sshd no longer runs."""
        return [node["rank"] for node in record.nodes
                if not _node_alive(node_dir(record, node["rank"]))]

    def attached_node_env(self, outputs: dict[str, Any]) -> dict[str, str] | None:
        """Loopback node IPs are local nodes; a skyterra subnet also gives the master port."""
        ips = outputs.get("node_ips") or []
        try:
            loopback = bool(ips) and all(ipaddress.ip_address(ip).is_loopback for ip in ips)
        except (TypeError, ValueError):
            return None
        if not loopback:
            return None
        env = _loopback_env(slot_of(ips[0]) or 0)
        if slot_of(ips[0]) is None:  # not a skyterra local subnet: torchrun's default port
            env.pop("SKYTERRA_MASTER_PORT")
        return env


def _loopback_env(slot: int) -> dict[str, str]:
    """Loopback gloo, one thread per process (2 cores), a master port of its own."""
    return {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "SKYTERRA_MASTER_PORT": str(master_port_for(slot))}


def _rendered_slot(directory: Path) -> int | None:
    """The slot of a module rendered into `directory` before (its tfvars' subnet)."""
    try:
        cidr = json.loads((directory / "terraform.tfvars.json").read_text()).get("subnet_cidr")
    except (OSError, ValueError, AttributeError):
        return None
    return slot_of(str(cidr).split("/")[0]) if cidr else None


def node_path() -> str:
    """PATH of every node session: the environment skyterra runs from, then the caller's PATH.

    Nodes run on this machine, so the software the user already has is theirs
    too: with skyterra in a venv (where the `example` extra puts torch), a
    task's `python3` / `torchrun` on a node are that venv's, and a setup step
    like `python3 -c "import torch" || pip install torch` installs nothing. As
    root the venv is seen through the node's overlay: a pip install on a node
    writes to the node's own layer and never changes the host's venv.
    """
    parts = [str(Path(sys.prefix) / "bin"),
             *os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)]
    return os.pathsep.join(dict.fromkeys(part for part in parts if part))


def node_dir(record: Any, rank: int) -> Path:
    """Where node `rank` of a recorded local cluster lives (the module's naming)."""
    nodes = record.cloud_options.get("nodes_dir") or str(
        state.ClusterDir(record.name).path / "nodes")
    return Path(nodes) / f"{record.name}-{int(rank)}"


def _node_alive(directory: Path) -> bool:
    """Its marker exists and the sshd named by its pid file runs with its config."""
    try:
        pid = (directory / "sshd.pid").read_text().strip()
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return (directory / ".skyterra-node").exists() and \
        str(directory / "sshd_config").encode() in cmdline


# A local node's stand-in of a cloud metadata service: a file in the node's directory
# (bind-mounted at its own path inside the node; SKYTERRA_NODE_ID names it there).
NOTICE_FILE = "metadata/preemption-notice"
LOCAL_INTERRUPTION_WATCHER = WATCHER_GUARD + r"""
notice="$SKYTERRA_NODE_ID/""" + NOTICE_FILE + r""""
while :; do
  if [ -s "$notice" ]; then cp "$notice" "$HOME/.skyterra/interruption"; exit 0; fi
  sleep 1
done
"""


def _local_node(cluster_name: str, rank: int) -> Path:
    """The directory of node `rank` of a local cluster, or a clear error."""
    from skyterra.errors import SkyterraError

    record = state.ClusterDir(cluster_name).load()
    if record.cloud != Local.name:
        raise SkyterraError(f"cluster '{cluster_name}' is not a local cluster; only local "
                            "nodes can be preempted by hand.")
    ranks = [node["rank"] for node in record.nodes]
    if int(rank) not in ranks:
        raise SkyterraError(f"cluster '{cluster_name}' has no node of rank {rank} (ranks: "
                            f"{', '.join(map(str, ranks)) or 'none'}).")
    return node_dir(record, int(rank))


def notice(cluster_name: str, rank: int, text: str = "the node will be taken soon") -> Path:
    """Announce a preemption of node `rank` as a cloud's metadata service does, two minutes
    ahead on AWS: the node stays; a managed job's watcher on it reports the notice."""
    path = _local_node(cluster_name, rank) / NOTICE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def preempt(cluster_name: str, rank: int) -> Path:
    """Take node `rank` away as a cloud reclaims a spot instance: kill its processes and
    its sshd, remove its directory, tell skyterra nothing. Returns the node dir."""
    from skyterra.errors import SkyterraError

    directory = _local_node(cluster_name, rank)
    script = paths.templates_dir() / "local" / "scripts" / "node-down.sh"
    result = subprocess.run(["bash", str(script)], check=False, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "SKYTERRA_NODE_DIR": str(directory),
                                 "SKYTERRA_NODE_NAME": directory.name})
    if result.returncode != 0:
        raise SkyterraError(f"could not preempt node {rank} of '{cluster_name}': "
                            f"{result.stderr.strip()}")
    return directory


def main(argv: list[str] | None = None) -> int:
    """`python -m skyterra.clouds.local preempt|notice CLUSTER NODE_RANK`."""
    import argparse

    from skyterra.errors import SkyterraError

    parser = argparse.ArgumentParser(prog="python -m skyterra.clouds.local")
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("preempt", help="make one node vanish as a cloud takes it")
    take.add_argument("cluster")
    take.add_argument("rank", type=int)
    warn = commands.add_parser("notice", help="announce a preemption of one node (it stays)")
    warn.add_argument("cluster")
    warn.add_argument("rank", type=int)
    warn.add_argument("text", nargs="?", default="the node will be taken soon")
    args = parser.parse_args(argv)
    try:
        if args.command == "notice":
            notice(args.cluster, args.rank, args.text)
            print(f"node {args.rank} of {args.cluster} got a preemption notice")
            return 0
        directory = preempt(args.cluster, args.rank)
    except SkyterraError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(f"node {args.rank} of {args.cluster} is gone ({directory} removed)")
    return 0


def _relay_public_key(deployment: Deployment) -> str:
    """The cluster's relay key (made next to the cluster's key), so that workers trust it
    from birth and the first command through the head needs no round of authorizing.
    None for a module rendered without a real key directory (golden copies, tests)."""
    from skyterra import relay

    ssh_dir = deployment.private_key_path.parent
    if not ssh_dir.is_dir():
        return ""
    return relay.ensure_key(ssh_dir, f"skyterra-relay-{deployment.name}")[0]


def _node_dirs(cluster_dir: Path) -> list[Path]:
    nodes = cluster_dir / "nodes"
    if not nodes.is_dir():
        return []
    return sorted(p for p in nodes.iterdir() if (p / ".skyterra-node").exists())


def _memory_gib() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return round(pages / 2**30, 1)
    except (ValueError, OSError):
        return 0.0


if __name__ == "__main__":
    import importlib

    # Run the registered module's main (not this __main__ copy of the module).
    sys.exit(importlib.import_module("skyterra.clouds.local").main())
