"""Autostop / autodown: an idle cluster stops (or terminates) itself, laptop closed or not.

The setting is SkyPilot's `resources.autostop` (`true` = 5 idle minutes,
minutes as a number or "10m"/"1h", or `{idle_minutes, down, wait_for}`), or
`launch -i MINUTES [--down]` / `skyterra autostop NAME -i MINUTES | --cancel`.

What counts as idle is SkyPilot's `wait_for`: `jobs_and_ssh` (default: no
running job and no interactive SSH session), `jobs` (sessions do not count),
`none` (the time runs from when autostop was set, whatever runs). The idle
clock restarts whenever a job starts or ends. One small watcher
(templates/autostop/watcher.sh) reads the job files skyterra keeps on the head
node (~/.skyterra/jobs/<id>/pid and rc) and, when the cluster has been idle
long enough, writes an event file and stops or removes the nodes. On a cloud
it runs on the head node itself (skyterra/idle_watcher.py installs it) and the
nodes stop through the cloud's own means (instance-initiated shutdown, the
node's identity); on the local cloud it runs on this machine. The next
`skyterra status` reconciles: the cluster is recorded STOPPED, or destroyed and
forgotten, with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from skyterra.errors import NotSupportedError, TaskError

DEFAULT_IDLE_MINUTES = 5
WAIT_FOR = ("jobs_and_ssh", "jobs", "none")
KEYS = ("idle_minutes", "down", "wait_for")
# TEST ONLY: seconds per "minute", so that tests need not wait minutes.
UNIT_ENV = "SKYTERRA_AUTOSTOP_UNIT_SECONDS"
EVENT_FILE = "autostop-fired.json"     # in the cluster dir, written by the watcher
# Key of a cluster's stored values (record.cloud_options): the setting its module was
# last rendered for ({} once cancelled), for clouds whose module has a part for autostop.
STORED_KEY = "autostop"
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw]?)\s*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Autostop:
    idle_minutes: int = DEFAULT_IDLE_MINUTES
    down: bool = False
    wait_for: str = "jobs_and_ssh"

    @property
    def verb(self) -> str:
        return "autodowned" if self.down else "autostopped"

    def reason(self) -> str:
        return f"{self.verb} after {self.idle_minutes} min idle"

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any] | None) -> Autostop | None:
        return cls(**{k: v for k, v in data.items() if k in KEYS}) if data else None


def parse(value: Any, field: str = "resources.autostop") -> Autostop | None:
    """Every SkyPilot form of `autostop` → Autostop, or None (off)."""
    if value is None or value is False:
        return None
    if value is True:
        return Autostop()
    if isinstance(value, (int, str)):
        return Autostop(idle_minutes=_minutes(value, field))
    if not isinstance(value, dict):
        raise TaskError(f"expected true/false, minutes (10 or \"10m\") or a mapping with "
                        f"{', '.join(KEYS)}; got {value!r}.", field=field)
    for key in value:
        if key in ("hook", "hook_timeout"):
            raise NotSupportedError(f"'{key}' is not supported by skyterra yet; remove it.",
                                    field=f"{field}.{key}")
        if key not in KEYS:
            raise TaskError(f"unknown key '{key}'; autostop takes {', '.join(KEYS)}.",
                            field=f"{field}.{key}")
    down = value.get("down", False)
    if not isinstance(down, bool):
        raise TaskError(f"expected true or false, got {down!r}.", field=f"{field}.down")
    wait_for = value.get("wait_for", "jobs_and_ssh")
    if wait_for not in WAIT_FOR:
        raise TaskError(f"unknown wait_for {wait_for!r}; choose one of {', '.join(WAIT_FOR)}.",
                        field=f"{field}.wait_for")
    minutes = value.get("idle_minutes", DEFAULT_IDLE_MINUTES)
    return Autostop(_minutes(minutes, f"{field}.idle_minutes"), down, wait_for)


def for_launch(task_setting: dict[str, Any] | None, idle_minutes: int | None,
               down: bool) -> Autostop | None:
    """`launch -i MINUTES [--down]` over the task's `resources.autostop` (SkyPilot's rule:
    the flags win; `--down` alone turns the task's autostop into autodown)."""
    if idle_minutes is not None:
        return parse({"idle_minutes": idle_minutes, "down": down}, "-i/--idle-minutes")
    setting = Autostop.from_record(task_setting)
    if setting is not None and down:
        setting = Autostop(setting.idle_minutes, True, setting.wait_for)
    return setting


_UNIT_MINUTES = {"": 1, "m": 1, "h": 60, "d": 1440, "w": 10080}   # SkyPilot's units


def _minutes(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise TaskError(f"expected minutes, got {value!r}.", field=field)
    if isinstance(value, int):
        minutes = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise TaskError(f"expected minutes such as 10, \"10m\", \"2h\", \"1d\" or \"1w\"; "
                            f"got {value!r}.", field=field)
        minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2).lower()]
    if minutes < 1:
        raise TaskError(f"idle minutes must be at least 1, got {value!r} (use `skyterra "
                        "autostop NAME --cancel` to turn autostop off).", field=field)
    return minutes


def module_setting(stored: dict[str, Any], resources: Any) -> dict[str, Any] | None:
    """What a cluster's module renders for autostop: the stored setting (written by
    `skyterra autostop`, {} once cancelled), else the task's; None: never asked for,
    so the module has no part for it (its golden copies stay as they are)."""
    if STORED_KEY in stored:
        return dict(stored[STORED_KEY] or {})
    value = getattr(resources, "autostop", None)
    return dict(value) if value else None


def unit_seconds() -> float:
    return float(os.environ.get(UNIT_ENV, "60") or 60)


def watcher_env(setting: Autostop, *, jobs_dir: str, event_file: str,
                host_pids: bool) -> dict[str, str]:
    """The watcher's settings (it reads them from its environment; no value is parsed)."""
    idle = setting.idle_minutes * unit_seconds()
    return {"SKYTERRA_AUTOSTOP_IDLE_SECONDS": str(int(max(1, idle))),
            "SKYTERRA_AUTOSTOP_TICK": str(max(0.2, min(10.0, idle / 20))),
            "SKYTERRA_AUTOSTOP_WAIT_FOR": setting.wait_for,
            "SKYTERRA_AUTOSTOP_ACTION": "down" if setting.down else "stop",
            "SKYTERRA_AUTOSTOP_REASON": setting.reason(),
            "SKYTERRA_AUTOSTOP_JOBS": jobs_dir,
            "SKYTERRA_AUTOSTOP_EVENT": event_file,
            "SKYTERRA_AUTOSTOP_HOST_PIDS": "1" if host_pids else "0"}


def watcher_path() -> Path:
    """The one watcher script (templates/autostop/watcher.sh), for every cloud."""
    from skyterra import paths

    return paths.templates_dir() / "autostop" / "watcher.sh"


def watcher_script() -> str:
    return watcher_path().read_text()


def read_event(cluster_dir: Path) -> dict[str, Any] | None:
    """What the watcher did, if it fired: {"action": "stop"|"down", "at", "reason"}."""
    try:
        event = json.loads((cluster_dir / EVENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return event if isinstance(event, dict) and event.get("action") in ("stop", "down") \
        else None


def clear_event(cluster_dir: Path) -> None:
    (cluster_dir / EVENT_FILE).unlink(missing_ok=True)
