"""GCP and Azure fabrics and placement, checked offline (no google/azurerm provider here).

Golden copies: tests/golden/gcp-a3-16nodes, gcp-c2-16nodes, azure-nd-h100-ib (tasks in
tests/fixtures/fabric/; regenerate with `python tests/golden/update.py`). The modules are
parsed with python-hcl2, formatted with `terraform fmt`, and their variables validated by
`terraform plan` on variables.tf + tfvars alone.
"""

from __future__ import annotations

import pytest

from skyterra.catalog import fabric
from tests.deployments import deployment_for
from tests.terraform.test_gcp_azure_modules import (
    TERRAFORM,
    golden,
    load_module,
    one,
    plan_variables,
    terraform,
)

CASES = {case.name: case for case in golden.FABRIC_CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fabric_golden_copy_matches_a_fresh_render(name, tmp_path):
    golden.render_case(CASES[name], tmp_path / name)
    problems = golden.tree_differences(golden.GOLDEN_DIR / name, tmp_path / name)
    assert not problems, (f"tests/golden/{name} is stale: {problems}; if intended run "
                          "`python tests/golden/update.py` and review the diff")


@pytest.mark.terraform
@pytest.mark.parametrize("name", sorted(CASES))
def test_fabric_golden_copy_is_fmt_clean_and_its_variables_validate(name, tmp_path):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    module = golden.GOLDEN_DIR / name
    done = terraform("fmt", "-check", "-diff", "-no-color", str(module))
    assert done.returncode == 0, done.stdout + done.stderr
    done = plan_variables(module, tmp_path / "vars")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.terraform
@pytest.mark.parametrize("overrides,message", [
    ({"gpu_nic_count": 3}, "gpu_nic_count must be 0, 4"),
    ({"gpu_nic_range": "not-a-range"}, "gpu_nic_range must be"),
    ({"gpu_nic_range": "10.200.0.0/24"}, "gpu_nic_range must be"),
])
def test_gcp_gpu_nic_variables_reject_bad_values(overrides, message, tmp_path):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    done = plan_variables(golden.GOLDEN_DIR / "gcp-a3-16nodes", tmp_path / "vars", overrides)
    assert done.returncode != 0
    assert message in " ".join((done.stdout + done.stderr).split())


# --- GCP: compact placement that scales ------------------------------------------------
@pytest.mark.parametrize("name", ["gcp-a3-16nodes", "gcp-c2-16nodes"])
def test_sixteen_node_compact_placement_has_no_vm_count_and_never_live_migrates(name):
    mod = load_module(golden.GOLDEN_DIR / name)
    assert mod.tfvars["num_nodes"] == 16
    policy = one(mod.resource("google_compute_resource_policy",
                              "placement")["group_placement_policy"])
    # vm_count = 16 would hold every VM until all 16 are requested; Terraform creates
    # 10 at a time, so the apply would wait forever.
    assert policy == {"collocation": "COLLOCATED"}
    assert "vm_count" not in mod.text.split("group_placement_policy", 1)[1].split("}", 1)[0]
    node = mod.resource("google_compute_instance", "node")
    assert node["resource_policies"] == ["${google_compute_resource_policy.placement.self_link}"]
    scheduling = one(node["scheduling"])
    assert scheduling == {"on_host_maintenance": "TERMINATE", "automatic_restart": False}


def test_a3_high_gets_four_gpudirect_nics_in_vpcs_of_their_own():
    mod = load_module(golden.GOLDEN_DIR / "gcp-a3-16nodes")
    assert mod.tfvars["gpu_nic_count"] == 4
    for kind in ("google_compute_network", "google_compute_subnetwork", "google_compute_firewall"):
        assert mod.resource(kind, "gpu")["count"] == "${var.gpu_nic_count}"
    assert mod.resource("google_compute_network", "gpu")["auto_create_subnetworks"] is False
    node = mod.resource("google_compute_instance", "node")
    primary = one(node["network_interface"])
    assert primary["nic_type"] == "GVNIC" and "access_config" in primary
    (extra,) = [d["network_interface"] for d in node["dynamic"] if "network_interface" in d]
    assert extra["for_each"] == "${range(var.gpu_nic_count)}"
    assert extra["content"][0]["nic_type"] == "GVNIC"
    assert "access_config" not in extra["content"][0]   # GPU NICs have no public address


def test_a3_nodes_get_the_tcpx_plugin_environment_and_a_note(tmp_path):
    from skyterra.task import Task

    task = Task.from_yaml(golden.FABRIC_DIR / "a3-16.yaml")
    d = deployment_for(task, golden.GCP_A3_H100X8, options=dict(golden.OPTIONS))
    env = d.cloud.node_env(d)
    assert env["NCCL_GPUDIRECTTCPX_SOCKET_IFNAME"] == "eth1,eth2,eth3,eth4"
    assert env["NCCL_GPUDIRECTTCPX_CTRL_DEV"] == "eth0"
    assert "/usr/local/tcpx/lib64" in env["LD_LIBRARY_PATH"]
    assert any("GPUDirect-TCPX with 4 extra NICs" in n for n in d.cloud.warnings(d))
    standard = Task.from_yaml_config({**task.to_yaml_config(), "resources": {
        "accelerators": "H100:8", "network_tier": "standard"}})
    d = deployment_for(standard, golden.GCP_A3_H100X8, options=dict(golden.OPTIONS))
    assert d.cloud.node_env(d) == {}
    assert d.cloud.template_context(d)["gpu_nics"] is False


def test_cpu_only_c2_cluster_gets_no_gpu_nics():
    mod = load_module(golden.GOLDEN_DIR / "gcp-c2-16nodes")
    assert not mod.has("google_compute_network")
    assert mod.tfvars["gpu_nic_count"] == 0


def test_compact_placement_series_follow_the_gcp_docs():
    supported = ("a2-highgpu-8g", "a3-highgpu-8g", "a3-megagpu-8g", "a3-ultragpu-8g",
                 "a4-highgpu-8g", "g2-standard-48", "c2-standard-16", "c2d-standard-8",
                 "c3-standard-8", "h3-standard-88", "n2-standard-8", "n2d-standard-8")
    for machine in supported:
        assert fabric.family("gcp", machine).placement, machine
    for machine in ("n1-standard-8", "e2-standard-4", "custom-8-30720"):
        assert not fabric.family("gcp", machine).placement, machine


# --- Azure: InfiniBand in one scale set -------------------------------------------------
def test_nd_h100_pair_is_one_scale_set_in_a_proximity_placement_group():
    mod = load_module(golden.GOLDEN_DIR / "azure-nd-h100-ib")
    assert not mod.has("azurerm_linux_virtual_machine")
    assert not mod.has("azurerm_public_ip") and not mod.has("azurerm_network_interface")
    vmss = mod.resource("azurerm_linux_virtual_machine_scale_set", "nodes")
    assert vmss["sku"] == "${var.vm_size}" and vmss["instances"] == "${var.num_nodes}"
    assert mod.tfvars["vm_size"] == "Standard_ND96isr_H100_v5" and mod.tfvars["num_nodes"] == 2
    assert vmss["single_placement_group"] is True and vmss["overprovision"] is False
    assert vmss["proximity_placement_group_id"] == \
        "${azurerm_proximity_placement_group.cluster.id}"
    nic = one(vmss["network_interface"])
    assert nic["network_security_group_id"] == "${azurerm_network_security_group.cluster.id}"
    assert "public_ip_address" in one(nic["ip_configuration"])
    ppg = mod.resource("azurerm_proximity_placement_group", "cluster")
    assert ppg["allowed_vm_sizes"] == ["${var.vm_size}"]
    assert mod.tfvars["image"]["offer"] == "ubuntu-hpc"     # the IB-ready HPC image
    assert mod.outputs["node_ips"]["value"] == "${local.node_public_ips}"
    assert "data.azurerm_virtual_machine_scale_set.nodes.instances" in mod.text


def test_nd_nodes_get_infiniband_nccl_settings():
    from skyterra.task import Task

    task = Task.from_yaml(golden.FABRIC_DIR / "nd-h100-2.yaml")
    d = deployment_for(task, golden.AZURE_ND_H100X8, options=dict(golden.OPTIONS))
    env = d.cloud.node_env(d)
    assert env["NCCL_TOPO_FILE"] == "/opt/microsoft/ndv5-topo.xml"
    assert env["NCCL_IB_PCI_RELAXED_ORDERING"] == "1"


@pytest.mark.parametrize("size,offer", [
    ("Standard_ND96isr_H100_v5", "ubuntu-hpc"), ("Standard_ND96asr_v4", "ubuntu-hpc"),
    ("Standard_NC24ads_A100_v4", "ubuntu-hpc"), ("Standard_NC4as_T4_v3", "ubuntu-2204"),
    ("Standard_NC64as_T4_v3", "ubuntu-2204"), ("Standard_NV36ads_A10_v5", "ubuntu-2204"),
])
def test_azure_images_match_the_sizes_they_support(size, offer):
    from skyterra.clouds.azure import default_image

    assert default_image(size, has_gpu=True)["offer"] == offer
    assert default_image("Standard_D8s_v5", has_gpu=False)["publisher"] == "Canonical"
