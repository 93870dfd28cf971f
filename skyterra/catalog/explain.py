"""Why a request finds no machine, and what the nearest offers are.

A user who asks for L4:16 or for L4 on Azure should learn in one sentence
what exists instead ("largest L4 machines: g6.48xlarge L4:8 ($13.35/h)"),
so the error names the constraint that failed and a few real alternatives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skyterra.catalog import lookup as catalog
from skyterra.catalog.row import CatalogRow
from skyterra.errors import did_you_mean
from skyterra.resources import Resources


def describe_request(resources: Resources, with_location: bool = True) -> str:
    """'L4:4 (cpus 4+, spot) in us-east-1': what was asked, in the user's terms."""
    accelerator = resources.accelerator
    head = f"{accelerator[0]}:{accelerator[1]}" if accelerator else ""
    details = []
    if resources.instance_type:
        details.append(f"instance type {resources.instance_type}")
    if resources.cpus:
        details.append(f"cpus {resources.cpus}")
    if resources.memory:
        details.append(f"memory {resources.memory}")
    if resources.use_spot:
        details.append("spot")
    if not head:
        head, details = (details[0], details[1:]) if details else ("a CPU machine", [])
    text = f"{head} ({', '.join(details)})" if details else head
    place = "/".join(p for p in (resources.region, resources.zone) if p)
    return f"{text} in {place}" if with_location and place else text


def _not_offered(resources: Resources, cloud: str) -> str:
    """'L4:4 (spot) is not offered on aws in eu-west-1'."""
    place = "/".join(p for p in (resources.region, resources.zone) if p)
    where = f" in {place}" if place else ""
    return f"{describe_request(resources, with_location=False)} is not offered on {cloud}{where}"


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _money(value: float | None) -> str:
    return f"${value:,.2f}/h" if value is not None else "no price"


def _offer(row: CatalogRow, detail: bool = False, use_spot: bool = False) -> str:
    gpus = f" {row.gpus}" if row.accelerator_name else ""
    specs = f", {row.vcpus:g} vCPUs, {row.memory_gib:g} GiB" if detail else ""
    return f"{row.instance_type}{gpus}{specs} ({_money(row.price_for(use_spot))})"


def _cheapest_per_type(rows: list[CatalogRow], limit: int, use_spot: bool = False,
                       order: Callable[[CatalogRow], Any] | None = None) -> list[CatalogRow]:
    """One row per (instance type, GPUs) at its cheapest place; cheapest first unless
    `order` ranks them (ties: cheaper first)."""
    best: dict[tuple, CatalogRow] = {}
    for row in rows:
        key = (row.instance_type, row.accelerator_name, row.accelerator_count)
        price = row.price_for(use_spot)
        if price is not None and (key not in best or price < best[key].price_for(use_spot)):
            best[key] = row
    rank = order or (lambda r: 0)
    return sorted(best.values(), key=lambda r: (rank(r), r.price_for(use_spot)))[:limit]


def _listing(rows: list[CatalogRow], limit: int, detail: bool = False, use_spot: bool = False,
             order: Callable[[CatalogRow], Any] | None = None) -> str:
    return ", ".join(_offer(r, detail, use_spot)
                     for r in _cheapest_per_type(rows, limit, use_spot, order))


def _shape_distance(resources: Resources) -> Callable[[CatalogRow], float]:
    """How far a machine is from the asked cpus/memory (relative): nearest first."""
    def distance(row: CatalogRow) -> float:
        total = 0.0
        for spec, value in ((resources.cpus, row.vcpus), (resources.memory, row.memory_gib)):
            if spec:
                bound = float(spec.rstrip("+"))
                total += abs(value - bound) / bound
        return total
    return distance


# AWS's own ML chips: never "the nearest GPU" to a GPU asked for (nor the other way round).
_ML_CHIPS = frozenset({"Inferentia", "Inferentia2", "Trainium", "Trainium2"})


def _other_accelerator(cloud: str, rows: list[CatalogRow], name: str, count: int,
                       limit: int) -> str:
    elsewhere = [c for c in catalog.available_clouds() if c != cloud and any(
        r.accelerator_name == name for r in catalog.rows(c))]
    where = f" ({name} is offered on {', '.join(elsewhere)})" if elsewhere else ""
    gpu_rows = [r for r in rows if r.accelerator_name
                and (r.accelerator_name in _ML_CHIPS) == (name in _ML_CHIPS)]
    same_count = [r for r in gpu_rows if r.accelerator_count == count]
    nearest = same_count or gpu_rows
    kind = "Inferentia/Trainium machines" if name in _ML_CHIPS else "GPU machines"
    label = f"machines with {count} GPUs" if same_count else kind
    if not nearest:
        return f"{name}:{count} is not offered on {cloud}{where}; {cloud} has no {kind}."
    return (f"{name}:{count} is not offered on {cloud}: it has no {name} machines{where}; "
            f"nearest {label} on {cloud}: {_listing(nearest, limit)}.")


def _variant_hint(cloud: str, name: str, count: int, limit: int) -> str:
    """' Did you mean Inferentia2:6 …?': a longer name (a later generation, like SkyPilot's
    fuzzy candidates) with exactly the asked count. SkyPilot keeps Inferentia (inf1) and
    Inferentia2 (inf2) apart, so we suggest rather than substitute."""
    variants = [r for r in catalog.rows(cloud) if r.accelerator_count == count
                and r.accelerator_name and r.accelerator_name != name
                and r.accelerator_name.lower().startswith(name.lower())]
    return f" Did you mean {_listing(variants, limit)}?" if variants else ""


def _other_count(cloud: str, same_name: list[CatalogRow], name: str, count: int,
                 limit: int) -> str:
    return _count_choices(cloud, same_name, name, count, limit) + \
        _variant_hint(cloud, name, count, limit)


def _count_choices(cloud: str, same_name: list[CatalogRow], name: str, count: int,
                   limit: int) -> str:
    counts = sorted({r.accelerator_count for r in same_name})
    if count > counts[-1]:
        largest = [r for r in same_name if r.accelerator_count == counts[-1]]
        return (f"{name}:{count} is not offered on {cloud}; largest {name} machines: "
                f"{_listing(largest, limit)}.")
    nearest = min(counts, key=lambda c: (abs(c - count), -c))
    choices = _or_list([str(c) for c in counts])
    near = [r for r in same_name if r.accelerator_count == nearest]
    return (f"{name}:{count} is not offered on {cloud}; {name} machines there have "
            f"{choices} GPUs: {_listing(near, limit)}.")


def _instance_type(cloud: str, rows: list[CatalogRow], resources: Resources, asked: str
                   ) -> str:
    named = [r for r in rows if r.instance_type == resources.instance_type]
    if not named:
        hint = did_you_mean(resources.instance_type, sorted({r.instance_type for r in rows}))
        return f"{cloud} has no instance type '{resources.instance_type}' in its catalog.{hint}"
    row = _cheapest_per_type(named, 1)[0]
    gpus = row.gpus if row.accelerator_name else "no GPU"
    return (f"{asked}; {row.instance_type} has {gpus}, {row.vcpus:g} vCPUs, "
            f"{row.memory_gib:g} GiB ({_money(row.price)}).")


def _relaxed(cloud: str, resources: Resources, asked: str, limit: int) -> str | None:
    """Drop one constraint at a time; the first that finds machines is the culprit."""
    use_spot = resources.use_spot
    steps = [
        ("place", resources.region or resources.zone,
         resources.copy(region=None, zone=None)),
        ("cpus/memory", resources.cpus or resources.memory,
         resources.copy(cpus=None, memory=None)),
        ("spot", use_spot, resources.copy(use_spot=False)),
    ]
    for label, constrained, relaxed in steps:
        if not constrained:
            continue
        test = catalog.match_test(relaxed)
        found = [r for r in catalog.rows(cloud) if test(r)]
        if not found:
            continue
        if label == "place":
            regions = ", ".join(dict.fromkeys(r.region for r in found))
            return (f"{asked}; it is offered in {regions}: "
                    f"{_listing(found, limit, use_spot=use_spot)}.")
        if label == "cpus/memory":
            accelerator = resources.accelerator
            what = f"{accelerator[0]}:{accelerator[1]}" if accelerator else "CPU"
            nearest = _listing(found, limit, detail=True, use_spot=use_spot,
                               order=_shape_distance(resources))
            return f"{asked}; nearest {what} machines there: {nearest}."
        return (f"{asked}: no spot price is known for it; "
                f"on-demand: {_listing(found, limit)}.")
    return None


def explain(cloud: str, resources: Resources, limit: int = 3) -> str:
    """One or two sentences: why `resources` finds nothing on `cloud`, and the nearest offers."""
    asked = _not_offered(resources, cloud)
    rows = catalog.rows(cloud)
    if not rows:
        return f"{asked} (no catalog for {cloud})."
    accelerator = resources.accelerator
    if accelerator:
        name, count = accelerator
        same_name = [r for r in rows if r.accelerator_name == name]
        if not same_name:
            return _other_accelerator(cloud, rows, name, count, limit)
        if not any(r.accelerator_count == count for r in same_name):
            return _other_count(cloud, same_name, name, count, limit)
    named = [r for r in rows if r.instance_type == resources.instance_type]
    if resources.instance_type and not any(map(catalog.shape_test(resources), named)):
        return _instance_type(cloud, rows, resources, asked)
    return _relaxed(cloud, resources, asked, limit) or (
        f"{asked}; nothing there comes close.")
