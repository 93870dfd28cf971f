"""A running cluster as the executor sees it: nodes with ranks, IPs, SSH access.

Built from Terraform outputs (node_ips head first, ssh_user, …), so it works
the same for clusters skyterra created and for nodes a pipeline created and
handed over (`attach`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from skyterra.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Node:
    rank: int
    ip: str               # the address we SSH to
    private_ip: str       # the address other nodes reach it on (SKYPILOT_NODE_IPS)
    instance_id: str = ""

    @property
    def name(self) -> str:
        return "head" if self.rank == 0 else f"worker{self.rank}"

    @property
    def label(self) -> str:
        """The log prefix SkyPilot users know: (head, rank=0), (worker1, rank=1)."""
        return f"({self.name}, rank={self.rank})"


@dataclasses.dataclass
class Cluster:
    name: str
    nodes: list[Node]
    ssh_user: str
    ssh_key: Path
    ssh_port: int = 22
    known_hosts: Path | None = None
    cloud: str = ""
    region: str | None = None
    zone: str | None = None
    num_gpus_per_node: int = 0
    node_env: dict[str, str] = dataclasses.field(default_factory=dict)
    # Jobs run in this container on every node (container.ContainerSpec.to_record()).
    container: dict[str, Any] | None = None

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def private_ips(self) -> list[str]:
        return [node.private_ip for node in self.nodes]

    def info_json(self) -> str:
        """SKYPILOT_CLUSTER_INFO."""
        return json.dumps({"cluster_name": self.name, "cloud": self.cloud,
                           "region": self.region, "zone": self.zone}, sort_keys=True)

    def node_records(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(node) for node in self.nodes]

    @classmethod
    def from_terraform_outputs(cls, name: str, outputs: dict[str, Any] | str | Path, *,
                               ssh_key: Path | str | None = None, **extra: Any) -> Cluster:
        """From Terraform outputs: a dict (`output -json`, raw or values only), the path
        of a saved `terraform output -json` file, or a Terraform working directory."""
        if isinstance(outputs, (str, Path)):
            outputs = _read_outputs(Path(outputs))
        values = {k: (v["value"] if isinstance(v, dict) and "value" in v else v)
                  for k, v in outputs.items()}
        ips = values.get("node_ips")
        if not isinstance(ips, list) or not ips or not all(isinstance(i, str) for i in ips):
            raise ConfigError("the Terraform outputs have no usable `node_ips` (a list of "
                              "addresses, head first); add that output to the module.")
        private = values.get("node_private_ips") or ips
        ids = values.get("instance_ids") or [""] * len(ips)
        if len(private) != len(ips) or len(ids) != len(ips):
            raise ConfigError("`node_ips`, `node_private_ips` and `instance_ids` outputs have "
                              "different lengths.")
        key = ssh_key or values.get("ssh_private_key_path")
        if not key:
            raise ConfigError("no SSH key: give one, or add an `ssh_private_key_path` output.")
        user = values.get("ssh_user")
        if not isinstance(user, str) or not user:
            raise ConfigError("the Terraform outputs have no `ssh_user`; add that output or "
                              "give the user.")
        nodes = [Node(rank, ip, private[rank] or ip, str(ids[rank]))
                 for rank, ip in enumerate(ips)]
        return cls(name=name, nodes=nodes, ssh_user=user, ssh_key=Path(key).expanduser(),
                   ssh_port=int(values.get("ssh_port") or 22), **extra)

    @classmethod
    def from_record(cls, record: Any, known_hosts: Path | None) -> Cluster:
        nodes = [Node(n["rank"], n["ip"], n.get("private_ip") or n["ip"],
                      n.get("instance_id", "")) for n in record.nodes]
        return cls(name=record.name, nodes=nodes, ssh_user=record.ssh_user,
                   ssh_key=Path(record.ssh_key), ssh_port=record.ssh_port,
                   known_hosts=known_hosts, cloud=record.cloud, region=record.region,
                   zone=record.zone, num_gpus_per_node=record.accelerator_count,
                   node_env=dict(record.node_env),
                   container=dict(getattr(record, "container", None) or {}) or None)


def _read_outputs(path: Path) -> dict[str, Any]:
    """outputs.json, or `terraform output -json` run in a module directory."""
    if path.is_dir():
        from skyterra.terraform import Workspace

        return Workspace(path).outputs()
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read Terraform outputs ({error}); save them with "
                          "`terraform output -json > outputs.json`.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: Terraform outputs are a JSON object of name: value.")
    return data
