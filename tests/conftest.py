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

# Safety nets against traffic beyond loopback, not settings any test relies on:
# - CHECKPOINT_DISABLE stops the terraform binary's version/alert check (a request to
#   checkpoint-api.hashicorp.com). Its only effect is that request: no output, plan or
#   exit code depends on it, and skyterra sets it itself for every Terraform it runs.
# - AWS_EC2_METADATA_DISABLED stops boto3/botocore, when a test has no AWS credentials,
#   from asking the instance metadata service at 169.254.169.254. Here there is no such
#   service: the answer ("no credentials") is the same, only without a 1-2 s timeout.
# Tests that need an SSH ingress address (SKYTERRA_SSH_CIDRS) set it themselves; see the
# `ssh_cidrs` fixture below.
os.environ["CHECKPOINT_DISABLE"] = "1"
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


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


@pytest.fixture
def ssh_cidrs(monkeypatch):
    """Opt-in: SKYTERRA_SSH_CIDRS=127.0.0.1/32 for this test (and its subprocesses).

    Without a configured address, applying a cluster on aws/gcp/azure asks
    checkip.amazonaws.com for this machine's public address; tests talk to loopback
    only, so a test that applies a cloud cluster asks for this fixture. (Dry runs and
    renders need no address: they leave it to the module's variable.)
    """
    monkeypatch.setenv("SKYTERRA_SSH_CIDRS", "127.0.0.1/32")
    return ["127.0.0.1/32"]


@pytest.fixture(scope="session", autouse=True)
def no_leaks_at_end(tmp_path_factory):
    """Session-wide: nothing under pytest's temp root may still run at the end."""
    root = str(tmp_path_factory.getbasetemp())
    yield
    leaks = leftovers(root)
    assert not leaks, "processes or mounts left behind by the test session:\n" + "\n".join(leaks)
