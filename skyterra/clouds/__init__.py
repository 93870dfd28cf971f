"""The one registry of clouds: their names, and their classes once asked for.

`MODULES` is the only place the clouds are listed. Each cloud module
registers its class with `@register`; `get_cloud` imports a module only when
that cloud is first used, so `skyterra --help` and task parsing stay light.
This module imports nothing else of skyterra's but errors, so that the task
model can check cloud names against it without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from skyterra.errors import NotSupportedError, TaskError, did_you_mean

if TYPE_CHECKING:
    from skyterra.clouds.base import Cloud

# name -> module; the order is the order `skyterra check` and tables show.
MODULES = {
    "aws": "skyterra.clouds.aws",
    "gcp": "skyterra.clouds.gcp",
    "azure": "skyterra.clouds.azure",
    "local": "skyterra.clouds.local",
}
# SkyPilot clouds a task file may name that skyterra refuses clearly.
_NOT_SUPPORTED = ("kubernetes", "k8s", "lambda", "runpod", "oci", "ibm", "ssh", "paperspace",
                  "fluidstack", "cudo", "vast", "nebius", "scp", "vsphere", "do", "hyperbolic",
                  "slurm", "seeweb", "shadeform", "primeintellect", "verda")
_CLASSES: dict[str, type[Cloud]] = {}

__all__ = ["MODULES", "all_clouds", "check_name", "get_cloud", "is_unreached", "names",
           "register"]


def register(cls: type[Cloud]) -> type[Cloud]:
    """Class decorator of every cloud module: makes `get_cloud(cls.name)` return it."""
    if cls.name not in MODULES:
        raise RuntimeError(f"cloud {cls.name!r} is not listed in skyterra.clouds.MODULES")
    _CLASSES[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    return tuple(MODULES)


def check_name(value: Any, field: str = "resources.cloud") -> str:
    """A cloud name skyterra knows (lower-cased), or a TaskError naming `field`."""
    known = names()
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in known:
        return text
    if text in _NOT_SUPPORTED:
        hint = "" if field.startswith("--") else (
            " To run this task on one of them, pass --cloud CLOUD: it replaces the file's "
            "cloud (and that cloud's region or context), as in SkyPilot.")
        raise NotSupportedError(f"cloud '{value}' is not supported; skyterra supports "
                                f"{', '.join(known)}.{hint}", field=field)
    raise TaskError(f"unknown cloud {value!r}.{did_you_mean(str(value).lower(), known)} "
                    f"Choose one of {', '.join(known)}.", field=field)


def is_unreached(value: Any) -> bool:
    """A cloud SkyPilot knows and skyterra deliberately does not launch on."""
    return isinstance(value, str) and value.strip().lower() in _NOT_SUPPORTED


def get_cloud(name: str) -> Cloud:
    name = check_name(name, "cloud")
    if name not in _CLASSES:
        importlib.import_module(MODULES[name])
    return _CLASSES[name]()


def all_clouds() -> list[Cloud]:
    return [get_cloud(name) for name in MODULES]
