"""Reading the catalogs and matching their rows against a task's Resources.

See the package docstring (skyterra/catalog/__init__.py) for which files are read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from skyterra.catalog.candidate import Candidate
from skyterra.catalog.row import CatalogRow, header_comment, read_csv
from skyterra.paths import home
from skyterra.resources import Resources, canonical_accelerator, cpus_memory_bounds

SHIPPED_DIR = Path(__file__).resolve().parent
# A task that names no accelerator, instance type or cpus gets a machine with at
# least this many vCPUs (SkyPilot's habit: a 2-vCPU box is rarely what anyone wants).
DEFAULT_CPUS = "4+"
# A CPU-only task that names no memory gets at least this many GiB per vCPU where a cloud
# has such a machine, as SkyPilot does (its catalogs' _DEFAULT_MEMORY_CPU_RATIO, "4x"): a
# plain `cpus: 8` lands on a general-purpose machine, not on a 1-GiB-per-vCPU high-CPU one
# that happens to be cheaper. A cloud with no such machine (`cpus: 1` on GCP: n1-standard-1
# has 3.75 GiB) offers the ones without the default.
DEFAULT_MEMORY_PER_CPU = 4.0
_cache: dict[Path, list[CatalogRow]] = {}


def _directories() -> list[Path]:
    pinned = os.environ.get("SKYTERRA_CATALOG_DIR")
    if pinned:
        return [Path(pinned).expanduser()]
    return [home() / "catalog", SHIPPED_DIR]


def catalog_path(cloud: str) -> Path | None:
    """The CSV file used for `cloud`, or None when no catalog knows that cloud."""
    for directory in _directories():
        path = directory / f"{cloud}.csv"
        if path.is_file():
            return path
    return None


def available_clouds() -> list[str]:
    """Clouds that have a catalog (sorted), e.g. for `show-gpus` over every cloud."""
    names = {p.stem for d in _directories() if d.is_dir() for p in d.glob("*.csv")}
    return sorted(names)


def rows(cloud: str) -> list[CatalogRow]:
    """All rows of a cloud's catalog (cached; [] when there is none)."""
    path = catalog_path(cloud)
    if path is None:
        return []
    if path not in _cache:
        _cache[path] = read_csv(path, cloud)
    return _cache[path]


def clear_cache() -> None:
    """Forget loaded files (tests switch catalog dirs; refresh rewrites them)."""
    _cache.clear()


def source(cloud: str) -> str:
    """Where the cloud's prices come from and when: the file's header comment."""
    path = catalog_path(cloud)
    return header_comment(path) if path else ""


# --- matching -------------------------------------------------------------------------
# A dry run over every cloud tests thousands of rows against one Resources, so the tests
# are built once per Resources (its accelerator, cpus and memory bounds parsed once) and
# then applied row by row.
RowTest = Callable[[CatalogRow], bool]


def _bound_test(spec: str | None, value: Callable[[CatalogRow], float]) -> RowTest | None:
    if spec is None:
        return None
    bound, at_least = cpus_memory_bounds(spec)
    if at_least:
        return lambda row: value(row) >= bound
    return lambda row: abs(value(row) - bound) < 1e-9


def zone_in_region(zone: str, region: str) -> bool:
    """Does a zone name belong to a region? 'us-east-1a' ∈ 'us-east-1', 'us-central1-b' ∈
    'us-central1'; bare numbers ('1', '2') are zones inside any region."""
    return zone.isdigit() or re.fullmatch(re.escape(region) + r"-?[a-z]", zone) is not None


def _effective_cpus(resources: Resources) -> str | None:
    if resources.cpus or resources.accelerators or resources.instance_type:
        return resources.cpus
    return DEFAULT_CPUS


def _default_memory(resources: Resources) -> bool:
    """Does DEFAULT_MEMORY_PER_CPU apply (a CPU-only task naming no memory)?"""
    return not (resources.memory or resources.accelerators or resources.instance_type)


def _memory_test(resources: Resources, default_memory: bool) -> RowTest | None:
    if default_memory and _default_memory(resources):
        return lambda row: row.memory_gib >= DEFAULT_MEMORY_PER_CPU * row.vcpus - 1e-9
    return _bound_test(resources.memory, lambda r: r.memory_gib)


def shape_test(resources: Resources, default_memory: bool = False) -> RowTest:
    """fits_shape for many rows: the asked GPUs (exact count), cpus and memory
    (default_memory: and SkyPilot's default memory per vCPU when none is asked)."""
    accelerator = resources.accelerator
    any_gpu_ok = bool(resources.instance_type)
    bounds = [t for t in (_bound_test(_effective_cpus(resources), lambda r: r.vcpus),
                          _memory_test(resources, default_memory)) if t]

    def test(row: CatalogRow) -> bool:
        if accelerator:
            if (row.accelerator_name, row.accelerator_count) != accelerator:
                return False
        elif row.accelerator_name and not any_gpu_ok:
            return False  # a CPU task does not land on a GPU machine by accident
        return all(bound(row) for bound in bounds)
    return test


def fits_shape(row: CatalogRow, resources: Resources) -> bool:
    """Has the machine the asked GPUs (exact count), cpus and memory? Place, spot and
    instance type are not looked at."""
    return shape_test(resources)(row)


def match_test(resources: Resources, default_memory: bool = False) -> RowTest:
    """matches() for many rows, with the Resources parsed once."""
    shape = shape_test(resources, default_memory)
    instance_type, use_spot = resources.instance_type, resources.use_spot
    region, zone = resources.region, resources.zone

    def test(row: CatalogRow) -> bool:
        if instance_type and row.instance_type != instance_type:
            return False
        if not shape(row) or (use_spot and row.spot_price is None):
            return False
        if region and row.region != region:
            return False
        if zone:
            return row.zone == zone if row.zone else zone_in_region(zone, row.region)
        return True
    return test


def matches(row: CatalogRow, resources: Resources) -> bool:
    """Does this catalog row satisfy one Resources choice (ignoring its cloud)?"""
    return match_test(resources)(row)


def _candidate(row: CatalogRow, resources: Resources, num_nodes: int) -> Candidate:
    return Candidate(
        cloud=row.cloud, region=row.region, zone=row.zone or resources.zone,
        instance_type=row.instance_type, accelerator=row.accelerator_name,
        accelerator_count=row.accelerator_count, vcpus=row.vcpus, memory_gib=row.memory_gib,
        price=row.price_for(resources.use_spot), use_spot=resources.use_spot,
        num_nodes=num_nodes, accelerator_memory_gib=row.accelerator_memory_gib,
        resources=resources)


def offers(cloud: str, resources: Resources, num_nodes: int = 1) -> list[Candidate]:
    """Rows of `cloud` that satisfy `resources`, as candidates, cheapest first.

    Ties keep catalog order, so the result is deterministic. A Resources with
    several accelerator choices is expanded (each choice is a separate offer).
    """
    if resources.cloud and resources.cloud != cloud:
        return []
    found = []
    for choice in resources.choices()[0]:
        test = match_test(choice, default_memory=True)
        matched = [row for row in rows(cloud) if test(row)]
        if not matched and _default_memory(choice):
            test = match_test(choice)
            matched = [row for row in rows(cloud) if test(row)]
        found.extend(_candidate(row, choice, num_nodes) for row in matched)
    return sorted(found, key=lambda c: c.price)


def accelerators(name: str | None = None, cloud: str | None = None,
                 region: str | None = None) -> list[CatalogRow]:
    """GPU rows for `show-gpus`: every cloud unless one is named; name is case-insensitive."""
    wanted = canonical_accelerator(name, field="accelerator") if name else None
    clouds = [cloud] if cloud else available_clouds()
    return [row for c in clouds for row in rows(c)
            if row.accelerator_name and (wanted is None or row.accelerator_name == wanted)
            and (region is None or row.region == region)]
