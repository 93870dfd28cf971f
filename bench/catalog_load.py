"""How long do the catalogs take to load, and does a bigger catalog slow a dry run?

Reads each cloud's CSV in process (`skyterra.catalog.row.read_csv`, best of N) from the
shipped directory and, for comparison, from an older copy of the files (a directory given
with --old, e.g. extracted with `git show REV:skyterra/catalog/aws.csv`); then times the
in-process dry run of examples/quickstart/train.yaml with each directory pinned through
SKYTERRA_CATALOG_DIR (median of N, cache cleared each time so every run reads the files).

    python bench/catalog_load.py --old /tmp/old-catalogs [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from skyterra import catalog
from skyterra.catalog.row import read_csv

SEED = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "train.yaml"
CLOUDS = ("aws", "gcp", "azure")


def best_read(directory: Path, repeat: int) -> dict[str, tuple[int, float]]:
    """cloud -> (rows, best seconds) for reading its CSV from `directory`."""
    result = {}
    for cloud in CLOUDS:
        path = directory / f"{cloud}.csv"
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            rows = read_csv(path, cloud)
            times.append(time.perf_counter() - start)
        result[cloud] = (len(rows), min(times))
    return result


def dryrun_median(directory: Path, clouds: list[str] | None, repeat: int) -> float:
    from skyterra import api
    from skyterra.task import Task

    os.environ["SKYTERRA_CATALOG_DIR"] = str(directory)
    samples = []
    for _ in range(repeat):
        catalog.clear_cache()
        start = time.perf_counter()
        api.dryrun(Task.from_yaml(SEED), "bench", clouds)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, required=True, help="directory of older CSVs")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    os.environ["SKYTERRA_HOME"] = tempfile.mkdtemp(prefix="skyterra-bench-")
    os.environ.setdefault("SKYTERRA_SSH_CIDRS", "203.0.113.7/32")
    for label, directory in (("old", args.old), ("new", catalog.SHIPPED_DIR)):
        reads = best_read(directory, args.repeat)
        total = sum(t for _, t in reads.values())
        parts = ", ".join(f"{c} {n} rows {t * 1000:.1f} ms" for c, (n, t) in reads.items())
        print(f"{label}: read all {total * 1000:.1f} ms ({parts})")
    for clouds in (["aws"], None):
        name = "--cloud aws" if clouds else "no --cloud"
        old = dryrun_median(args.old, clouds, args.repeat)
        new = dryrun_median(catalog.SHIPPED_DIR, clouds, args.repeat)
        print(f"in-process dryrun {name}: old {old * 1000:.1f} ms, new {new * 1000:.1f} ms")


if __name__ == "__main__":
    main()
