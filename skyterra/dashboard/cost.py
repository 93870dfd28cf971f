"""Cost over time for the chart: the SDK's cost report, or an estimate from status.

Each cluster contributes a straight line: from its launch to its end (or now),
rising at its $/h. The estimate knows only the clusters that exist now (status
records), so destroyed clusters are missing from it; the page says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

ESTIMATE_NOTE = ("Estimated here as $/h x up-time of the clusters that exist now "
                 "(from `skyterra status`); destroyed and stopped clusters are not counted. "
                 "The cost report replaces this estimate once skyterra has one.")
REPORT_NOTE = "From skyterra's cost report."


@dataclasses.dataclass
class Span:
    """One cluster's billed time: [start, end) at price $/h (end None: still running)."""

    name: str
    start: float
    end: float | None
    price: float

    def cost_at(self, when: float) -> float:
        stop = when if self.end is None else min(when, self.end)
        return max(0.0, stop - self.start) * self.price / 3600


def spans_from_status(records: Iterable[Any]) -> list[Span]:
    return [Span(r.name, r.launched_at, None, r.price or 0.0) for r in records
            if r.status == "UP" and r.launched_at]


def spans_from_report(rows: Iterable[Any], now: float) -> list[Span]:
    """Cost report records (see features.py for the shape we read)."""
    spans = []
    for row in rows:
        get = row.get if isinstance(row, dict) else lambda key, r=row: getattr(r, key, None)
        start = get("launched_at")
        if not start:
            continue
        end = get("ended_at")
        if end is None and get("duration") is not None and get("status") != "UP":
            end = start + float(get("duration"))
        price = get("price")
        total = get("total_cost")
        if not price and total is not None:
            hours = ((end or now) - start) / 3600
            price = float(total) / hours if hours > 0 else 0.0
        spans.append(Span(str(get("name") or "?"), float(start), end, float(price or 0.0)))
    return spans


def chart(spans: list[Span], source: str, now: float | None = None) -> dict[str, Any]:
    """Lines for the page: one per cluster plus the total, as [time, cumulative $] points."""
    now = time.time() if now is None else now
    lines = [{"name": s.name, "price": s.price,
              "points": [[s.start, 0.0], [s.end or now, s.cost_at(now)]]} for s in spans]
    breaks = sorted({s.start for s in spans} | {s.end for s in spans if s.end} | {now})
    total = [[t, sum(s.cost_at(t) for s in spans)] for t in breaks if t <= now]
    return {"source": source, "note": REPORT_NOTE if source == "cost_report" else ESTIMATE_NOTE,
            "now": now, "clusters": lines, "total": total,
            "total_cost": total[-1][1] if total else 0.0}
