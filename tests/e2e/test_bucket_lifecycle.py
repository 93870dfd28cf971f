"""The life of a bucket skyterra creates, beyond the happy path of test_bucket_mounts.py.

* A store that cannot be reached when its last cluster is destroyed: `destroy`
  still finishes and forgets the cluster (its nodes are gone); the
  `persistent: false` bucket is named in a warning with the command to delete
  it later, and keeps its record and Terraform state.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes
from tests.storage_emulators import gcs_emulator  # noqa: F401

pytestmark = pytest.mark.e2e


def test_destroy_with_the_store_down_forgets_the_cluster_and_keeps_the_bucket(
        skyterra_home, tmp_path, gcs_emulator):  # noqa: F811
    scratch = f"scratch-{uuid.uuid4().hex[:8]}"
    task = write_task(tmp_path, f"""
file_mounts:
  /scratch:
    name: {scratch}
    store: gcs
    mode: MOUNT
    persistent: false
run: echo written > /scratch/a.txt
""")
    skyterra("launch", str(task), "--cloud", "local", "-c", "bkdown", "-y", timeout=600)
    assert scratch in gcs_emulator.buckets()
    gcs_emulator.stop()

    done = skyterra("destroy", "bkdown", "-y", timeout=600)
    output = done.stdout + done.stderr
    assert f"WARNING: bucket {scratch} (persistent: false) was not deleted" in output
    assert f"skyterra storage delete {scratch}" in output and "Traceback" not in output
    assert leftover_processes(str(skyterra_home)) == []
    assert "bkdown" not in skyterra("status").stdout
    # nothing lost: the record (no cluster left) and the state that still has the bucket
    listed = json.loads(skyterra("storage", "ls", "--json").stdout)
    assert [(b["name"], b["clusters"], b["persistent"]) for b in listed] == [
        (scratch, [], False)]
    state = subprocess.run(["terraform", "state", "list"], cwd=skyterra_home / "storage" /
                           scratch, capture_output=True, text=True, check=True, timeout=120)
    assert state.stdout.split() == ["terraform_data.bucket"]
    # deleting it later, with the store still down, fails clearly and keeps it again
    later = skyterra("storage", "delete", scratch, "-y", check=False, timeout=600)
    assert later.returncode != 0 and f"could not delete bucket gs://{scratch}" in later.stderr
    assert (skyterra_home / "storage" / scratch / "terraform.tfstate").exists()
