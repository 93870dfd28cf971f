"""The AWS module (templates/aws/) rendered from the seed YAMLs, checked with the real binary.

Golden copies: tests/golden/aws-train/ and tests/golden/aws-train-multinode/.
Regenerate them after an intended template or tfvars change, then review the diff:

    python tests/terraform/test_aws_module.py --update

Rendering, `terraform fmt -check`, `terraform init` (provider from the local
mirror) and `terraform validate` need no AWS. The plan tests (`terraform plan
-out` + `terraform show -json`) read data sources (default VPC, subnets,
instance type offerings, the Deep Learning AMI's SSM parameter), so they run
against moto on 127.0.0.1 (tests/moto_server.py); they create nothing.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # for `python tests/terraform/test_aws_module.py --update`
    sys.path.insert(0, str(REPO))

from skyterra.catalog import Candidate
from skyterra.clouds import get_cloud
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
from tests.paths import QUICKSTART

# The moto fixtures (session server, dummy-credential env, per-test reset + leak check).
moto_server = moto_fixtures.moto_server
aws_env = moto_fixtures.aws_env
moto = moto_fixtures.moto

GOLDEN = REPO / "tests" / "golden"
SEED = QUICKSTART
CALLER = "203.0.113.7/32"  # TEST-NET-3: never a real caller
KEY_PATH = Path("/nonexistent/skyterra-golden/ssh/id_ed25519")
G6_L4X4 = Candidate(cloud="aws", region="us-east-1", zone="us-east-1a",
                    instance_type="g6.12xlarge", accelerator="L4", accelerator_count=4,
                    vcpus=48, memory_gib=192, price=4.6016)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str                 # golden folder under tests/golden/
    seed: str                 # YAML in examples/quickstart/
    candidate: Candidate
    options: dict[str, Any]   # settings (tests.deployments.deployment_for options)


CASES = {
    "aws-train": Case("aws-train", "train.yaml", G6_L4X4, {"ssh_cidrs": [CALLER]}),
    "aws-train-multinode": Case(
        "aws-train-multinode", "train-multinode.yaml",
        dataclasses.replace(G6_L4X4, use_spot=True, price=1.9),
        {"ssh_cidrs": [CALLER], "placement_group": True}),
}


def render(task: Task, candidate: Candidate, out_dir: Path, options: dict[str, Any],
           name: str = "mingpt") -> list[Path]:
    """Render exactly as a launch does, with a fixed key and caller."""
    return render_deployment(deployment_for(task, candidate, directory=out_dir, name=name,
                                            public_key=TEST_PUBLIC_KEY,
                                            private_key_path=KEY_PATH, options=dict(options)))


def render_case(case: Case, out_dir: Path, **extra_options: Any) -> Path:
    task = Task.from_yaml(SEED / case.seed)
    render(task, case.candidate, out_dir, {**case.options, **extra_options})
    return out_dir


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and ".terraform" not in p.parts}


def variant_task(resources: dict[str, Any], num_nodes: int = 1) -> Task:
    return Task.from_yaml_config({"name": "t", "run": "true", "num_nodes": num_nodes,
                                  "resources": {"accelerators": "L4:4", **resources}})


# Every Jinja branch: network (default VPC / given VPC / given subnet), image (SSM /
# custom AMI / SSM path), spot, ports, labels, disk tier.
VARIANTS = {
    "vpc-custom-ami-ports-labels": (
        variant_task({"image_id": "ami-0123456789abcdef0", "ports": [8080, "9000-9010"],
                      "labels": {"team": "ml"}, "disk_size": 512, "disk_tier": "high"}),
        G6_L4X4, {"ssh_cidrs": [CALLER, "2001:db8::7/128"], "vpc_id": "vpc-0123456789abcdef0"}),
    "subnet-ssm-image-spot": (
        variant_task({"image_id": "ssm:/aws/service/ami-amazon-linux-latest/"
                      "al2023-ami-kernel-default-x86_64", "use_spot": True}, num_nodes=3),
        dataclasses.replace(G6_L4X4, use_spot=True, zone=None),
        {"ssh_cidrs": [CALLER], "subnet_id": "subnet-0123456789abcdef0",
         "associate_public_ip": True, "port_cidrs": ["198.51.100.0/24"]}),
    "docker-image": (
        variant_task({"image_id": "docker:nvcr.io/nvidia/pytorch:24.05-py3"}, num_nodes=2),
        G6_L4X4, {"ssh_cidrs": [CALLER]}),
    "autodown": (   # instance_initiated_shutdown_behavior = "terminate"
        variant_task({"autostop": {"idle_minutes": 30, "down": True}}, num_nodes=2),
        G6_L4X4, {"ssh_cidrs": [CALLER]}),
}


# --- rendering -------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_seed_renders_byte_identical_to_its_golden_copy(case, tmp_path):
    first = tree(render_case(CASES[case], tmp_path / "a"))
    second = tree(render_case(CASES[case], tmp_path / "b"))
    assert first == second, "rendering is not deterministic"
    golden = tree(GOLDEN / case)
    assert golden, f"no golden copy; run: python {Path(__file__).relative_to(REPO)} --update"
    assert sorted(first) == sorted(golden)
    for name in first:
        assert first[name] == golden[name], (
            f"{case}/{name} differs from the golden copy; if intended, run "
            f"`python {Path(__file__).relative_to(REPO)} --update` and review the diff")


def test_seed_renders_keep_values_in_tfvars_only(tmp_path):
    out = render_case(CASES["aws-train-multinode"], tmp_path / "m")
    tfvars = json.loads((out / TFVARS_FILE).read_text())
    assert tfvars["num_nodes"] == 2
    assert tfvars["instance_type"] == "g6.12xlarge"
    assert tfvars["ssh_cidrs"] == [CALLER]
    assert tfvars["image_id"] is None
    assert tfvars["image_ssm_parameter"] == DLAMI_SSM_PARAMETERS["x86_64"]
    assert tfvars["ssh_user"] == "ubuntu"
    assert tfvars["disk_size"] == 256
    hcl = (out / "main.tf").read_text() + (out / "outputs.tf").read_text()
    for value in ("g6.12xlarge", "203.0.113.7", "us-east-1a", TEST_PUBLIC_KEY.split()[1],
                  "mingpt"):
        assert value not in hcl, f"{value!r} was pasted into HCL"
    assert "instance_market_options" in (out / "main.tf").read_text()
    assert "moto_override.tf" not in {p.name for p in out.iterdir()}


def test_a_template_looking_label_reaches_tfvars_and_never_hcl(tmp_path):
    task = variant_task({"labels": {"owner": "${file(\"/etc/passwd\")}",
                                    "team": "%{ for x in y }"}})
    render(task, G6_L4X4, tmp_path, {"ssh_cidrs": [CALLER]})
    assert "passwd" not in "".join(p.read_text() for p in tmp_path.glob("*.tf"))
    assert json.loads((tmp_path / TFVARS_FILE).read_text())["labels"]["owner"] == \
        '${file("/etc/passwd")}'


# --- terraform fmt / init / validate ------------------------------------------------------

def _all_renders(tmp_path: Path) -> list[Path]:
    dirs = [render_case(case, tmp_path / name) for name, case in sorted(CASES.items())]
    for name, (task, candidate, options) in sorted(VARIANTS.items()):
        render(task, candidate, tmp_path / name, options)
        dirs.append(tmp_path / name)
    render_case(CASES["aws-train"], tmp_path / "moto-override",
                aws_endpoint_url="http://127.0.0.1:5000")
    dirs.append(tmp_path / "moto-override")
    return dirs


@pytest.mark.terraform
def test_every_rendered_variant_is_terraform_fmt_clean(tmp_path):
    for module in _all_renders(tmp_path):
        result = terraform(module, "fmt", "-check", "-diff", "-no-color", check=False)
        assert result.returncode == 0, f"{module.name} is not formatted:\n{result.output}"


@pytest.mark.terraform
def test_every_rendered_variant_inits_from_the_mirror_and_validates(tmp_path):
    for module in _all_renders(tmp_path):
        terraform(module, "init", "-input=false", "-no-color", "-backend=false")
        result = terraform(module, "validate", "-no-color")
        assert "Success" in result.stdout, f"{module.name}: {result.output}"


# --- plan (data sources answered by moto) ----------------------------------------------

def _plan(moto, module: Path) -> dict[str, dict]:
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    terraform(module, "init", "-input=false", "-no-color")
    return planned_resources(terraform_plan_json(module))


def _ingress(sg: dict) -> list[dict]:
    return sorted(sg["values"]["ingress"], key=lambda r: (r["from_port"], r["description"]))


@pytest.mark.terraform
@pytest.mark.moto
def test_multinode_plan_has_two_spot_nodes_in_a_placement_group_reachable_only_from_caller(
        moto, tmp_path):
    module = render_case(CASES["aws-train-multinode"], tmp_path / "m",
                         aws_endpoint_url=moto.url)
    resources = _plan(moto, module)

    nodes = [resources[f"aws_instance.node[{k}]"]["values"] for k in range(2)]
    assert "aws_instance.node[2]" not in resources
    for rank, node in enumerate(nodes):
        assert node["instance_type"] == "g6.12xlarge"
        assert node["ami"] == MOTO_UBUNTU_DLAMI  # from the DLAMI SSM parameter
        (market,) = node["instance_market_options"]
        assert market["market_type"] == "spot"
        assert market["spot_options"][0]["instance_interruption_behavior"] == "terminate"
        assert market["spot_options"][0]["spot_instance_type"] == "one-time"
        assert node["placement_group"] == "skyterra-mingpt"
        assert node["key_name"] == "skyterra-mingpt"
        (root,) = node["root_block_device"]
        assert (root["volume_size"], root["volume_type"], root["delete_on_termination"]) == \
            (256, "gp3", True)
        assert node["tags"] == {"Name": "mingpt-head" if rank == 0 else "mingpt-worker1",
                                "skyterra-cluster": "mingpt", "skyterra-node-rank": str(rank)}
        assert node["metadata_options"][0]["http_tokens"] == "required"

    group = resources["aws_placement_group.cluster[0]"]["values"]
    assert (group["name"], group["strategy"]) == ("skyterra-mingpt", "cluster")

    sg = resources["aws_security_group.cluster"]["values"]
    ssh, everything_inside = [r for r in _ingress({"values": sg}) if r["from_port"] == 22], \
        [r for r in _ingress({"values": sg}) if r["protocol"] == "-1"]
    assert [(r["cidr_blocks"], r["ipv6_cidr_blocks"], r["protocol"]) for r in ssh] == \
        [([CALLER], [], "tcp")]
    assert [(r["self"], r["cidr_blocks"]) for r in everything_inside] == [(True, [])]
    assert len(sg["ingress"]) == 2
    assert not any("0.0.0.0/0" in r["cidr_blocks"] for r in sg["ingress"])
    assert sg["egress"][0]["cidr_blocks"] == ["0.0.0.0/0"]

    key = resources["aws_key_pair.cluster"]["values"]
    assert key["public_key"] == TEST_PUBLIC_KEY


@pytest.mark.terraform
@pytest.mark.moto
def test_single_node_plan_opens_task_ports_to_the_caller_and_tags_labels_literally(
        moto, tmp_path):
    task = variant_task({"ports": [8080, "9000-9010"], "disk_size": 100,
                         "labels": {"team": "ml", "owner": "${path.module}"}})
    render(task, G6_L4X4, tmp_path, {"ssh_cidrs": [CALLER], "aws_endpoint_url": moto.url})
    resources = _plan(moto, tmp_path)

    node = resources["aws_instance.node[0]"]["values"]
    assert not node.get("instance_market_options")  # on-demand: no spot block
    assert node.get("placement_group") in (None, "")
    assert not any(a.startswith("aws_placement_group") for a in resources)
    assert node["root_block_device"][0]["volume_size"] == 100
    assert node["tags"]["owner"] == "${path.module}"  # arrived literally, not interpolated
    assert node["tags"]["team"] == "ml"
    ports = [(r["from_port"], r["to_port"], r["cidr_blocks"])
             for r in resources["aws_security_group.cluster"]["values"]["ingress"]
             if r["description"] == "Task port(s)"]
    assert sorted(ports) == [(8080, 8080, [CALLER]), (9000, 9010, [CALLER])]


@pytest.mark.terraform
@pytest.mark.moto
@pytest.mark.parametrize("zone, instance_type, image_id, kind, text", [
    ("us-east-1e", "g6.12xlarge", None, "capacity",
     "is not supported in your requested Availability Zone (us-east-1e)"),
    ("us-east-1a", "g6.48bogus", None, "invalid", "InvalidInstanceType"),
    ("us-east-1a", "g5g.xlarge", MOTO_UBUNTU_DLAMI, "invalid",
     "the architecture 'x86_64' of the AMI"),
], ids=["zone-without-the-type", "unknown-type", "arm-type-x86-ami"])
def test_plan_refuses_before_creating_anything(moto, tmp_path, zone, instance_type, image_id,
                                               kind, text):
    candidate = dataclasses.replace(G6_L4X4, zone=zone, instance_type=instance_type)
    render(variant_task({"image_id": image_id} if image_id else {}), candidate, tmp_path,
           {"ssh_cidrs": [CALLER], "aws_endpoint_url": moto.url})
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    terraform(tmp_path, "init", "-input=false", "-no-color")
    result = terraform(tmp_path, "plan", "-input=false", "-no-color", "-out=plan.tfplan",
                       check=False)
    assert result.returncode != 0
    assert text in " ".join(result.output.split()), result.output
    assert get_cloud("aws").classify_error(result.output) == kind


# --- golden copies -------------------------------------------------------------------------

def update_golden() -> None:
    import shutil
    import tempfile

    for name, case in sorted(CASES.items()):
        with tempfile.TemporaryDirectory() as tmp:
            fresh = render_case(case, Path(tmp) / name)
            target = GOLDEN / name
            changed = tree(fresh) != tree(target)
            if changed:
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(fresh, target)
            print(f"{name}: {'updated' if changed else 'unchanged'}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: python {sys.argv[0]} --update   (regenerate tests/golden/aws-*/)")
    update_golden()


@pytest.mark.terraform
@pytest.mark.moto
def test_a_bucket_mount_gives_the_nodes_a_role_scoped_to_exactly_that_bucket(moto, tmp_path):
    task = Task.from_yaml_config({"name": "t", "run": "true", "num_nodes": 2,
                                  "resources": {"accelerators": "L4:4"},
                                  "file_mounts": {"/data": "s3://train-data-7/part",
                                                  "/ck": {"name": "ckpt-7", "store": "s3",
                                                          "mode": "MOUNT_CACHED"}}})
    module = tmp_path / "m"
    render(task, G6_L4X4, module, {"ssh_cidrs": [CALLER], "aws_endpoint_url": moto.url})
    resources = _plan(moto, module)
    policy = json.loads(resources["aws_iam_role_policy.buckets"]["values"]["policy"])
    named = sorted(r for statement in policy["Statement"] for r in statement["Resource"])
    assert named == ["arn:aws:s3:::ckpt-7", "arn:aws:s3:::ckpt-7/*",
                     "arn:aws:s3:::train-data-7", "arn:aws:s3:::train-data-7/*"]
    trust = json.loads(resources["aws_iam_role.nodes"]["values"]["assume_role_policy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    profile = resources["aws_iam_instance_profile.nodes"]["values"]
    assert profile["name"] == "skyterra-mingpt-nodes"
    for rank in range(2):
        node = resources[f"aws_instance.node[{rank}]"]["values"]
        assert node["iam_instance_profile"] == "skyterra-mingpt-nodes"
    tfvars = json.loads((module / TFVARS_FILE).read_text())
    assert tfvars["storage_buckets"] == ["ckpt-7", "train-data-7"]
    assert "AKIA" not in "".join(p.read_text() for p in module.glob("*.tf"))


def test_a_docker_image_plans_the_default_ami_with_metadata_hop_limit_2_and_a_runtime_boot(
        moto, tmp_path):
    task, candidate, options = VARIANTS["docker-image"]
    render(task, candidate, tmp_path, {**options, "aws_endpoint_url": moto.url})
    tfvars = json.loads((tmp_path / "terraform.tfvars.json").read_text())
    assert tfvars["metadata_hop_limit"] == 2
    assert "nvidia-container-toolkit" in tfvars["container_setup_script"]
    assert tfvars["image_id"] is None               # the container is no machine image
    resources = _plan(moto, tmp_path)
    for rank in range(2):
        node = resources[f"aws_instance.node[{rank}]"]["values"]
        assert node["ami"] == MOTO_UBUNTU_DLAMI       # the DLAMI has docker + toolkit
        options_block = node["metadata_options"][0]
        assert options_block["http_put_response_hop_limit"] == 2
        assert options_block["http_tokens"] == "required"


def test_without_a_docker_image_the_module_has_no_container_variables(tmp_path):
    task, candidate, options = VARIANTS["vpc-custom-ami-ports-labels"]
    render(task, candidate, tmp_path, options)
    assert not (tmp_path / "container.tf").exists()
    assert "hop_limit" not in (tmp_path / "main.tf").read_text()
    assert "metadata_hop_limit" not in (tmp_path / "terraform.tfvars.json").read_text()
