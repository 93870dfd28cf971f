"""GCP and Azure modules of a task with bucket mounts: the nodes' identity and its roles.

Offline (no google/azurerm provider here): terraform fmt, python-hcl2, the tfvars.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from skyterra.renderer import render
from skyterra.task import Task
from tests.deployments import deployment_for
from tests.terraform.test_gcp_azure_modules import BASE_OPTIONS, BY_ID, KEY, load_module

MOUNTS = {"/data": "gs://train-data-7/part", "/ck": {"name": "ckpt-7", "store": "gcs"},
          "/az": "https://acct7.blob.core.windows.net/box-7/x",
          "/s3": "s3://not-for-gcp"}


def _render(variant_id: str, mounts: dict, out: Path):
    variant = BY_ID[variant_id]
    task = Task.from_yaml_config({"name": "t", "run": "true", "num_nodes": 2,
                                  "resources": dict(variant.resources), "file_mounts": mounts})
    render(deployment_for(task, variant.candidate, directory=out, name="mingpt",
                          public_key=KEY, private_key_path=Path("/x/id"),
                          options=dict(BASE_OPTIONS)))
    if shutil.which("terraform"):
        done = subprocess.run(["terraform", "fmt", "-check", "-diff"], cwd=out,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout
    return load_module(out)


def test_gcp_nodes_get_a_service_account_with_roles_on_exactly_the_gcs_buckets(tmp_path):
    mod = _render("gcp-g2-l4x4", MOUNTS, tmp_path / "g")
    assert mod.tfvars["storage_buckets"] == ["ckpt-7", "train-data-7"]
    assert "rclone fuse3" in mod.tfvars["startup_script"]
    for name, role in (("objects", "roles/storage.objectAdmin"),
                       ("bucket", "roles/storage.legacyBucketReader")):
        member = mod.resource("google_storage_bucket_iam_member", name)
        assert member["role"] == role and "var.storage_buckets" in str(member["for_each"])
    node = mod.resource("google_compute_instance", "node")
    assert "google_service_account.nodes.email" in str(node["service_account"])


def test_azure_nodes_get_a_managed_identity_with_a_blob_role_on_the_containers(tmp_path):
    mod = _render("azure-a100", MOUNTS, tmp_path / "a")
    assert mod.tfvars["storage_containers"] == [{"account": "acct7", "container": "box-7"}]
    assignment = mod.resource("azurerm_role_assignment", "blob")
    assert assignment["role_definition_name"] == "Storage Blob Data Contributor"
    assert "blobServices/default/containers" in str(assignment["scope"])
    node = mod.resource("azurerm_linux_virtual_machine", "node")
    assert "azurerm_user_assigned_identity.nodes.id" in str(node["identity"])


@pytest.mark.parametrize("variant_id", ["gcp-g2-l4x4", "azure-a100"])
def test_no_bucket_of_its_store_means_no_identity(variant_id, tmp_path):
    mod = _render(variant_id, {"/s3": "s3://only-s3-here"}, tmp_path / variant_id)
    assert "storage_buckets" not in mod.tfvars and "storage_containers" not in mod.tfvars
    assert not mod.has("google_service_account") and not mod.has("azurerm_role_assignment")
