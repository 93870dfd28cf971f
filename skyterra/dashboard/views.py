"""SDK records -> the JSON the dashboard serves.

Whitelists, not blacklists: a field is shown only if it is named here, so a
field added to ClusterRecord later (say, one holding credentials) stays private
until someone decides to show it. Task envs, secrets, node_env, SSH keys and
the task's YAML are never served.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from skyterra.cluster import Node

CLUSTER_FIELDS = ("name", "status", "cloud", "region", "zone", "owner", "num_nodes",
                  "instance_type", "accelerator", "accelerator_count", "price", "created_at",
                  "launched_at", "last_error")
NODE_FIELDS = ("rank", "ip", "private_ip", "instance_id")
JOB_FIELDS = ("job_id", "name", "status", "num_nodes", "submitted_at", "started_at",
              "ended_at", "exit_code", "failed_node", "cancel_requested")
# Keys dropped wherever they appear in a record of an SDK function whose shape we do
# not own (cost report, managed jobs): they hold, or may hold, user values or secrets.
PRIVATE_KEYS = frozenset({"task", "envs", "env", "secrets", "node_env", "ssh_key",
                          "ssh_private_key", "credentials", "token", "password", "run",
                          "setup", "file_mounts", "config"})


def cluster_view(record: Any, now: float | None = None) -> dict[str, Any]:
    """One cluster as the page shows it, with up-time and the cost so far ($/h x up-time)."""
    now = time.time() if now is None else now
    data = {name: getattr(record, name, None) for name in CLUSTER_FIELDS}
    data["nodes"] = [node_view(node) for node in getattr(record, "nodes", None) or []]
    launched = data["launched_at"]
    up = data["status"] == "UP" and launched
    data["uptime_s"] = max(0.0, now - launched) if up else None
    data["cost_so_far"] = (data["price"] or 0.0) * data["uptime_s"] / 3600 if up else None
    # autostop arrives with issue 17; shown when the record has it (minutes or a mapping).
    data["autostop"] = sanitize(getattr(record, "autostop", None))
    return data


def node_view(node: dict[str, Any]) -> dict[str, Any]:
    """A node of a cluster record, named as in the log prefixes (head, worker1, ...)."""
    data = {name: node.get(name) for name in NODE_FIELDS}
    data["name"] = Node(int(data["rank"] or 0), data["ip"] or "", data["private_ip"] or "").name
    return data


def job_view(job: Any, now: float | None = None) -> dict[str, Any]:
    """One job: status, duration, exit code, the node that failed first."""
    now = time.time() if now is None else now
    data = {name: getattr(job, name, None) for name in JOB_FIELDS}
    started = data["started_at"]
    data["duration_s"] = ((data["ended_at"] or now) - started) if started else None
    return data


def sanitize(value: Any) -> Any:
    """Plain JSON of a record whose shape another module owns, minus PRIVATE_KEYS at any depth."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): sanitize(v) for k, v in value.items()
                if str(k).lower() not in PRIVATE_KEYS}
    if isinstance(value, (list, tuple)):
        return [sanitize(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
