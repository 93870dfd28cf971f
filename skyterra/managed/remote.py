"""A controller on a node of its own (`jobs launch --controller CLOUD`): filled in below."""

from __future__ import annotations

from skyterra.managed.store import JobDir


def refresh(job_dir: JobDir) -> None:
    """Copy the remote controller's record and logs here (nothing for a local controller)."""


def cancel(job_dir: JobDir) -> None:
    """Pass a cancel on to the remote controller (nothing for a local controller)."""
