"""Every error a user can cause or meet, with a message written for that user.

The CLI prints `str(error)` (no traceback unless --debug) and exits with
`error.exit_code`. Pipelines catch these classes by type, so the hierarchy is
part of the public API: add classes, do not rename them.
"""

from __future__ import annotations

import difflib


class SkyterraError(Exception):
    """Base class: a one-paragraph message that says what happened and what to do."""

    exit_code = 1


class TaskError(SkyterraError):
    """The task YAML (or SDK arguments, or CLI flags) is invalid.

    The message names the file and the field path (`resources.accelerators`)
    so the user can go straight to the line.
    """

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.message = message  # without the file/field prefix
        where = ""
        if source and field:
            where = f"{source}: field '{field}': "
        elif source:
            where = f"{source}: "
        elif field:
            where = f"field '{field}': "
        super().__init__(where + message)


class NotSupportedError(TaskError):
    """A SkyPilot feature that skyterra does not implement (yet): never ignored silently."""


class MissingValueError(TaskError):
    """A value the task file leaves for the user to fill in (an empty bucket `name:`): a
    launch refuses with it, a dry run lists it as a note."""


class PipelineError(SkyterraError):
    """A task of a multi-task file failed or could not start: the chain stopped there."""


class ConfigError(SkyterraError):
    """Bad skyterra configuration, environment or missing tool."""

    exit_code = 2


class MissingToolError(ConfigError):
    """A program skyterra needs (terraform, ssh, rsync, sshd) is not installed."""


class ClusterNotFoundError(SkyterraError):
    """No cluster of that name in the registry."""


class ClusterBusyError(SkyterraError):
    """Another skyterra command holds the cluster's lock."""


class TerraformError(SkyterraError):
    """A terraform command failed. `kind` says what failover should do with it.

    kind is one of: capacity, quota, auth, invalid, other.
    """

    def __init__(self, message: str, *, kind: str = "other", command: str = "", output: str = ""):
        self.kind = kind
        self.command = command
        self.output = output
        super().__init__(message)


class ProvisionError(SkyterraError):
    """No candidate could be provisioned; lists every attempt and why it failed."""

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None):
        self.attempts = attempts or []
        super().__init__(message)


class NodeUnreachableError(SkyterraError):
    """A node did not answer SSH in time."""


class HostKeyMismatchError(NodeUnreachableError):
    """A node's SSH host key is not the one pinned at launch: skyterra will not connect."""


class StorageError(SkyterraError):
    """A bucket could not be found, created, reached or removed."""


class CommandFailedError(SkyterraError):
    """setup or run exited non-zero on a node; exit_code is the node's exit code."""

    def __init__(self, message: str, *, node: str = "", returncode: int = 1):
        self.node = node
        self.returncode = returncode
        self.exit_code = returncode if 0 < returncode < 256 else 1
        super().__init__(message)


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """' Did you mean 'x'?' or '' — appended to unknown-name errors."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    if not match:
        match = difflib.get_close_matches(str(word).lower(), [c.lower() for c in choices], n=1)
        match = [c for c in choices if match and c.lower() == match[0]]
    return f" Did you mean '{match[0]}'?" if match else ""
