"""skyterra: SkyPilot task YAML → Terraform → SSH → torchrun.

`import skyterra as sky` gives the SkyPilot SDK surface used by the seed
examples: Task, Resources, launch, stream_and_get, tail_logs, exec, queue,
cancel, status, down. Submodules load lazily so that importing skyterra (and
`skyterra --help`) stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "skyterra.task",
    "Dag": "skyterra.dag",
    "launch_dag": "skyterra.api",
    "dryrun_dag": "skyterra.api",
    "Resources": "skyterra.resources",
    "Cluster": "skyterra.cluster",
    "launch": "skyterra.api",
    "exec": "skyterra.api",
    "down": "skyterra.api",
    "status": "skyterra.api",
    "queue": "skyterra.api",
    "cancel": "skyterra.api",
    "tail_logs": "skyterra.api",
    "stream_and_get": "skyterra.api",
    "get": "skyterra.api",
    "job_status": "skyterra.api",
    "dryrun": "skyterra.api",
    "render": "skyterra.api",
    "attach": "skyterra.api",
    "Request": "skyterra.api",
    "LaunchResult": "skyterra.api",
    "jobs_launch": "skyterra.api",
    "jobs_queue": "skyterra.api",
    "jobs_cancel": "skyterra.api",
    "jobs_logs": "skyterra.api",
    "jobs_wait": "skyterra.api",
}
_ERRORS = ("SkyterraError", "TaskError", "NotSupportedError", "ConfigError", "MissingToolError",
           "ClusterNotFoundError", "ClusterBusyError", "TerraformError", "ProvisionError",
           "NodeUnreachableError", "HostKeyMismatchError", "CommandFailedError", "PipelineError")

__all__ = [*_EXPORTS, *_ERRORS]  # noqa: PLE0604 - both tables hold names (str)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _ERRORS:
        return getattr(importlib.import_module("skyterra.errors"), name)
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'skyterra' has no attribute {name!r}")
