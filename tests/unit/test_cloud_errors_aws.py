"""AWS: error classes on real EC2 texts, credential reports, rendering decisions.

The error texts are what Terraform prints when the AWS provider passes on an
EC2/STS error (wrapped over lines the way Terraform wraps them); failover
(provision.py) acts on the kind: capacity and quota → try the next candidate,
auth and invalid → stop and tell the user. No process, no network.
"""

from __future__ import annotations

import builtins
import dataclasses

import pytest

from skyterra.clouds import aws as aws_mod
from skyterra.clouds import get_cloud
from skyterra.errors import ConfigError, TaskError
from skyterra.optimizer import Candidate
from skyterra.task import Task
from tests.deployments import deployment_for

AWS_ERRORS = [
    # --- capacity -------------------------------------------------------------------
    ("capacity", """Error: creating EC2 Instance: operation error EC2: RunInstances, https
response error StatusCode: 500, RequestID: 7c1f0a5e-2b7e-4c55-9d1d-1f0e4a0e2c11, api error
InsufficientInstanceCapacity: We currently do not have sufficient p5.48xlarge capacity in the
Availability Zone you requested (us-east-1a). Our system will be working on provisioning
additional capacity. You can currently get p5.48xlarge capacity by not specifying an
Availability Zone in your request or choosing us-east-1b, us-east-1c."""),
    ("capacity", """Error: creating EC2 Instance: operation error EC2: RunInstances, https
response error StatusCode: 400, RequestID: 1d0c, api error Unsupported: Your requested
instance type (g6.12xlarge) is not supported in your requested Availability Zone
(us-east-1e). Please retry your request by not specifying an Availability Zone or choosing
us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f."""),
    ("capacity", ("api error Unsupported: The requested configuration is currently not "
                 "supported. Please check the documentation for supported configurations.")),
    ("capacity", ("api error InsufficientCapacity: There is not enough capacity to fulfill "
                 "your request.")),
    ("capacity", ("Error: creating EC2 Instance: api error SpotMaxPriceTooLow: Your Spot "
                 "request price of 0.5 is lower than the minimum required Spot request "
                 "fulfillment price of 1.2.")),
    ("capacity", ("Error: waiting for Spot Instance Request (sir-abcd1234) fulfillment: "
                 "unexpected state 'capacity-not-available', wanted target 'fulfilled'.")),
    ("capacity", ("api error InsufficientInstanceCapacity: There is no Spot capacity available "
                 "that matches your request.")),
    ("capacity", ("api error InsufficientFreeAddressesInSubnet: There are not enough free "
                 "addresses in subnet 'subnet-0a1b2c3d' to satisfy the requested number of "
                 "instances.")),
    # our own plan-time check, worded like EC2 (templates/aws/main.tf.j2)
    ("capacity", """Error: Resource postcondition failed

  on main.tf line 40, in data "aws_ec2_instance_type_offerings" "zones":
  40:       condition     = length([for z in self.locations : z if var.zone == null || z == var.zone]) > 0

Unsupported: Your requested instance type (g6.12xlarge) is not supported in
your requested Availability Zone (us-east-1e)."""),
    # --- quota ----------------------------------------------------------------------
    ("quota", """Error: creating EC2 Instance: operation error EC2: RunInstances, https
response error StatusCode: 400, RequestID: 9f2e, api error VcpuLimitExceeded: You have
requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket
that the specified instance type belongs to. Please visit
http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit."""),
    ("quota", "api error MaxSpotInstanceCountExceeded: Max spot instance count exceeded"),
    ("quota", ("api error InstanceLimitExceeded: Your quota allows for 0 more running "
              "instance(s). You requested at least 2.")),
    ("quota", ("api error SecurityGroupLimitExceeded: The maximum number of security groups "
              "for VPC 'vpc-0123' has been reached.")),
    # --- auth -----------------------------------------------------------------------
    ("auth", ("Error: creating EC2 Instance: api error AuthFailure: AWS was not able to "
             "validate the provided access credentials")),
    ("auth", """Error: creating EC2 Instance: operation error EC2: RunInstances, https
response error StatusCode: 403, RequestID: 55aa, api error UnauthorizedOperation: You are
not authorized to perform this operation. User: arn:aws:iam::123456789012:user/ci is not
authorized to perform: ec2:RunInstances on resource: arn:aws:ec2:us-east-1:123456789012:
instance/* because no identity-based policy allows the ec2:RunInstances action."""),
    ("auth", """Error: Retrieving AWS account details: validating provider credentials:
retrieving caller identity from STS: operation error STS: GetCallerIdentity, https response
error StatusCode: 403, RequestID: 0b1c, api error InvalidClientTokenId: The security token
included in the request is invalid."""),
    ("auth", """Error: No valid credential sources found

  with provider["registry.terraform.io/hashicorp/aws"],
  on main.tf line 8, in provider "aws":
   8: provider "aws" {

Please see https://registry.terraform.io/providers/hashicorp/aws
for more information about providing credentials.

Error: failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds:
GetMetadata, request canceled, context deadline exceeded"""),
    ("auth", "api error ExpiredToken: The security token included in the request is expired"),
    ("auth", ("api error SignatureDoesNotMatch: The request signature we calculated does not "
             "match the signature you provided.")),
    ("auth", ("api error OptInRequired: You are not subscribed to this service. Please go to "
             "http://aws.amazon.com to subscribe.")),
    # --- invalid --------------------------------------------------------------------
    ("invalid", ("api error InvalidParameterValue: Invalid value 'g6.48bogus' for "
                "InstanceType.")),
    ("invalid", ("api error InvalidAMIID.Malformed: Invalid id: \"ami-xyz\" (expecting "
                "\"ami-...\")")),
    ("invalid", ("api error InvalidAMIID.NotFound: The image id '[ami-0123456789abcdef0]' does "
                "not exist")),
    ("invalid", ("Error: reading EC2 Instance Type (g6.48bogus): operation error EC2: "
                "DescribeInstanceTypes, https response error StatusCode: 400, api error "
                "InvalidInstanceType: The following supplied instance types do not exist: "
                "[g6.48bogus]")),
    ("invalid", "g6.48bogus is not a valid instance type"),
    ("invalid", ("api error InvalidKeyPair.Format: Key is not in valid OpenSSH public key "
                "format")),
    ("invalid", ("api error InvalidSubnetID.NotFound: The subnet ID 'subnet-0123' does not "
                "exist")),
    ("invalid", ("api error InvalidParameterCombination: The specified instance type cannot "
                "be used with a cluster placement group.")),
    ("invalid", """Error: Invalid value for variable

  on terraform.tfvars.json line 3:
   3:   "disk_size": 4,

The disk_size must be a whole number of GiB from 8 to 16384 (the gp3 limit)."""),
    ("invalid", ("Error: reading SSM Parameter (/aws/service/deeplearning/ami/x86_64/nope): "
                "operation error SSM: GetParameter, api error ParameterNotFound")),
    # the provider looks the AMI up before RunInstances; gone (or deregistered) by then:
    ("invalid", """Error: collecting instance settings: empty result

  with aws_instance.node[0],
  on main.tf line 186, in resource "aws_instance" "node":"""),
    ("invalid", "Error: collecting instance settings: couldn't find resource"),
    # the module's own AMI lookup (data "aws_ami" "custom") finding nothing:
    ("invalid", ("Error: Your query returned no results. Please change your search criteria "
                "and try again.")),
    # --- other ----------------------------------------------------------------------
    ("other", "api error RequestLimitExceeded: Request limit exceeded."),
    ("other", ("Error: timeout while waiting for state to become 'running' (last state: "
              "'pending', timeout: 10m0s)")),
    ("other", "api error InternalError: An internal error has occurred"),
]


@pytest.mark.parametrize("kind, text", AWS_ERRORS,
                         ids=[f"{k}-{i}" for i, (k, _) in enumerate(AWS_ERRORS)])
def test_real_aws_error_texts_are_classified(kind, text):
    assert get_cloud("aws").classify_error(text) == kind


def test_every_kind_failover_reads_has_patterns():
    kinds = {kind for kind, _ in aws_mod.AWS.error_patterns}
    assert kinds == {"capacity", "quota", "auth", "invalid"}


# --- instance types, images, users -----------------------------------------------------

@pytest.mark.parametrize("instance_type, arch", [
    ("g6.12xlarge", "x86_64"), ("p5.48xlarge", "x86_64"), ("g4dn.xlarge", "x86_64"),
    ("p5en.48xlarge", "x86_64"), ("m7i-flex.large", "x86_64"), ("gr6.4xlarge", "x86_64"),
    ("g5g.xlarge", "arm64"), ("c7gn.large", "arm64"), ("t4g.micro", "arm64"),
    ("im4gn.large", "arm64"), ("p6e-gb200.36xlarge", "arm64"),
])
def test_architecture_follows_the_instance_family(instance_type, arch):
    assert aws_mod.architecture(instance_type) == arch


@pytest.mark.parametrize("image, user", [
    (aws_mod.DLAMI_SSM_PARAMETERS["x86_64"], "ubuntu"),
    (aws_mod.UBUNTU_SSM_PARAMETERS["arm64"], "ubuntu"),
    ("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", "ec2-user"),
    (("/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/"
     "latest/ami-id"), "ec2-user"),
])
def test_ssh_user_follows_the_image_family(image, user):
    assert aws_mod.ssh_user_for_image(image) == user


def test_zone_names_give_their_region():
    assert aws_mod.region_of_zone("us-east-1a") == "us-east-1"
    assert aws_mod.region_of_zone("us-west-2-lax-1a") == "us-west-2"
    with pytest.raises(TaskError):
        aws_mod.region_of_zone("local-a")


# --- template context and tfvars ------------------------------------------------------

CALLER = "203.0.113.7/32"
L4X4 = Candidate(cloud="aws", region="us-east-1", zone="us-east-1a",
                 instance_type="g6.12xlarge", accelerator="L4", accelerator_count=4, vcpus=48,
                 memory_gib=192, price=4.6)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICim6VOMVEfV+oLtpHquYeWM/79A6r84LA7DFtplx1sQ k"


def task_with(num_nodes: int = 1, **resources) -> Task:
    return Task.from_yaml_config({"run": "true", "num_nodes": num_nodes,
                                  "resources": {"accelerators": "L4:4", **resources}})


def deploy(task: Task | None = None, candidate: Candidate = L4X4, **options):
    return deployment_for(task or task_with(), candidate, public_key=KEY + "\n",
                          options={"ssh_cidrs": [CALLER], **options})


def both(task: Task, candidate: Candidate = L4X4, **options):
    d = deploy(task, candidate, **options)
    return d.cloud.template_context(d), d.cloud.tfvars(d)


def test_the_seed_resources_render_the_dlami_on_the_default_network():
    context, tfvars = both(task_with())
    assert context == {"network": "default", "custom_image": False, "spot": False,
                       "efa": False, "storage": False, "container": False,
                       "shutdown_behavior": False}
    assert "shutdown_behavior" not in tfvars  # autostop never asked: no attribute at all
    assert tfvars["image_ssm_parameter"] == aws_mod.DLAMI_SSM_PARAMETERS["x86_64"]
    assert tfvars["image_id"] is None
    assert tfvars["ssh_user"] == "ubuntu"
    assert tfvars["ssh_public_key"] == KEY  # trailing newline stripped
    assert tfvars["ssh_cidrs"] == [CALLER]
    assert (tfvars["disk_size"], tfvars["disk_iops"], tfvars["disk_throughput"]) == \
        (256, None, None)
    assert (tfvars["vpc_id"], tfvars["subnet_id"], tfvars["associate_public_ip"]) == \
        (None, None, None)
    assert tfvars["placement_group"] is True
    assert tfvars["zone"] == "us-east-1a"


def test_spot_is_structure_and_every_value_is_a_tfvar():
    spot = dataclasses.replace(L4X4, use_spot=True, num_nodes=2)
    context, tfvars = both(task_with(2, use_spot=True), spot)
    assert context["spot"] is True
    assert tfvars["num_nodes"] == 2
    for value in context.values():
        assert isinstance(value, (bool, str)) and value in (True, False, "default", "vpc",
                                                            "subnet")


def test_a_custom_ami_and_resources_values_reach_tfvars():
    task = task_with(image_id="ami-0123456789abcdef0", disk_size=1024, disk_tier="ultra",
                     ports=[8080, "9000-9010"], labels={"team": "ml"})
    context, tfvars = both(task)
    assert context["custom_image"] is True
    assert tfvars["image_id"] == "ami-0123456789abcdef0"
    assert tfvars["ssh_user"] == "ubuntu"
    assert (tfvars["disk_size"], tfvars["disk_iops"], tfvars["disk_throughput"]) == \
        (1024, 16000, 1000)
    assert tfvars["ports"] == [{"from_port": 8080, "to_port": 8080},
                               {"from_port": 9000, "to_port": 9010}]
    assert tfvars["labels"] == {"team": "ml"}


def test_an_ssm_image_path_and_a_configured_user():
    task = task_with(image_id="ssm:/aws/service/ami-amazon-linux-latest/"
                              "al2023-ami-kernel-default-x86_64")
    context, tfvars = both(task)
    assert context["custom_image"] is False
    assert tfvars["image_ssm_parameter"].startswith("/aws/service/ami-amazon-linux-latest/")
    assert tfvars["ssh_user"] == "ec2-user"
    _, tfvars = both(task_with(image_id="ami-0123456789abcdef0"), ssh_user="ec2-user")
    assert tfvars["ssh_user"] == "ec2-user"


def test_a_bad_image_id_is_a_task_error():
    with pytest.raises(TaskError, match="not an AMI id"):
        both(task_with(image_id="projects/p/global/images/x"))


def test_graviton_and_cpu_only_nodes_get_matching_images():
    graviton = dataclasses.replace(L4X4, instance_type="g5g.xlarge", accelerator="T4",
                                   accelerator_count=1)
    task = Task.from_yaml_config({"run": "true", "resources": {"instance_type": "g5g.xlarge"}})
    assert both(task, graviton)[1]["image_ssm_parameter"] == \
        aws_mod.DLAMI_SSM_PARAMETERS["arm64"]
    cpu = dataclasses.replace(L4X4, instance_type="m7i.2xlarge", accelerator=None,
                              accelerator_count=0)
    task = Task.from_yaml_config({"run": "true", "resources": {"cpus": "8"}})
    assert both(task, cpu)[1]["image_ssm_parameter"] == aws_mod.UBUNTU_SSM_PARAMETERS["x86_64"]


def test_network_options_choose_the_network_structure():
    context, tfvars = both(task_with(), L4X4, vpc_id="vpc-0123456789abcdef0")
    assert context["network"] == "vpc" and tfvars["vpc_id"] == "vpc-0123456789abcdef0"
    context, tfvars = both(task_with(), L4X4, subnet_id="subnet-0123456789abcdef0",
                                                  associate_public_ip=False)
    assert context["network"] == "subnet" and tfvars["associate_public_ip"] is False
    with pytest.raises(ConfigError, match="vpc_id"):
        both(task_with(), L4X4, vpc_id="vpc-${var.x}")


def test_ssh_is_never_open_to_the_world_by_default():
    d = deployment_for(task_with(), L4X4)  # no CIDRs known: the module's variable asks
    assert d.ssh_cidrs is None and "ssh_cidrs" not in d.cloud.tfvars(d)
    _, tfvars = both(task_with(), L4X4, ssh_cidrs=["203.0.113.7", "2001:db8::1"],
                     port_cidrs="198.51.100.0/24")
    assert tfvars["ssh_cidrs"] == ["203.0.113.7/32", "2001:db8::1/128"]
    assert tfvars["port_cidrs"] == ["198.51.100.0/24"]
    with pytest.raises(ConfigError, match="not an address"):
        both(task_with(), L4X4, ssh_cidrs=["my laptop"])


def test_the_emulator_override_is_written_only_when_asked_and_only_for_plain_urls():
    aws = get_cloud("aws")
    assert aws.root_files(deploy()) == {}
    files = aws.root_files(deploy(aws_endpoint_url="http://127.0.0.1:5000/"))
    text = files["moto_override.tf"]
    for line in ('ec2 = "http://127.0.0.1:5000"', 'sts = "http://127.0.0.1:5000"',
                 "skip_credentials_validation = true", "skip_requesting_account_id  = true",
                 "skip_metadata_api_check     = true", "max_retries                 = 1"):
        assert line in text
    for bad in ('http://127.0.0.1:5000/"${file("x")}', "file:///etc/passwd",
                "http://127.0.0.1:5000/%{ if true }"):
        with pytest.raises(ConfigError):
            aws.root_files(deploy(aws_endpoint_url=bad))


def test_spot_launches_warn_about_interruptions():
    aws = get_cloud("aws")
    assert aws.warnings(deploy()) == []
    assert "spot" in aws.warnings(deploy(candidate=dataclasses.replace(L4X4, use_spot=True)))[0]
    assert aws.node_resource_address(1) == "aws_instance.node[1]"


# --- credentials ------------------------------------------------------------------------

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


@pytest.fixture
def no_aws(tmp_path, monkeypatch):
    """An environment where boto3 can find nothing (no files, no env, no metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_missing_credentials_say_where_we_looked_and_how_to_fix(no_aws):
    pytest.importorskip("boto3")
    report = get_cloud("aws").check_credentials()
    assert not report.ok
    assert "no AWS credentials found" in report.detail
    assert "aws configure" in report.hint


def test_found_credentials_name_their_source_but_never_the_secret(no_aws, monkeypatch):
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    report = get_cloud("aws").check_credentials()
    assert report.ok
    assert "environment variables" in report.detail and "us-west-2" in report.detail
    assert "…MPLE" in report.detail
    assert SECRET not in report.detail + report.hint
    assert "AKIAIOSFODNN7EXAMPLE" not in report.detail + report.hint


def test_a_profile_from_the_shared_files_is_reported(no_aws, monkeypatch):
    pytest.importorskip("boto3")
    (no_aws / "credentials").write_text(
        f"[train]\naws_access_key_id = AKIAIOSFODNN7PROFILE\naws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("AWS_PROFILE", "train")
    report = get_cloud("aws").check_credentials()
    assert report.ok and "'train'" in report.detail and "credentials file" in report.detail
    assert "no default region" in report.detail
    assert SECRET not in report.detail


def test_an_unknown_profile_is_named(no_aws, monkeypatch):
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_PROFILE", "nope")
    report = get_cloud("aws").check_credentials()
    assert not report.ok and "'nope'" in report.detail and "AWS_PROFILE" in report.hint


def test_without_boto3_the_report_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "boto3" or name.startswith("botocore"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    report = get_cloud("aws").check_credentials()
    assert not report.ok and "skyterra[aws]" in report.hint
