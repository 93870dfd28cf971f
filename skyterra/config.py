"""skyterra settings: ~/.skyterra/config.yaml, then ./.skyterra.yaml, then environment.

Settings are plain mappings; each consumer reads the keys it knows
(`aws.endpoint_url`, `ssh_cidrs`, `backend`, …). Environment variables win
so that tests and CI can configure without files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from skyterra import paths
from skyterra.errors import ConfigError


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, OSError) as error:
        raise ConfigError(f"{path}: cannot read the skyterra config ({error}); fix or remove "
                          "the file.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the skyterra config must be a mapping.")
    return data


def load() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in (paths.home() / "config.yaml", Path.cwd() / ".skyterra.yaml"):
        for key, value in _read(path).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def ssh_cidrs(settings: dict[str, Any] | None = None) -> list[str] | None:
    """Who may SSH to cloud nodes: SKYTERRA_SSH_CIDRS, else `ssh_cidrs:`; None if unset
    (then a launch detects this machine's address, and a render leaves it to a variable)."""
    text = os.environ.get("SKYTERRA_SSH_CIDRS")
    if text:
        return [c.strip() for c in text.split(",") if c.strip()]
    settings = load() if settings is None else settings
    value = settings.get("ssh_cidrs")
    if not value:
        return None
    return [value] if isinstance(value, str) else list(value)


def enabled_clouds(settings: dict[str, Any] | None = None) -> list[str]:
    """SKYTERRA_CLOUDS=local,aws or `clouds: [local]` in config: where a task with no
    cloud may go (default: every cloud whose credentials `skyterra check` finds)."""
    from skyterra.resources import check_cloud

    text = os.environ.get("SKYTERRA_CLOUDS")
    if text:
        return [check_cloud(c.strip(), "SKYTERRA_CLOUDS") for c in text.split(",") if c.strip()]
    settings = load() if settings is None else settings
    return [check_cloud(c, "clouds") for c in settings.get("clouds") or []]
