"""Bucket file_mounts on the local cloud, against each storage emulator.

One test per store: a 2-node task reads a dataset object through COPY and MOUNT and
writes a checkpoint through MOUNT_CACHED (flushed before the job is reported done);
after destroy the checkpoint is in the bucket, a `persistent: false` bucket is gone,
the others stay; a second cluster reads the checkpoint back.

Buckets skyterra creates are Terraform resources in their own state
(SKYTERRA_HOME/storage/<name>/): aws_s3_bucket with the real provider against
moto, terraform_data + rclone on the GCS and Azure emulators. `storage delete`
destroys that module; it refuses a bucket skyterra did not create.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes
from tests.moto_server import moto_endpoint  # noqa: F401
from tests.storage_emulators import (  # noqa: F401
    azure_emulator,
    gcs_emulator,
    s3_emulator,
)

pytestmark = pytest.mark.e2e

RESOURCE = {"s3": "aws_s3_bucket.bucket", "gcs": "terraform_data.bucket",
            "azure": "terraform_data.bucket"}
URLS = {"s3": "s3://{b}/{p}", "gcs": "gs://{b}/{p}",
        "azure": "https://devstoreaccount1.blob.core.windows.net/{b}/{p}"}


def state_list(home: Path, bucket: str) -> list[str]:
    """`terraform state list` of the bucket's own module, run by the real binary."""
    done = subprocess.run(["terraform", "state", "list"], cwd=home / "storage" / bucket,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split()


def _round_trip(emulator, home, tmp_path) -> None:
    store, tag = emulator.store, uuid.uuid4().hex[:8]
    data, ckpt, scratch = f"data-{tag}", f"ckpt-{tag}", f"scratch-{tag}"
    emulator.rclone("mkdir", f"T:{data}")
    sample = tmp_path / "sample.txt"
    sample.write_text("dataset-object-42\n")
    emulator.put(f"{data}/train/sample.txt", sample)
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "hello.txt").write_text("uploaded-source\n")
    url = URLS[store].format(b=data, p="train")
    task = write_task(tmp_path, f"""
name: buckets
num_nodes: 2
file_mounts:
  /data-copy: {url}
  /data-mount:
    source: {url}
    mode: MOUNT
  /ckpt:
    name: {ckpt}
    store: {store}
    source: ./seed
    mode: MOUNT_CACHED
  /scratch:
    name: {scratch}
    store: {store}
    mode: MOUNT
    persistent: false
run: |
  set -e
  echo "copy=$(cat /data-copy/sample.txt) mount=$(cat /data-mount/sample.txt)"
  echo "seed=$(cat /ckpt/hello.txt)"
  mountpoint -q /data-mount && mountpoint -q /ckpt && ! mountpoint -q /data-copy
  echo "step-$SKYPILOT_NODE_RANK" > /ckpt/rank$SKYPILOT_NODE_RANK.ckpt
  echo scratch > /scratch/rank$SKYPILOT_NODE_RANK.txt
""")
    launched = skyterra("launch", str(task), "--cloud", "local", "-c", "bk1", "-y",
                        timeout=600)
    for label in ("(head, rank=0)", "(worker1, rank=1)"):
        assert f"{label} copy=dataset-object-42 mount=dataset-object-42" in launched.stdout
        assert f"{label} seed=uploaded-source" in launched.stdout
    # flushed before the job ended: the checkpoints are in the bucket already
    assert emulator.cat(f"{ckpt}/rank0.ckpt") == "step-0\n"
    assert emulator.cat(f"{ckpt}/rank1.ckpt") == "step-1\n"
    listed = {b["name"]: b for b in json.loads(skyterra("storage", "ls", "--json").stdout)}
    assert listed[ckpt]["created_by_skyterra"] and listed[scratch]["persistent"] is False
    assert not listed[data]["created_by_skyterra"]
    for bucket in (ckpt, scratch):
        assert state_list(home, bucket) == [RESOURCE[store]]
    assert not (home / "storage" / data / "terraform.tfstate").exists()
    # a bucket skyterra did not create: refused, clearly, and never deleted
    refused = skyterra("storage", "delete", data, "-y", check=False)
    assert refused.returncode != 0 and "was not created by skyterra" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert data in emulator.buckets()

    skyterra("destroy", "bk1", "-y")
    assert leftover_processes(str(home)) == []
    names = emulator.buckets()
    assert scratch not in names and ckpt in names and data in names
    assert not (home / "storage" / scratch).exists()   # destroyed through its module
    assert state_list(home, ckpt) == [RESOURCE[store]]   # outlives the cluster
    assert emulator.cat(f"{data}/train/sample.txt") == "dataset-object-42\n"

    reader = write_task(tmp_path, f"""
name: reader
file_mounts:
  /restore: {URLS[store].format(b=ckpt, p="")}
run: cat /restore/rank1.ckpt
""", name="reader.yaml")
    again = skyterra("launch", str(reader), "--cloud", "local", "-c", "bk2", "-y", timeout=600)
    assert "(head, rank=0) step-1" in again.stdout
    skyterra("destroy", "bk2", "-y")
    # skyterra's own bucket: `storage delete` is its module's terraform destroy
    assert "Deleted" in skyterra("storage", "delete", ckpt, "-y").stdout
    assert ckpt not in emulator.buckets() and data in emulator.buckets()
    assert not (home / "storage" / ckpt).exists()
    # the external bucket was forgotten with its last cluster (skyterra has no state of it)
    assert json.loads(skyterra("storage", "ls", "--json").stdout) == []


def test_s3_copy_mount_and_cached_checkpoints(skyterra_home, tmp_path, s3_emulator):  # noqa: F811
    _round_trip(s3_emulator, skyterra_home, tmp_path)


def test_gcs_copy_mount_and_cached_checkpoints(skyterra_home, tmp_path, gcs_emulator):  # noqa: F811
    _round_trip(gcs_emulator, skyterra_home, tmp_path)


def test_azure_copy_mount_and_cached_checkpoints(skyterra_home, tmp_path, azure_emulator):  # noqa: F811
    _round_trip(azure_emulator, skyterra_home, tmp_path)


def test_a_mount_onto_a_file_is_a_clear_error(skyterra_home, tmp_path, s3_emulator):  # noqa: F811
    s3_emulator.rclone("mkdir", "T:some-data")
    task = write_task(tmp_path, """
file_mounts:
  /etc/hostname:
    source: s3://some-data
    mode: MOUNT
run: echo should-not-run
""")
    failed = skyterra("launch", str(task), "--cloud", "local", "-c", "bkf", "-y", check=False)
    assert failed.returncode != 0 and "should-not-run" not in failed.stdout
    message = failed.stdout + failed.stderr
    assert "/etc/hostname" in message and "exists as a file on the node" in message
    assert "Traceback" not in message
    skyterra("destroy", "bkf", "-y")
