"""Fixtures shared by all tests: an isolated skyterra home and leak checks.

Every test that can create a cluster gets its own SKYTERRA_HOME; after the
test, any sshd node process or job process under that home, or any mount below
it (a node's overlay, tmpfs or bind mount that escaped its namespace), fails the test.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.leaks import leftovers

# Terraform must never phone home from tests (loopback only).
os.environ["CHECKPOINT_DISABLE"] = "1"
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.pop("TF_CLI_CONFIG_FILE", None) if not os.path.exists(
    os.environ.get("TF_CLI_CONFIG_FILE", "/nonexistent")) else None


@pytest.fixture
def skyterra_home(tmp_path, monkeypatch):
    """A fresh SKYTERRA_HOME; fails the test if a node process or a mount outlives it."""
    home = tmp_path / "skyterra-home"
    monkeypatch.setenv("SKYTERRA_HOME", str(home))
    yield home
    deadline = time.monotonic() + 5
    leaks = leftovers(str(home))
    while leaks and time.monotonic() < deadline:
        time.sleep(0.2)
        leaks = leftovers(str(home))
    if leaks:
        from skyterra import api

        for record in api.status():
            try:
                api.down(record.name, progress=lambda line: None)
            except Exception as error:  # noqa: BLE001 - best effort before failing loudly
                print(f"cleanup of {record.name} failed: {error}")
        pytest.fail("processes or mounts left behind by the test:\n" + "\n".join(leaks))


@pytest.fixture(scope="session", autouse=True)
def no_leaks_at_end(tmp_path_factory):
    """Session-wide: nothing under pytest's temp root may still run at the end."""
    root = str(tmp_path_factory.getbasetemp())
    yield
    leaks = leftovers(root)
    assert not leaks, "processes or mounts left behind by the test session:\n" + "\n".join(leaks)
