"""SDK functions the dashboard uses only when skyterra.api has them.

Stop/start, the cost report and managed jobs are being written elsewhere
(issues 17 and 16). The page asks /api/features and shows a button or a
section only for what exists, so a feature appears in the dashboard the day
its SDK function is added -- with no change here, if it keeps this shape:

  api.stop(cluster_name)       Stop button on UP clusters (POST .../stop)
  api.start(cluster_name)      Start button on STOPPED clusters (POST .../start)
  api.cost_report()            iterable of records (dataclasses or dicts), one per cluster,
                               destroyed ones included: name, status, launched_at (epoch s),
                               ended_at or duration (s), price ($/h, whole cluster) and/or
                               total_cost ($). cost.py turns them into the chart.
  api.managed_jobs_queue()     iterable of records: job_id, name, status, cluster,
                               submitted_at, recovery_count, and events: a list of
                               {"at": epoch s, "event": str, "detail": str} -- the
                               recovery timeline the page draws.

Records of these functions go through views.sanitize (envs, secrets and
similar keys dropped at any depth) before they are served.
"""

from __future__ import annotations

from typing import Any

# feature name (as the page knows it) -> function name on skyterra.api
OPTIONAL = {"stop": "stop", "start": "start", "cost_report": "cost_report",
            "managed_jobs": "managed_jobs_queue"}


def _api():
    from skyterra import api

    return api


def available() -> dict[str, bool]:
    """Which optional features this skyterra has."""
    api = _api()
    return {feature: callable(getattr(api, name, None)) for feature, name in OPTIONAL.items()}


def function(feature: str) -> Any | None:
    """The SDK function behind `feature`, or None while skyterra does not have it."""
    found = getattr(_api(), OPTIONAL[feature], None)
    return found if callable(found) else None
