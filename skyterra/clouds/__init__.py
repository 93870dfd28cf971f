"""Registry of clouds by name; imports each cloud module only when asked for."""

from __future__ import annotations

import importlib

from skyterra.clouds.base import Cloud, ClusterSpec, CredentialReport
from skyterra.errors import TaskError
from skyterra.resources import CLOUDS, did_you_mean

_CLASSES = {
    "local": ("skyterra.clouds.local", "Local"),
    "aws": ("skyterra.clouds.aws", "AWS"),
    "gcp": ("skyterra.clouds.gcp", "GCP"),
    "azure": ("skyterra.clouds.azure", "Azure"),
}

__all__ = ["CLOUDS", "Cloud", "ClusterSpec", "CredentialReport", "get_cloud"]


def get_cloud(name: str) -> Cloud:
    if name not in _CLASSES:
        raise TaskError(f"unknown cloud {name!r}.{did_you_mean(name, CLOUDS)} "
                        f"Choose one of {', '.join(CLOUDS)}.", field="cloud")
    module_name, class_name = _CLASSES[name]
    return getattr(importlib.import_module(module_name), class_name)()
