"""network_tier and the fabric data: which family gets which fabric, and what a dry run says."""

from __future__ import annotations

import pytest

from skyterra import gpucheck
from skyterra.catalog import fabric
from skyterra.errors import TaskError
from skyterra.resources import Resources, resources_from_config


def test_network_tier_accepts_skypilots_values_and_names_the_field_otherwise():
    assert resources_from_config({"network_tier": "best"}).network_tier == "best"
    assert Resources(network_tier="standard").network_tier == "standard"
    with pytest.raises(TaskError, match=r"resources.network_tier.*unknown network_tier 'bset'"
                                        r".*Did you mean 'best'"):
        resources_from_config({"network_tier": "bset"})


@pytest.mark.parametrize("cloud,instance_type,fabric_name,interfaces", [
    ("aws", "p4d.24xlarge", "efa", 4), ("aws", "p5.48xlarge", "efa", 32),
    ("aws", "p5en.48xlarge", "efa", 16), ("aws", "p6-b200.48xlarge", "efa", 8),
    ("aws", "g6.12xlarge", "", 0), ("aws", "g5.48xlarge", "", 0),
    ("gcp", "a3-highgpu-8g", "gpudirect-tcpx", 4), ("gcp", "a3-megagpu-8g", "gpudirect-tcpxo", 8),
    ("gcp", "g2-standard-48", "", 0),
    ("azure", "Standard_ND96isr_H100_v5", "infiniband-ndv5", 0),
    ("azure", "Standard_ND96asr_v4", "infiniband-ndv4", 0),
    ("azure", "Standard_NC64as_T4_v3", "", 0),
])
def test_families_come_from_the_data_file(cloud, instance_type, fabric_name, interfaces):
    row = fabric.family(cloud, instance_type)
    assert (row.fabric, row.interfaces) == (fabric_name, interfaces)


def test_default_is_best_for_multinode_gpu_and_standard_opts_out():
    assert fabric.choose("aws", "p5.48xlarge", None, 2, has_gpu=True) is not None
    assert fabric.choose("aws", "p5.48xlarge", None, 1, has_gpu=True) is None
    assert fabric.choose("aws", "p5.48xlarge", "standard", 8, has_gpu=True) is None
    assert fabric.choose("aws", "p5.48xlarge", "best", 1, has_gpu=True) is not None
    assert fabric.choose("aws", "g6.12xlarge", "best", 2, has_gpu=True) is None


def test_describe_and_the_noop_note():
    assert fabric.describe("aws", "p5.48xlarge", None, 2, True) == "EFA x32"
    assert fabric.describe("aws", "g6.12xlarge", "best", 2, True) == "no EFA"
    assert fabric.describe("aws", "p5.48xlarge", "standard", 2, True) == "EFA x32 off"
    assert fabric.describe("azure", "Standard_ND96isr_H100_v5", None, 2, True) == "InfiniBand"
    assert fabric.describe("aws", "m6i.large", None, 2, False) == "-"
    note = fabric.best_is_noop_note("aws", "g6.12xlarge", "best")
    assert note and "no EFA" in note
    assert fabric.best_is_noop_note("aws", "p5.48xlarge", "best") is None
    assert fabric.best_is_noop_note("aws", "g6.12xlarge", None) is None


def test_efa_environment_is_data():
    env = fabric.family("aws", "p5.48xlarge").env
    assert env == {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1"}


@pytest.mark.parametrize("yaml_resources,label", [
    ("  instance_type: g6.12xlarge\n  network_tier: best\n", "no EFA"),
    ("  accelerators: H100:8\n", "EFA x32"),
])
def test_dryrun_table_shows_the_fabric_of_each_candidate(tmp_path, monkeypatch,
                                                         yaml_resources, label):
    from click.testing import CliRunner

    from skyterra.cli import main

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "220")
    task = tmp_path / "t.yaml"
    task.write_text(f"num_nodes: 2\nresources:\n{yaml_resources}run: echo hi\n")
    result = CliRunner().invoke(main, ["launch", str(task), "--cloud", "aws", "--dryrun"])
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if "aws" in line and "│" in line]
    assert table and all(line.rstrip(" │").endswith(label) for line in table), result.output
    if label == "no EFA":
        assert "network_tier: best has no effect on g6.12xlarge" in result.output


# --- the GPU check's parsing and verdict (the e2e test runs it over SSH) -----------------
def test_gpu_check_parses_counts_failures_and_hardware_xids():
    ok = gpucheck.parse("gpus 8\n")
    assert gpucheck.verdict(ok, 8) == ""
    assert "shows 7 GPU(s), the task asks for 8" in gpucheck.verdict(gpucheck.parse("gpus 7"), 8)
    failed = gpucheck.parse("nvidia-smi-failed NVIDIA-SMI has failed because it couldn't "
                            "communicate with the NVIDIA driver\n")
    assert "couldn't communicate" in gpucheck.verdict(failed, 8)
    assert "not installed" in gpucheck.verdict(gpucheck.parse("nvidia-smi-missing"), 1)
    xid = gpucheck.parse("gpus 8\nxid-line [ 12.3] NVRM: Xid (PCI:0000:53:00): 79, pid=1, "
                         "GPU has fallen off the bus.\n")
    assert "Xid" in gpucheck.verdict(xid, 8)
    app = gpucheck.parse("gpus 8\nxid-line [ 12.3] NVRM: Xid (PCI:0000:53:00): 13, Graphics "
                         "Exception\n")
    assert gpucheck.verdict(app, 8) == ""       # caused by an application, not the GPU
