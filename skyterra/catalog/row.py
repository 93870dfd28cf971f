"""One catalog line (an instance type offered in a region or zone) and the CSV format.

The format is plain CSV so that a price refresh is a readable diff and the
loader needs only the csv module (the seed's dryrun must stay well under a
second). Lines starting with '#' are comments: each file's first line says
where its prices come from and when they were compiled.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from skyterra.errors import ConfigError

COLUMNS = ("instance_type", "accelerator_name", "accelerator_count", "accelerator_memory_gib",
           "vcpus", "memory_gib", "price", "spot_price", "region", "zone")


class CatalogRow(NamedTuple):
    """An instance type at one place. zone None: priced per region, any zone works.

    A NamedTuple, not a frozen dataclass: a dry run over every cloud builds ~10,000 of
    them, and a tuple is built about five times faster (bench/catalog_load.py). Immutable
    all the same; `row._replace(price=...)` makes a changed copy.
    """

    cloud: str
    instance_type: str
    accelerator_name: str | None
    accelerator_count: int
    accelerator_memory_gib: float   # per GPU; 0 without GPU
    vcpus: float
    memory_gib: float
    price: float                    # on-demand $/hour
    spot_price: float | None        # None: no spot offer known
    region: str
    zone: str | None

    @property
    def key(self) -> tuple:
        """What makes a row unique: the same machine at the same place."""
        return (self.instance_type, self.accelerator_name, self.accelerator_count,
                self.region, self.zone)

    @property
    def gpus(self) -> str:
        return f"{self.accelerator_name}:{self.accelerator_count}" if self.accelerator_name \
            else "no GPU"

    def price_for(self, use_spot: bool) -> float | None:
        return self.spot_price if use_spot else self.price


def _number(text: str, column: str, optional: bool = False) -> float | None:
    text = text.strip()
    if not text:
        if optional:
            return None
        raise ValueError(f"column {column} is empty")
    value = float(text)
    if math.isnan(value) or value < 0:
        raise ValueError(f"column {column} must be a number >= 0, got {text!r}")
    return value


def parse_row(cloud: str, record: dict[str, str]) -> CatalogRow:
    """A csv.DictReader record → CatalogRow; ValueError says which column is wrong."""
    missing = [c for c in COLUMNS if record.get(c) is None]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    name = record["accelerator_name"].strip() or None
    count = _number(record["accelerator_count"], "accelerator_count", optional=True) or 0
    if name and (count < 1 or count != int(count)):
        raise ValueError(f"accelerator_count must be a whole number >= 1 for {name}")
    instance_type, region = record["instance_type"].strip(), record["region"].strip()
    if not instance_type or not region:
        raise ValueError("instance_type and region must not be empty")
    return CatalogRow(
        cloud=cloud, instance_type=instance_type, accelerator_name=name,
        accelerator_count=int(count) if name else 0,
        accelerator_memory_gib=_number(record["accelerator_memory_gib"],
                                       "accelerator_memory_gib", optional=True) or 0.0,
        vcpus=_number(record["vcpus"], "vcpus"), memory_gib=_number(record["memory_gib"],
                                                                     "memory_gib"),
        price=_number(record["price"], "price"),
        spot_price=_number(record["spot_price"], "spot_price", optional=True),
        region=region, zone=record["zone"].strip() or None)


def _fast_row(cloud: str, cells: list[str], at: list[int | None]) -> CatalogRow | None:
    """The common case, a well-formed line, parsed without building a dict per line (the
    catalogs have thousands of lines and a dry run over every cloud reads them all, so the
    checks are plain comparisons, no generator per line). None: something is off, and
    parse_row says what."""
    try:
        name = cells[at[1]].strip() or None
        count_text, memory_text = cells[at[2]].strip(), cells[at[3]].strip()
        spot_text = cells[at[7]].strip()
        count = float(count_text) if count_text else 0.0
        gpu_memory = float(memory_text) if memory_text else 0.0
        vcpus, memory, price = float(cells[at[4]]), float(cells[at[5]]), float(cells[at[6]])
        spot = float(spot_text) if spot_text else None
        instance_type, region = cells[at[0]].strip(), cells[at[8]].strip()
        zone = cells[at[9]].strip() or None
    except (IndexError, TypeError, ValueError):
        return None
    # `x >= 0` is False for NaN as well, so NaN is refused too.
    if not (instance_type and region and count >= 0 and gpu_memory >= 0 and vcpus >= 0
            and memory >= 0 and price >= 0 and (spot is None or spot >= 0)):
        return None
    if name and (count < 1 or count != int(count)):
        return None
    return CatalogRow(cloud, instance_type, name, int(count) if name else 0, gpu_memory,
                      vcpus, memory, price, spot, region, zone)


def read_csv(path: Path, cloud: str | None = None) -> list[CatalogRow]:
    """Every row of a catalog file; a bad line raises ConfigError naming file and line."""
    cloud = cloud or path.stem
    text = path.read_text(encoding="utf-8")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    header = next(reader)
    at = [header.index(c) if c in header else None for c in COLUMNS]
    rows = []
    for (line_no, _), cells in zip(lines[1:], reader):
        row = _fast_row(cloud, cells, at)
        if row is None:
            try:
                row = parse_row(cloud, dict(zip(header, cells)))
            except ValueError as error:
                raise ConfigError(f"{path}:{line_no}: bad catalog row ({error}); fix the file "
                                  "or regenerate it with `python -m skyterra.catalog.refresh`."
                                  ) from None
        rows.append(row)
    return rows


def header_comment(path: Path) -> str:
    """The leading '# ...' line(s) of a catalog file: its source and date."""
    comments = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            comments.append(line[1:].strip())
    return " ".join(comments)


def _cell(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.5f}".rstrip("0").rstrip(".")
    return str(value)


def write_csv(path: Path, rows: Iterable[CatalogRow], comment: str) -> None:
    """Write rows in the shipped format (comment line, header, one line per row)."""
    buffer = io.StringIO()
    buffer.write("".join(f"# {line}\n" for line in comment.splitlines()))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row.instance_type, row.accelerator_name or "",
                         _cell(row.accelerator_count or None),
                         _cell(row.accelerator_memory_gib or None) if row.accelerator_name
                         else "", _cell(row.vcpus), _cell(row.memory_gib), _cell(row.price),
                         _cell(row.spot_price), row.region, row.zone or ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")
