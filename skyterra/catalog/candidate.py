"""A Candidate: one concrete way to run a task (cloud, place, machine, price).

It lives with the catalog, not the optimizer, because the catalog is what
produces candidates and imports point down the data flow (catalog ← optimizer);
`skyterra.optimizer.Candidate` is the same class.
"""

from __future__ import annotations

import dataclasses
from typing import Any


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
    accelerator_memory_gib: float = 0.0   # per GPU
    # The task's Resources choice this candidate satisfies: the renderer reads
    # disk_size, image_id, ports, labels from it. Not part of equality.
    resources: Any = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def cluster_price(self) -> float:
        return self.price * self.num_nodes

    @property
    def where(self) -> str:
        return "/".join(p for p in (self.cloud, self.region, self.zone) if p)

    @property
    def gpus(self) -> str:
        """'L4:4', or '-' for a CPU-only machine (what tables show)."""
        return f"{self.accelerator}:{self.accelerator_count}" if self.accelerator else "-"

    def describe(self) -> str:
        gpus = f"{self.accelerator}:{self.accelerator_count}" if self.accelerator else "no GPU"
        spot = " spot" if self.use_spot else ""
        return f"{self.where} {self.instance_type} ({gpus}){spot}"
