"""Offline price catalogs: which machines each cloud offers, where, at what $/hour.

One CSV per cloud ships inside the package (see SOURCES.md for where the
prices come from), so choosing the cheapest cluster works without network or
credentials. The files load lazily, once per process, with the csv module.

Which files are read, first match wins, per cloud:
  1. $SKYTERRA_CATALOG_DIR/<cloud>.csv (tests and pinned setups; only this dir)
  2. ~/.skyterra/catalog/<cloud>.csv    (written by `python -m skyterra.catalog.refresh`)
  3. the shipped skyterra/catalog/<cloud>.csv

Zones: a row with an empty zone is priced per region and runs in any zone of
it (aws, azure); clouds whose capacity is zonal (gcp) list one row per zone.
"""

from __future__ import annotations

from skyterra.catalog.candidate import Candidate
from skyterra.catalog.explain import describe_request, explain
from skyterra.catalog.lookup import (
    DEFAULT_CPUS,
    SHIPPED_DIR,
    accelerators,
    available_clouds,
    catalog_path,
    clear_cache,
    fits_shape,
    matches,
    offers,
    rows,
    source,
    zone_in_region,
)
from skyterra.catalog.row import CatalogRow

__all__ = [
    "DEFAULT_CPUS",
    "SHIPPED_DIR",
    "Candidate",
    "CatalogRow",
    "accelerators",
    "available_clouds",
    "catalog_path",
    "clear_cache",
    "describe_request",
    "explain",
    "fits_shape",
    "matches",
    "offers",
    "rows",
    "source",
    "zone_in_region",
]
