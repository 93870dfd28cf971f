"""Task resources → ranked candidates (cloud, region, zone, instance type, $/hour).

The provisioner's failover walks the returned list in order.
"""

from __future__ import annotations

import dataclasses

from skyterra.errors import TaskError


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One concrete way to run the task: every node gets this instance type in this zone."""

    cloud: str
    region: str
    zone: str | None
    instance_type: str
    accelerator: str | None
    accelerator_count: int
    vcpus: float
    memory_gib: float
    price: float  # $/hour for one node (the spot price when use_spot)
    use_spot: bool = False
    num_nodes: int = 1

    @property
    def cluster_price(self) -> float:
        return self.price * self.num_nodes

    @property
    def where(self) -> str:
        return "/".join(p for p in (self.cloud, self.region, self.zone) if p)

    def describe(self) -> str:
        gpus = f"{self.accelerator}:{self.accelerator_count}" if self.accelerator else "no GPU"
        spot = " spot" if self.use_spot else ""
        return f"{self.where} {self.instance_type} ({gpus}){spot}"


def optimize(task, clouds: list[str]) -> list[Candidate]:
    """Ranked candidates for `task` on the given clouds (placeholder: local cloud only)."""
    from skyterra.clouds import get_cloud

    candidates: list[Candidate] = []
    for resources in task.resources:
        for name in clouds:
            candidates.extend(get_cloud(name).offers(resources, task.num_nodes))
    if not candidates:
        raise TaskError(f"no cloud among {', '.join(clouds)} offers {task.resources[0]}.")
    return candidates
