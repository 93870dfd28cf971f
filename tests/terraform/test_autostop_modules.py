"""Autostop's part of the GCP and Azure modules, and the node scripts of every cloud.

Offline (no google/azurerm provider here): terraform fmt, python-hcl2, the tfvars.
A GCP or Azure compute API cannot exist here, so the node actions are checked as
scripts (bash -n, what they ask and where the token goes); the watcher that runs
them is run for real in tests/e2e/test_autostop_on_head.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from skyterra import paths
from skyterra.clouds import get_cloud
from skyterra.renderer import render
from skyterra.task import Task
from tests.deployments import deployment_for
from tests.terraform.test_gcp_azure_modules import BASE_OPTIONS, BY_ID, KEY, load_module


def _render(variant_id: str, autostop, out: Path, num_nodes: int = 2, stored=None):
    variant = BY_ID[variant_id]
    resources = dict(variant.resources)
    if autostop is not None:
        resources["autostop"] = autostop
    task = Task.from_yaml_config({"name": "t", "run": "true", "num_nodes": num_nodes,
                                  "resources": resources})
    render(deployment_for(task, variant.candidate, directory=out, name="idle",
                          public_key=KEY, private_key_path=Path("/x/id"),
                          options=dict(BASE_OPTIONS), stored=stored or {}))
    if shutil.which("terraform"):
        done = subprocess.run(["terraform", "fmt", "-check", "-diff"], cwd=out,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout
    return load_module(out)


def test_gcp_autodown_gives_the_nodes_an_account_that_may_delete_exactly_their_instances(
        tmp_path):
    mod = _render("gcp-g2-l4x4", {"idle_minutes": 30, "down": True}, tmp_path / "g")
    assert mod.has("google_service_account", "nodes")
    node = mod.resource("google_compute_instance", "node")
    assert "google_service_account.nodes.email" in str(node["service_account"])
    assert "cloud-platform" in str(node["service_account"])
    binding = mod.resource("google_compute_instance_iam_member", "autodown")
    assert binding["role"] == "roles/compute.instanceAdmin.v1"
    assert "var.num_nodes" in str(binding["count"])
    assert "google_compute_instance.node[count.index].name" in str(binding["instance_name"])
    assert "google_service_account.nodes.email" in str(binding["member"])
    assert not mod.has("google_project_iam_member")   # never project-wide


def test_gcp_autostop_that_stops_needs_no_identity(tmp_path):
    """A guest shutdown stops a GCE instance (TERMINATED, disks kept) by itself."""
    mod = _render("gcp-g2-l4x4", {"idle_minutes": 30}, tmp_path / "g")
    assert not mod.has("google_service_account")
    assert not mod.has("google_compute_instance_iam_member")


@pytest.mark.parametrize("down", [False, True])
def test_azure_autostop_gives_the_nodes_an_identity_with_a_role_on_their_own_vms(
        tmp_path, down):
    mod = _render("azure-a100", {"idle_minutes": 30, "down": down}, tmp_path / "a")
    assert mod.has("azurerm_user_assigned_identity", "nodes")
    node = mod.resource("azurerm_linux_virtual_machine", "node")
    assert "azurerm_user_assigned_identity.nodes.id" in str(node["identity"])
    role = mod.resource("azurerm_role_assignment", "autostop")
    assert role["role_definition_name"] == "Virtual Machine Contributor"
    assert "azurerm_linux_virtual_machine.node[count.index].id" in str(role["scope"])
    assert "azurerm_user_assigned_identity.nodes.principal_id" in str(role["principal_id"])


def test_azure_infiniband_scale_set_gets_the_role_on_the_scale_set(tmp_path):
    mod = _render("azure-nd-a100-3nodes", {"idle_minutes": 30}, tmp_path / "a", num_nodes=3)
    vmss = mod.resource("azurerm_linux_virtual_machine_scale_set", "nodes")
    assert "azurerm_user_assigned_identity.nodes.id" in str(vmss["identity"])
    role = mod.resource("azurerm_role_assignment", "autostop")
    assert "azurerm_linux_virtual_machine_scale_set.nodes.id" in str(role["scope"])


def test_azure_autostop_cancelled_takes_the_identity_away_again(tmp_path):
    mod = _render("azure-a100", {"idle_minutes": 30}, tmp_path / "a",
                  stored={"autostop": {}})   # `skyterra autostop NAME --cancel`
    assert not mod.has("azurerm_user_assigned_identity")
    assert not mod.has("azurerm_role_assignment")


def _script(cloud: str) -> str:
    return get_cloud(cloud).autostop_node_action()


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_every_cloud_has_a_node_action_that_bash_accepts(cloud, tmp_path):
    path = tmp_path / f"{cloud}.sh"
    path.write_text(_script(cloud))
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "shutdown -h now" in _script(cloud)      # the last resort everywhere


def test_the_node_actions_ask_their_own_metadata_service_and_keep_tokens_off_command_lines():
    gcp, azure = _script("gcp"), _script("azure")
    assert "metadata.google.internal/computeMetadata/v1" in gcp
    assert "instance/service-accounts/default/token" in gcp
    assert "compute.googleapis.com/compute/v1/projects/" in gcp and "DELETE" in gcp
    assert "imds=http://169.254.169.254/metadata" in azure
    assert '"identity/oauth2/token?' in azure and "management.azure.com" in azure
    assert "/deallocate?api-version=" in azure and "DELETE" in azure
    for text in (gcp, azure):
        assert "curl -sf -m" in text and "-K -" in text      # the header comes on stdin
        assert '-H "Authorization: Bearer' not in text


def test_the_watcher_and_fire_script_are_one_shared_pair_bash_accepts():
    for name in ("watcher.sh", "fire.sh"):
        path = paths.templates_dir() / "autostop" / name
        done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, (name, done.stderr)
    assert list(paths.templates_dir().rglob("watcher.sh")) == [
        paths.templates_dir() / "autostop" / "watcher.sh"]
