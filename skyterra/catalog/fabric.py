"""Fast inter-node fabrics per instance-type family: EFA, GPUDirect-TCPX/O, InfiniBand.

Which family gets which fabric (and how many interfaces, whether it takes a
compact placement policy, which image kind it needs) is data:
fabrics/families.csv, first matching glob wins; the NCCL/libfabric environment
of each fabric is fabrics/env.csv. The clouds read `family()`, and `choose()`
decides from the task's `network_tier` whether a cluster uses the fabric:

- `standard`: never;
- `best`: whenever the family has one (a clear no-op with a note otherwise);
- not set: for multi-node GPU clusters on a family that has one.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import functools
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("fabrics")
# How the dry run names each fabric.
LABELS = {
    "efa": "EFA",
    "gpudirect-tcpx": "GPUDirect-TCPX",
    "gpudirect-tcpxo": "GPUDirect-TCPXO",
    "infiniband": "InfiniBand",
    "infiniband-ndv4": "InfiniBand",
    "infiniband-ndv5": "InfiniBand",
}


# What the dry run says of a GPU family without a fast fabric, per cloud.
NONE_LABELS = {"aws": "no EFA", "gcp": "no GPUDirect", "azure": "no InfiniBand"}


@dataclasses.dataclass(frozen=True)
class Family:
    """What one instance-type family offers (a row of families.csv)."""

    cloud: str
    pattern: str
    fabric: str = ""          # "" = no fast fabric
    interfaces: int = 0       # EFA interfaces (aws) / extra GPU NICs (gcp) per node
    placement: bool = True    # takes a compact / cluster placement policy
    image: str = ""           # default image kind (azure: hpc | gpu)
    note: str = ""            # why a family that looks fast has no fabric here

    @property
    def label(self) -> str:
        if not self.fabric:
            return ""
        name = LABELS.get(self.fabric, self.fabric)
        return f"{name} x{self.interfaces}" if self.interfaces else name

    @property
    def env(self) -> dict[str, str]:
        """NCCL / libfabric environment of this family's fabric ({} without one)."""
        return dict(_env().get(self.fabric, {}))


def family(cloud: str, instance_type: str) -> Family:
    """The first families.csv row of `cloud` whose glob matches (case-insensitive)."""
    name = instance_type.lower()
    for row in _families():
        if row.cloud == cloud and fnmatch.fnmatchcase(name, row.pattern.lower()):
            return row
    return Family(cloud, "*")


def choose(cloud: str, instance_type: str, network_tier: str | None, num_nodes: int,
           has_gpu: bool) -> Family | None:
    """The family when this cluster uses its fast fabric, else None."""
    row = family(cloud, instance_type)
    if not row.fabric or network_tier == "standard":
        return None
    if network_tier == "best" or (num_nodes > 1 and has_gpu):
        return row
    return None


def describe(cloud: str, instance_type: str, network_tier: str | None, num_nodes: int,
             has_gpu: bool) -> str:
    """One short phrase for the dry run's FABRIC column: what this candidate gets."""
    row = family(cloud, instance_type)
    chosen = choose(cloud, instance_type, network_tier, num_nodes, has_gpu)
    if chosen is not None:
        return chosen.label
    if not row.fabric:
        return NONE_LABELS.get(cloud, "-") if has_gpu else "-"
    return f"{row.label} off" if network_tier == "standard" else "-"


def best_is_noop_note(cloud: str, instance_type: str, network_tier: str | None) -> str | None:
    """The dry-run note when `network_tier: best` asks for a fabric the family lacks."""
    row = family(cloud, instance_type)
    if network_tier != "best" or row.fabric:
        return None
    why = f"; {row.note}" if row.note else ""
    none = NONE_LABELS.get(cloud, "no fast fabric")
    return (f"network_tier: best has no effect on {instance_type} ({none}: the family has no "
            f"fast inter-node fabric skyterra configures{why}); nodes talk over the standard "
            "network.")


def chosen_fabric(deployment: Any) -> Family | None:
    """`choose` for a Deployment (skyterra/deployment.py): its candidate, tier and size."""
    candidate = deployment.candidate
    return choose(candidate.cloud, candidate.instance_type, deployment.resources.network_tier,
                  deployment.num_nodes, bool(candidate.accelerator))


def fabric_notes(deployment: Any) -> list[str]:
    """Dry-run notes every cloud shares: `best` that cannot be honoured."""
    candidate = deployment.candidate
    note = best_is_noop_note(candidate.cloud, candidate.instance_type,
                             deployment.resources.network_tier)
    return [note] if note else []


@functools.cache
def _families() -> tuple[Family, ...]:
    out = []
    for row in _read(DATA_DIR / "families.csv"):
        out.append(Family(cloud=row["cloud"], pattern=row["pattern"], fabric=row["fabric"],
                          interfaces=int(row["interfaces"] or 0),
                          placement=row["placement"] != "no", image=row["image"],
                          note=row["note"]))
    return tuple(out)


@functools.cache
def _env() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row in _read(DATA_DIR / "env.csv"):
        out.setdefault(row["fabric"], {})[row["key"]] = row["value"]
    return out


def _read(path: Path) -> list[dict[str, str]]:
    """CSV rows without the leading '#' comment lines."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(lines)]
