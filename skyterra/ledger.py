"""The cost ledger: what every cluster of this skyterra home cost, destroyed ones included.

Cluster records go away with `skyterra destroy`; billing questions come
later. So launch, stop, start and destroy each append one line to
SKYTERRA_HOME/ledger.jsonl (the price is the catalog's $/h for the whole
cluster, fixed at launch). `report` replays the lines into one row per
cluster lifetime: up-time is the time between a launch or start and the next
stop or destroy (a stopped cluster pays for its disks only, which the
catalog does not price), total cost = up-time x $/h.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skyterra import paths

LAUNCH, STOP, START, DESTROY = "launch", "stop", "start", "destroy"
EVENTS = (LAUNCH, STOP, START, DESTROY)


def ledger_path() -> Path:
    return paths.home() / "ledger.jsonl"


def record_event(name: str, event: str, *, at: float | None = None, price: float = 0.0,
                 resources: dict[str, Any] | None = None, reason: str = "") -> None:
    """Append one event (one JSON line, O_APPEND: two commands never interleave a line)."""
    if event not in EVENTS:
        raise ValueError(f"unknown ledger event {event!r}")
    line = {"cluster": name, "event": event, "at": time.time() if at is None else at}
    if event == LAUNCH:
        line.update(price=float(price), resources=resources or {})
    if reason:
        line["reason"] = reason
    path = ledger_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")


def read_events(path: Path | None = None) -> list[dict[str, Any]]:
    """Every event in order of time; a damaged line is skipped (the rest still counts)."""
    path = ledger_path() if path is None else path
    if not path.exists():
        return []
    events = []
    for text in path.read_text().splitlines():
        try:
            event = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") in EVENTS and "at" in event:
            events.append(event)
    return sorted(events, key=lambda e: float(e["at"]))


@dataclasses.dataclass
class CostRow:
    """One cluster lifetime (launch to destroy), the shape the dashboard's chart reads."""

    name: str
    status: str                   # UP, STOPPED or DESTROYED
    launched_at: float
    ended_at: float | None        # destroyed at (None: still exists)
    price: float                  # $/h of the whole cluster while running
    resources: dict[str, Any]
    duration: float = 0.0         # seconds the nodes ran (billed compute time)
    total_cost: float = 0.0
    reason: str = ""              # of the last stop/destroy (e.g. autostop)


def report(events: Iterable[dict[str, Any]] | None = None,
           now: float | None = None) -> list[CostRow]:
    """Rows in launch order; a cluster launched twice under one name gives two rows."""
    now = time.time() if now is None else now
    rows: list[CostRow] = []
    open_rows: dict[str, CostRow] = {}
    running_since: dict[str, float | None] = {}
    for event in read_events() if events is None else events:
        name, kind, at = str(event["cluster"]), event["event"], float(event["at"])
        row = open_rows.get(name)
        if kind == LAUNCH:
            if row is not None:  # launched again without a recorded destroy: close it
                _close(row, running_since, at, "DESTROYED")
            row = CostRow(name, "UP", at, None, float(event.get("price") or 0.0),
                          dict(event.get("resources") or {}))
            rows.append(row)
            open_rows[name], running_since[name] = row, at
            continue
        if row is None:
            continue
        row.reason = event.get("reason", row.reason) if kind != START else ""
        if kind == START:
            running_since[name] = running_since.get(name) or at
            row.status = "UP"
        elif kind == STOP:
            _stop_clock(row, running_since, at)
            row.status = "STOPPED"
        elif kind == DESTROY:
            _close(row, running_since, at, "DESTROYED")
            del open_rows[name]
    for row in open_rows.values():
        since = running_since.get(row.name)
        if since is not None:
            row.duration += max(0.0, now - since)
    for row in rows:
        row.total_cost = row.duration * row.price / 3600
    return rows


def _stop_clock(row: CostRow, running_since: dict[str, float | None], at: float) -> None:
    since = running_since.get(row.name)
    if since is not None:
        row.duration += max(0.0, at - since)
    running_since[row.name] = None


def _close(row: CostRow, running_since: dict[str, float | None], at: float,
           status: str) -> None:
    _stop_clock(row, running_since, at)
    row.status, row.ended_at = status, at
