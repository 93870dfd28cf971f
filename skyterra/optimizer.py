"""Task resources → ranked candidates (cloud, region, zone, instance type, $/hour).

The provisioner's failover walks the returned list in order, so the order is
the policy: an ordered list of choices (`accelerators: [H100:8, A100:8]`,
`resources.ordered`) keeps the user's preference and is cheapest-first only
within each choice; a set (`{A100: 8, H100: 8}`, `resources.any_of`) is ranked
by price alone. Offers come from each cloud (`Cloud.offers`, the catalog by
default), so a cloud such as `local` can answer for itself.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from skyterra import catalog
from skyterra.catalog import Candidate
from skyterra.catalog import fabric as fabrics
from skyterra.errors import TaskError
from skyterra.resources import ACCELERATORS, Resources

if TYPE_CHECKING:
    from skyterra.task import Task


class Offerer(Protocol):
    """What the optimizer needs of a cloud (skyterra.clouds.base.Cloud is one): its name,
    its offers and why it has none. Clouds are handed in, so the optimizer imports none."""

    name: str

    def offers(self, resources: Resources, num_nodes: int) -> list[Candidate]: ...

    def explain(self, resources: Resources) -> str: ...

__all__ = [
    "CANDIDATE_COLUMNS",
    "SHOW_GPUS_COLUMNS",
    "SHOW_GPUS_SUMMARY_COLUMNS",
    "Candidate",
    "format_candidates_table",
    "optimize",
    "show_gpus_rows",
]

CANDIDATE_COLUMNS = ["cloud", "region", "instance type", "GPUs", "vCPUs", "memory", "$/h",
                     "nodes x $/h", "fabric"]
SHOW_GPUS_SUMMARY_COLUMNS = ["GPU", "counts", "clouds", "from $/h"]
SHOW_GPUS_COLUMNS = ["GPU", "qty", "cloud", "instance type", "GPU mem", "vCPUs", "memory",
                     "$/h", "spot $/h", "region"]


def _clouds_for(resources: Resources, clouds: list[Offerer]) -> list[Offerer]:
    """A choice that names a cloud is tried there only (if that cloud is enabled)."""
    if resources.cloud:
        return [c for c in clouds if c.name == resources.cloud]
    return list(clouds)


def _offers(resources: Resources, clouds: list[Offerer], num_nodes: int) -> list[Candidate]:
    """Every cloud's offers for one choice, cheapest first (ties: cloud order, then catalog)."""
    found: list[Candidate] = []
    for cloud in _clouds_for(resources, clouds):
        for candidate in cloud.offers(resources, num_nodes):
            if candidate.num_nodes != num_nodes or candidate.resources is None:
                candidate = dataclasses.replace(candidate, num_nodes=num_nodes,
                                                resources=resources)
            found.append(candidate)
    return sorted(found, key=lambda c: c.price)


def _within_budget(resources: Resources, offers: list[Candidate]) -> list[Candidate]:
    """`max_hourly_cost` (SkyPilot: $/h of one node of these resources) drops dearer offers;
    a budget that leaves nothing is refused with the cheapest price that would fit."""
    limit = resources.max_hourly_cost
    if limit is None or not offers:
        return offers
    kept = [c for c in offers if c.price <= limit]
    if not kept:
        cheapest = min(offers, key=lambda c: c.price)
        raise TaskError(f"max_hourly_cost is ${limit:.2f}/h per node, but the cheapest machine "
                        f"for {catalog.describe_request(resources)} costs "
                        f"${cheapest.price:.2f}/h ({cheapest.describe()}). Raise the limit "
                        "or ask for smaller resources.", field="resources.max_hourly_cost")
    return kept


def _dedupe(candidates: list[Candidate]) -> list[Candidate]:
    """The same machine at the same place once, at its first (best-ranked) position."""
    seen: set[tuple] = set()
    unique = []
    for c in candidates:
        key = (c.cloud, c.region, c.zone, c.instance_type, c.accelerator, c.accelerator_count,
               c.use_spot)
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def _no_offers_message(task: Task, clouds: list[Offerer]) -> str:
    reasons = []
    names = ", ".join(c.name for c in clouds)
    for resources in task.resources:
        targets = _clouds_for(resources, clouds)
        if not targets:
            reasons.append(f"{catalog.describe_request(resources)} asks for cloud "
                           f"'{resources.cloud}', which is not enabled here (enabled: "
                           f"{names}); pass --cloud {resources.cloud} or set up "
                           "its credentials.")
        reasons.extend(cloud.explain(resources) for cloud in targets)
    nodes = f" for {task.num_nodes} nodes" if task.num_nodes > 1 else ""
    return f"no machine on {names} matches the task's resources{nodes}. " + " ".join(reasons)


def optimize(task: Task, clouds: list[Offerer]) -> list[Candidate]:
    """Ranked candidates for `task` on the given (enabled) clouds, best first.

    Raises TaskError naming what was asked and the nearest offers when no
    cloud can run the task.
    """
    if not clouds:
        raise TaskError("no cloud is enabled: run `skyterra check` to see which credentials "
                        "are missing, or pass --cloud.", source=task.source)
    per_choice = [_within_budget(r, _offers(r, clouds, task.num_nodes))
                  for r in task.resources]
    if task.resources_ordered:
        ranked = [c for choice in per_choice for c in choice]
    else:
        ranked = sorted((c for choice in per_choice for c in choice), key=lambda c: c.price)
    ranked = _dedupe(ranked)
    if not ranked:
        raise TaskError(_no_offers_message(task, clouds), source=task.source,
                        field="resources")
    return ranked


# --- tables for the CLI (plain strings; the CLI prints them with rich) ------------------
def _money(value: float | None) -> str:
    return f"{value:,.2f}" if value is not None else "-"


def _number(value: float) -> str:
    return f"{value:g}"


def _location(region: str, zone: str | None) -> str:
    """GCP zones contain their region ('us-central1-a'); others ('1') need it spelled out."""
    if not zone:
        return region
    return zone if zone.startswith(region) else f"{region}/{zone}"


def _fabric(c: Candidate) -> str:
    """The inter-node fabric this candidate gets (EFA x32, InfiniBand, no EFA, -)."""
    tier = getattr(c.resources, "network_tier", None)
    return fabrics.describe(c.cloud, c.instance_type, tier, c.num_nodes,
                                   bool(c.accelerator))


def format_candidates_table(candidates: list[Candidate], limit: int | None = 5
                            ) -> tuple[list[str], list[list[str]]]:
    """(CANDIDATE_COLUMNS, rows) for the first `limit` candidates (all when None).

    The first row is the choice; the rest are the failover alternatives.
    """
    shown = candidates if limit is None else candidates[:limit]
    rows = []
    for c in shown:
        spot = " (spot)" if c.use_spot else ""
        rows.append([c.cloud, _location(c.region, c.zone), c.instance_type, c.gpus,
                     _number(c.vcpus), f"{_number(c.memory_gib)} GiB", _money(c.price) + spot,
                     f"{c.num_nodes} x {_money(c.price)} = {_money(c.cluster_price)}",
                     _fabric(c)])
    return list(CANDIDATE_COLUMNS), rows


def _summary_rows(rows: list[catalog.CatalogRow]) -> list[list[str]]:
    """One line per accelerator: the counts it comes in, where, and the lowest $/h."""
    table = []
    for name in ACCELERATORS:
        mine = [r for r in rows if r.accelerator_name == name]
        if not mine:
            continue
        counts = ", ".join(str(n) for n in sorted({r.accelerator_count for r in mine}))
        clouds = ", ".join(dict.fromkeys(sorted(r.cloud for r in mine)))
        table.append([name, counts, clouds, _money(min(r.price for r in mine))])
    return table


def _detail_rows(rows: list[catalog.CatalogRow]) -> list[list[str]]:
    """One line per (cloud, instance type, count): $/h and region of its cheapest place,
    and the lowest spot price anywhere."""
    best: dict[tuple, catalog.CatalogRow] = {}
    spot: dict[tuple, float] = {}
    for r in rows:
        key = (r.cloud, r.instance_type, r.accelerator_name, r.accelerator_count)
        if key not in best or r.price < best[key].price:
            best[key] = r
        if r.spot_price is not None:
            spot[key] = min(spot.get(key, r.spot_price), r.spot_price)
    order = sorted(best.values(), key=lambda r: (r.accelerator_name or "", r.accelerator_count,
                                                 r.price, r.cloud))
    return [[r.accelerator_name or "", str(r.accelerator_count), r.cloud, r.instance_type,
             f"{_number(r.accelerator_memory_gib)} GiB", _number(r.vcpus),
             f"{_number(r.memory_gib)} GiB", _money(r.price),
             _money(spot.get((r.cloud, r.instance_type, r.accelerator_name,
                              r.accelerator_count))),
             _location(r.region, r.zone)] for r in order]


def show_gpus_rows(accelerator: str | None = None, cloud: str | None = None,
                   region: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Rows for `skyterra show-gpus [ACCELERATOR] [--cloud C] [--region R]`.

    Without an accelerator: one line per GPU (SHOW_GPUS_SUMMARY_COLUMNS). With
    one: every instance type carrying it, per cloud, priced at its cheapest region,
    with the lowest spot price anywhere (SHOW_GPUS_COLUMNS). Unknown accelerator names raise TaskError with a hint.
    """
    rows = catalog.accelerators(accelerator, cloud=cloud, region=region)
    if accelerator is None:
        return list(SHOW_GPUS_SUMMARY_COLUMNS), _summary_rows(rows)
    return list(SHOW_GPUS_COLUMNS), _detail_rows(rows)
