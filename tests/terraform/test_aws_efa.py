"""AWS with network_tier best: EFA per network card, EFA security group, placement, NCCL env.

Plans run against moto on 127.0.0.1 (data sources only; nothing is created), with the
real terraform binary and the hashicorp/aws provider from the local mirror.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from skyterra.catalog import Candidate
from skyterra.clouds.aws import DLAMI_SSM_PARAMETERS
from skyterra.renderer import TFVARS_FILE
from skyterra.renderer import render as render_deployment
from skyterra.task import Task
from tests import moto_server as moto_fixtures
from tests.deployments import deployment_for
from tests.moto_server import (
    MOTO_UBUNTU_DLAMI,
    TEST_PUBLIC_KEY,
    planned_resources,
    terraform,
    terraform_plan_json,
)

moto_server = moto_fixtures.moto_server
aws_env = moto_fixtures.aws_env
moto = moto_fixtures.moto

CALLER = "203.0.113.7/32"
P5 = Candidate(cloud="aws", region="us-east-1", zone="us-east-1a", instance_type="p5.48xlarge",
               accelerator="H100", accelerator_count=8, vcpus=192, memory_gib=2048, price=55.04)
G6 = dataclasses.replace(P5, instance_type="g6.12xlarge", accelerator="L4", accelerator_count=4,
                         vcpus=48, memory_gib=192, price=4.6016)


def task(accelerators: str, num_nodes: int = 2, tier: str | None = None) -> Task:
    resources = {"accelerators": accelerators, **({"network_tier": tier} if tier else {})}
    return Task.from_yaml_config({"name": "t", "run": "true", "num_nodes": num_nodes,
                                  "resources": resources})


def deployment(t: Task, candidate: Candidate, out: Path, **options):
    return deployment_for(t, candidate, directory=out, name="efa", public_key=TEST_PUBLIC_KEY,
                          private_key_path=Path("/nonexistent/k"),
                          options={"ssh_cidrs": [CALLER], **options})


def test_multinode_h100_defaults_to_efa_and_standard_opts_out(tmp_path):
    best = deployment(task("H100:8"), P5, tmp_path / "a")
    render_deployment(best)
    assert json.loads((tmp_path / "a" / TFVARS_FILE).read_text())["efa_interfaces"] == 32
    env = best.cloud.node_env(best)
    assert (env["FI_PROVIDER"], env["FI_EFA_USE_DEVICE_RDMA"]) == ("efa", "1")
    assert 'resource "aws_network_interface" "efa"' in (tmp_path / "a" / "main.tf").read_text()

    standard = deployment(task("H100:8", tier="standard"), P5, tmp_path / "b")
    render_deployment(standard)
    assert json.loads((tmp_path / "b" / TFVARS_FILE).read_text())["efa_interfaces"] == 0
    assert "aws_network_interface" not in (tmp_path / "b" / "main.tf").read_text()
    assert standard.cloud.node_env(standard) == {}

    single = deployment(task("H100:8", num_nodes=1), P5, tmp_path / "c")
    assert single.cloud.node_env(single) == {}   # one node: nothing to talk to


def test_best_on_a_family_without_efa_is_a_noop_with_a_note(tmp_path):
    g6 = deployment(task("L4:4", tier="best"), G6, tmp_path)
    render_deployment(g6)
    assert json.loads((tmp_path / TFVARS_FILE).read_text())["efa_interfaces"] == 0
    notes = " ".join(g6.cloud.warnings(g6))
    assert "network_tier: best has no effect on g6.12xlarge (no EFA" in notes
    assert g6.cloud.node_env(g6) == {}


@pytest.mark.terraform
def test_efa_module_is_fmt_clean_and_validates(tmp_path):
    render_deployment(deployment(task("H100:8"), P5, tmp_path))
    result = terraform(tmp_path, "fmt", "-check", "-diff", "-no-color", check=False)
    assert result.returncode == 0, result.output
    terraform(tmp_path, "init", "-input=false", "-no-color", "-backend=false")
    assert "Success" in terraform(tmp_path, "validate", "-no-color").stdout


@pytest.mark.terraform
@pytest.mark.moto
def test_p5_pair_plans_32_efas_per_node_a_placement_group_and_a_self_referencing_group(
        moto, tmp_path):
    render_deployment(deployment(task("H100:8", tier="best"), P5, tmp_path,
                                 aws_endpoint_url=moto.url))
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    terraform(tmp_path, "init", "-input=false", "-no-color")
    resources = planned_resources(terraform_plan_json(tmp_path))

    efas = {a: r["values"] for a, r in resources.items()
            if a.startswith("aws_network_interface.efa[")}
    assert len(efas) == 64
    for rank in range(2):
        mine = [efas[f"aws_network_interface.efa[{rank * 32 + k}]"] for k in range(32)]
        assert [e["interface_type"] for e in mine] == ["efa"] + ["efa-only"] * 31
        assert {e["tags"]["skyterra-node-rank"] for e in mine} == {str(rank)}
        node = resources[f"aws_instance.node[{rank}]"]["values"]
        cards = sorted((n["network_card_index"], n["device_index"])
                       for n in node["network_interface"])
        assert cards == [(k, 0) for k in range(32)]
        assert node["placement_group"] == "skyterra-efa"
        assert node["instance_type"] == "p5.48xlarge"
        eip = resources[f"aws_eip.node[{rank}]"]["values"]
        assert eip["domain"] == "vpc"

    group = resources["aws_placement_group.cluster[0]"]["values"]
    assert group["strategy"] == "cluster"

    sg = resources["aws_security_group.cluster"]["values"]
    assert next(r for r in sg["ingress"] if r["protocol"] == "-1")["self"] is True
    self_egress = [r for r in sg["egress"] if r["self"]]
    assert [(r["protocol"], r["from_port"], r["to_port"]) for r in self_egress] == \
        [("-1", 0, 0)]


@pytest.mark.terraform
@pytest.mark.moto
def test_g6_pair_plans_one_ordinary_interface_per_node(moto, tmp_path):
    render_deployment(deployment(task("L4:4", tier="best"), G6, tmp_path,
                                 aws_endpoint_url=moto.url))
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    terraform(tmp_path, "init", "-input=false", "-no-color")
    resources = planned_resources(terraform_plan_json(tmp_path))
    assert not [a for a in resources if "network_interface" in a or "aws_eip" in a]
    assert not resources["aws_instance.node[0]"]["values"].get("network_interface")
