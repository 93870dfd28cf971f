"""AWS: what differs on EC2 — image and ssh user, tfvars, credentials, error texts.

The Terraform module is templates/aws/. This class only chooses its structure
(template_context) and fills its variables (tfvars); it never talks to AWS
except in check_credentials(verify=True) and caller_cidrs(). boto3 is
imported lazily, so `import skyterra` does not need it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import TYPE_CHECKING, Any

from skyterra import autostop, container
from skyterra.catalog import fabric as fabrics
from skyterra.catalog.fabric import chosen_fabric, fabric_notes
from skyterra.clouds import register
from skyterra.clouds.base import (
    WATCHER_GUARD,
    Cloud,
    CloudSettings,
    CredentialReport,
    cidr_list,
)
from skyterra.errors import ConfigError, NotSupportedError, TaskError
from skyterra.resources import machine_image

if TYPE_CHECKING:
    from skyterra.deployment import Deployment

# Public SSM parameters that always name the newest AMI. The Deep Learning Base
# OSS NVIDIA driver AMI has the driver, CUDA, NCCL and EFA; its user is ubuntu.
DLAMI_SSM_PARAMETERS = {
    "x86_64": "/aws/service/deeplearning/ami/x86_64/"
              "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
    "arm64": "/aws/service/deeplearning/ami/arm64/"
             "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
}
# Inferentia and Trainium nodes need the Neuron SDK and driver, not NVIDIA's: AWS's
# Neuron Deep Learning AMI (Ubuntu 22.04, x86_64 only).
NEURON_SSM_PARAMETER = "/aws/service/neuron/dlami/multi-framework/ubuntu-22.04/latest/image_id"
NEURON_ACCELERATORS = ("Inferentia", "Inferentia2", "Trainium", "Trainium2")
# Nodes without a GPU get plain Ubuntu 22.04 (same user, same distribution).
UBUNTU_SSM_PARAMETERS = {
    "x86_64": "/aws/service/canonical/ubuntu/server/22.04/stable/current/"
              "amd64/hvm/ebs-gp2/ami-id",
    "arm64": "/aws/service/canonical/ubuntu/server/22.04/stable/current/"
             "arm64/hvm/ebs-gp2/ami-id",
}

DEFAULT_DISK_SIZE = 256  # GiB; DLAMIs are ~100 GiB and checkpoints need room
# resources.disk_tier -> (gp3 IOPS, gp3 throughput MiB/s); None = gp3 baseline 3000/125.
DISK_TIERS = {
    "low": (None, None),
    "medium": (None, None),
    "high": (6000, 500),
    "ultra": (16000, 1000),
    "best": (16000, 1000),
}

_AMI_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_SSM_IMAGE = re.compile(r"^(?:resolve:)?ssm:(/[A-Za-z0-9_./-]+)$")
_ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?/?$")
_ID = {"vpc_id": re.compile(r"^vpc-[0-9a-f]{8,17}$"),
       "subnet_id": re.compile(r"^subnet-[0-9a-f]{8,17}$")}

# How boto3 names the places it found credentials (Credentials.method).
_CREDENTIAL_SOURCES = {
    "env": "environment variables (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "the shared credentials file (~/.aws/credentials)",
    "config-file": "the AWS config file (~/.aws/config)",
    "sso": "AWS IAM Identity Center (SSO)",
    "assume-role": "an assumed role (role_arn in ~/.aws/config)",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "custom-process": "a credential_process in ~/.aws/config",
    "container-role": "the ECS/EKS container role",
    "iam-role": "the EC2 instance profile (instance metadata)",
}


def architecture(instance_type: str) -> str:
    """'g5g.xlarge', 'c7gn.large', 'p6e-gb200.36xlarge' → 'arm64'; everything else 'x86_64'.

    Graviton families carry a 'g' right after the generation digit (g5g, m7gd,
    c6gn, im4gn, hpc7g); Grace-Blackwell systems are named '-gb'.
    """
    family = instance_type.split(".", 1)[0].lower()
    if "-gb" in family:
        return "arm64"
    match = re.match(r"^[a-z]+\d+([a-z]*)", family)
    return "arm64" if match and "g" in match.group(1) else "x86_64"


def ssh_user_for_image(image: str) -> str:
    """The login user an image family uses: ec2-user for Amazon Linux, ubuntu otherwise."""
    text = image.lower()
    if any(word in text for word in ("amazon-linux", "amzn", "al2023", "al2-", "/al2/")):
        return "ec2-user"
    return "ubuntu"


def region_of_zone(zone: str) -> str:
    """'us-east-1a' → 'us-east-1' (and local zones 'us-west-2-lax-1a' → 'us-west-2')."""
    match = re.match(r"^([a-z]{2}(?:-gov)?-[a-z]+-\d+)", zone)
    if not match:
        raise TaskError(f"{zone!r} is not an AWS availability zone (like 'us-east-1a').",
                        field="resources.zone")
    return match.group(1)


@dataclasses.dataclass(frozen=True)
class AWSSettings(CloudSettings):
    """`provision:` keys for AWS (all optional): an existing network, placement, and an
    emulator endpoint (`aws.endpoint_url` or SKYTERRA_AWS_ENDPOINT_URL; tests, LocalStack)."""

    vpc_id: str | None = None
    subnet_id: str | None = None
    placement_group: bool = True          # a cluster placement group for num_nodes > 1
    associate_public_ip: bool | None = None
    endpoint_url: str | None = None


# Environment variables that give boto3 (and Terraform's provider) credentials or a
# profile/role to load them from.
_AWS_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                       "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@register
class AWS(Cloud):
    name = "aws"
    template = "aws"
    default_ssh_user = "ubuntu"  # the Ubuntu Deep Learning AMI
    node_resource = "aws_instance.node"
    provider_source = "hashicorp/aws"
    settings_class = AWSSettings
    label_key = (r"(?!(?i:aws:))[\w .:/=+\-@]{1,128}",
                 "1-128 letters, digits, spaces or _ . : / = + - @, not starting with 'aws:'")
    supports_autostop = True   # the head's watcher; instances shut down by themselves
    autostop_in_module = True  # instance_initiated_shutdown_behavior

    # First match wins. Texts as EC2 and the Terraform AWS provider print them
    # ("api error InsufficientInstanceCapacity: We currently do not have ...").
    error_patterns = (
        # capacity: another zone/region may work -> failover
        ("capacity", r"InsufficientInstanceCapacity"),
        ("capacity", r"InsufficientHostCapacity|InsufficientReservedInstanceCapacity"),
        ("capacity", r"\bInsufficientCapacity\b"),
        ("capacity", (r"Your requested instance type \(?[\w.-]+\)? is not supported in your "
                     r"requested Availability Zone")),
        ("capacity", r"The requested configuration is currently not supported"),
        ("capacity", r"SpotMaxPriceTooLow|capacity-not-available|capacity-oversubscribed"),
        ("capacity", r"There is no Spot capacity available"),
        ("capacity", r"InsufficientFreeAddressesInSubnet"),
        # quota: the account's limit in this region -> another region may work
        ("quota", r"VcpuLimitExceeded|MaxSpotInstanceCountExceeded|InstanceLimitExceeded"),
        ("quota", r"You have requested more vCPU capacity than your current vCPU limit"),
        ("quota", r"MaxSpotFleetRequestCountExceeded|VolumeLimitExceeded"),
        ("quota", r"AddressLimitExceeded|SecurityGroupLimitExceeded|RulesPerSecurityGroupLimit"),
        ("quota", r"KeyPairLimitExceeded|PlacementGroupLimitExceeded"),
        # auth: fix credentials; no other candidate will do better
        ("auth", r"AuthFailure|UnauthorizedOperation|InvalidClientTokenId|ExpiredToken"),
        ("auth", r"no valid credential sources|failed to refresh cached credentials"),
        ("auth", r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|OptInRequired"),
        ("auth", r"The security token included in the request is (invalid|expired)"),
        ("auth", r"Blocked: This account is currently blocked|PendingVerification"),
        # invalid: the request itself is wrong
        ("invalid", r"InvalidAMIID\.(Malformed|NotFound|Unavailable)|InvalidAMIID"),
        ("invalid", (r"InvalidInstanceType|is not a valid instance type|"
                    r"Invalid value '[^']*' for InstanceType")),
        ("invalid", r"The instance type '[^']*' does not exist"),
        ("invalid", r"The image ids? '\[?[^']*\]?' do(es)? not exist"),
        ("invalid", r"InvalidParameterValue|InvalidParameterCombination|InvalidParameter\b"),
        ("invalid", (r"InvalidKeyPair\.|InvalidSubnetID\.|InvalidVpcID\.|InvalidGroup\.|"
                    r"InvalidZone\.|InvalidPlacementGroup\.|InvalidBlockDeviceMapping")),
        ("invalid", r"ParameterNotFound|InvalidAvailabilityZone|MissingParameter"),
        ("invalid", r"Invalid value for variable|Invalid AWS Region"),
        # the provider's words when the AMI is gone (looked up before RunInstances), and
        # the module's own AMI lookup finding nothing
        ("invalid", r"collecting instance settings: (couldn't find resource|empty result)"),
        ("invalid", r"Your query returned no results"),
    )

    def classify_error(self, text: str) -> str:
        """Terraform wraps long messages over lines; match on the text as one line."""
        return super().classify_error(" ".join(text.split()))

    # --- what the provisioner asks ---------------------------------------------
    def settings(self, config: dict[str, Any], stored: dict[str, Any]) -> AWSSettings:
        settings = super().settings(config, stored)
        endpoint = (os.environ.get("SKYTERRA_AWS_ENDPOINT_URL")
                    or (config.get("aws") or {}).get("endpoint_url"))
        return dataclasses.replace(settings, endpoint_url=endpoint or settings.endpoint_url)

    def template_context(self, deployment: Deployment) -> dict[str, Any]:
        """Structure only: which network source, custom image or SSM lookup, spot block."""
        image_id, _ = self._image(deployment)
        settings = deployment.settings
        network = "subnet" if settings.subnet_id else ("vpc" if settings.vpc_id else "default")
        return {"network": network, "custom_image": image_id is not None,
                "spot": bool(deployment.candidate.use_spot),
                "efa": self.fabric(deployment) is not None,
                "storage": bool(_s3_buckets(deployment)),
                "container": container.spec_for(deployment) is not None,
                # the attribute exists once autostop was asked for; its value is a tfvar
                "shutdown_behavior": self._shutdown_behavior(deployment) is not None}

    @staticmethod
    def _shutdown_behavior(deployment: Deployment) -> str | None:
        """"stop" or "terminate" once the cluster has autostop (kept "stop" after a
        cancel, so a later guest shutdown stops instead of terminating); None: never
        asked, and the attribute is not rendered at all."""
        setting = autostop.module_setting(deployment.stored, deployment.resources)
        if setting is None:
            return None
        down = bool(setting.get("down"))
        if deployment.candidate.use_spot and setting and not down:
            raise NotSupportedError(
                "autostop would stop the nodes, but AWS cannot stop spot instances (a "
                "one-time spot instance can only be terminated). Use autostop with down: "
                "true (`-i MINUTES --down`), or on-demand nodes (use_spot: false).",
                field="resources.autostop")
        return "terminate" if down else "stop"

    def check_stoppable(self, deployment: Any) -> None:
        """EC2 cannot stop a one-time spot instance (it can only be terminated)."""
        if deployment.candidate.use_spot:
            raise NotSupportedError(
                f"cluster '{deployment.name}' runs on spot instances, which AWS cannot stop "
                "(a one-time spot instance can only be terminated). Destroy it with "
                f"`skyterra destroy {deployment.name}`, or use on-demand nodes "
                "(use_spot: false) for clusters you want to stop.", field="resources.use_spot")

    def tfvars(self, deployment: Deployment) -> dict[str, Any]:
        resources, candidate, settings = (deployment.resources, deployment.candidate,
                                          deployment.settings)
        image_id, ssm_parameter = self._image(deployment)
        iops, throughput = DISK_TIERS[resources.disk_tier or "medium"]
        fabric = self.fabric(deployment)
        behavior = self._shutdown_behavior(deployment)
        values: dict[str, Any] = {
            "region": candidate.region,
            "zone": candidate.zone,
            "cluster_name": deployment.name,
            "num_nodes": deployment.num_nodes,
            "instance_type": candidate.instance_type,
            "image_id": image_id,
            "image_ssm_parameter": ssm_parameter,
            "disk_size": resources.disk_size or DEFAULT_DISK_SIZE,
            "disk_iops": iops,
            "disk_throughput": throughput,
            "labels": dict(resources.labels),
            "nodes_running": deployment.nodes_running,
            **({"shutdown_behavior": behavior} if behavior else {}),
            "ssh_user": self.ssh_user(deployment),
            "ssh_public_key": deployment.public_key,
            "ssh_private_key_path": str(deployment.private_key_path),
            "ports": [self._port_range(p) for p in resources.ports],
            "port_cidrs": (None if settings.port_cidrs is None
                           else cidr_list(settings.port_cidrs, "port_cidrs")),
            "placement_group": bool(settings.placement_group),
            "efa_interfaces": fabric.interfaces if fabric else 0,
            "associate_public_ip": (None if settings.associate_public_ip is None
                                    else bool(settings.associate_public_ip)),
            "vpc_id": self._network_id(settings.vpc_id, "vpc_id"),
            "subnet_id": self._network_id(settings.subnet_id, "subnet_id"),
        }
        if deployment.ssh_cidrs is not None:  # else the module asks for it at plan time
            values["ssh_cidrs"] = list(deployment.ssh_cidrs)
        if _s3_buckets(deployment):  # the nodes' role may use exactly these buckets
            values["storage_buckets"] = _s3_buckets(deployment)
        if container.spec_for(deployment) is not None:
            # IMDSv2 answers one hop by default: a container (one more hop) needs two.
            values["metadata_hop_limit"] = 2
            values["container_setup_script"] = container.boot_script("", deployment)
        return values

    def root_files(self, deployment: Deployment) -> dict[str, str]:
        """TEST ONLY: `moto_override.tf` pointing the provider at an emulator.

        Written only when the settings name an endpoint (tests, or a user's
        LocalStack), and only into a root module; the module never contains endpoints.
        """
        url = deployment.settings.endpoint_url
        if not url:
            return {}
        if not isinstance(url, str) or not _ENDPOINT.match(url):
            raise ConfigError(f"aws_endpoint_url must be a plain URL like "
                              f"http://127.0.0.1:5000, got {url!r}.")
        return {"moto_override.tf": emulator_provider(url)}

    def ssh_user(self, deployment: Deployment) -> str:
        """ubuntu for the default images; for a custom image the configured user or a guess."""
        if deployment.settings.ssh_user:
            return str(deployment.settings.ssh_user)
        image_id, ssm_parameter = self._image(deployment)
        if image_id is not None:
            return self.default_ssh_user
        return ssh_user_for_image(ssm_parameter)

    def warnings(self, deployment: Deployment) -> list[str]:
        notes = []
        if deployment.candidate.use_spot:
            notes.append("spot nodes can be reclaimed by AWS at any time with two minutes' "
                         "notice; checkpoint your training.")
        notes.extend(fabric_notes(deployment))
        fabric = self.fabric(deployment)
        if fabric is not None:
            notes.append(f"network: {fabric.label} per node ({deployment.candidate.instance_type},"
                         " one per network card) in a cluster placement group; NCCL uses "
                         "libfabric (FI_PROVIDER=efa). Each node's primary interface gets an "
                         "Elastic IP (EC2 allows 5 per region unless raised).")
        return notes

    def fabric(self, deployment: Deployment) -> fabrics.Family | None:
        """The EFA family row when this cluster uses EFA (network_tier), else None."""
        return chosen_fabric(deployment)

    def node_env(self, deployment: Deployment) -> dict[str, str]:
        """libfabric/NCCL settings for EFA (FI_PROVIDER=efa, ...): setup and run see them."""
        fabric = self.fabric(deployment)
        return fabric.env if fabric else {}

    # --- credentials -----------------------------------------------------------
    def instances_gone(self, cluster_dir: Any, record: Any) -> list[int] | None:
        """Ask EC2: a node whose instance is terminated, stopped or no longer listed is gone.

        None (cannot tell: the controller then waits its grace period) when boto3 or
        the credentials are missing or EC2 does not answer."""
        states = self._instance_states(record)
        if states is None:
            return None
        return sorted(rank for rank, name in states.items() if name not in ("pending", "running"))

    def node_power(self, cluster_dir: Any, record: Any) -> dict[int, str] | None:
        """EC2's word on each node: stopping/stopped → "stopped", shutting-down,
        terminated or not listed → "gone", else "running"."""
        states = self._instance_states(record)
        if states is None:
            return None
        kinds = {"stopping": "stopped", "stopped": "stopped", "shutting-down": "gone",
                 "terminated": "gone", None: "gone"}
        return {rank: kinds.get(name, "running") for rank, name in states.items()}

    def _instance_states(self, record: Any) -> dict[int, str | None] | None:
        """rank → EC2 state name (None: not listed); None when EC2 cannot be asked."""
        try:
            import boto3
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            return None
        from skyterra import config

        ids = {node.get("instance_id"): node["rank"] for node in record.nodes
               if node.get("instance_id")}
        if not ids or not record.region:
            return None
        endpoint = self.settings(config.load(), record.cloud_options).endpoint_url
        try:
            ec2 = boto3.client("ec2", region_name=record.region, endpoint_url=endpoint)
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": sorted(ids)}])
            states = {instance["InstanceId"]: instance["State"]["Name"]
                      for page in pages for reservation in page["Reservations"]
                      for instance in reservation["Instances"]}
        except (BotoCoreError, ClientError):
            return None
        return {rank: states.get(instance_id) for instance_id, rank in ids.items()}

    def interruption_watcher(self) -> str | None:
        """Polls IMDS (v2 token) for the spot 2-minute warning every 5 s."""
        return AWS_INTERRUPTION_WATCHER

    def parse_interruption(self, text: str) -> str | None:
        return parse_aws_instance_action(text)

    def has_local_credentials(self) -> bool:
        """Keys, a profile or a role source in the environment, or the AWS config files
        (what boto3's chain reads before it would ask the instance metadata service)."""
        if any(os.environ.get(name) for name in _AWS_CREDENTIAL_ENV):
            return True
        files = (os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
                 os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
        return any(os.path.isfile(os.path.expanduser(path)) for path in files)

    def controller_credentials(self) -> dict[str, str]:
        """The AWS keys (and region) of this process's environment, when they are set there."""
        names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION")
        return {name: os.environ[name] for name in names if os.environ.get(name)}

    def check_credentials(self, verify: bool = False) -> CredentialReport:
        """Where boto3 finds credentials and a region; with verify, ask STS who we are.

        Never reports a secret: only the source, the profile and the last four
        characters of the access key id.
        """
        try:
            import boto3
            import botocore.exceptions
        except ImportError:
            return CredentialReport(
                "aws", False, "boto3 is not installed, so skyterra cannot read AWS credentials.",
                "pip install 'skyterra[aws]'")
        profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
        try:
            session = boto3.Session()
            credentials = session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
        except botocore.exceptions.ProfileNotFound:
            return CredentialReport(
                "aws", False, f"the AWS profile {profile!r} (AWS_PROFILE) is not in "
                "~/.aws/config or ~/.aws/credentials.",
                f"run `aws configure --profile {profile}`, or unset AWS_PROFILE.")
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            return CredentialReport(
                "aws", False, f"AWS credentials were found but could not be loaded: "
                f"{_one_line(error)}",
                "refresh them, e.g. `aws sso login`" + (f" --profile {profile}" if profile else "")
                + ", or check credential_process / role_arn in ~/.aws/config.")
        # botocore reads AWS_DEFAULT_REGION and the profile; the AWS CLI v2, the other
        # SDKs and Terraform's provider also read AWS_REGION.
        region = os.environ.get("AWS_REGION") or session.region_name
        region_text = (f"default region {region}" if region else
                       "no default region (skyterra picks regions itself; set AWS_REGION or "
                       "`aws configure set region us-east-1` for other tools)")
        if frozen is None or not frozen.access_key:
            return CredentialReport(
                "aws", False, "no AWS credentials found: looked at AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, ~/.aws/config (SSO, "
                f"roles, credential_process), container and instance roles; {region_text}.",
                "run `aws configure` (access key) or `aws configure sso` then `aws sso login`, "
                "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.")
        source = _CREDENTIAL_SOURCES.get(credentials.method, credentials.method)
        where = f"profile {profile!r} via {source}" if profile else source
        detail = f"credentials from {where} (access key …{frozen.access_key[-4:]}); {region_text}"
        if not verify:
            return CredentialReport("aws", True, detail + ".")
        try:
            identity = session.client("sts", region_name=region or "us-east-1"
                                      ).get_caller_identity()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            kind = self.classify_error(str(error))
            return CredentialReport(
                "aws", False, f"{detail}, but AWS rejected them ({kind}): {_one_line(error)}",
                "renew or replace the credentials (expired session? wrong profile?), then run "
                "`skyterra check` again.")
        return CredentialReport(
            "aws", True, f"{detail}; account {identity.get('Account')} as "
            f"{identity.get('Arn')}.")

    # --- helpers ---------------------------------------------------------------
    @staticmethod
    def _image(deployment: Deployment) -> tuple[str | None, str]:
        """(image_id or None, SSM parameter used when image_id is None)."""
        candidate = deployment.candidate
        arch = architecture(candidate.instance_type)
        default = (DLAMI_SSM_PARAMETERS if candidate.accelerator else UBUNTU_SSM_PARAMETERS)[arch]
        if candidate.accelerator in NEURON_ACCELERATORS:
            default = NEURON_SSM_PARAMETER
        image = machine_image(deployment.resources.image_id)
        if image is None:
            return None, default
        image = image.strip()
        if _AMI_ID.match(image):
            return image, default
        ssm = _SSM_IMAGE.match(image)
        if ssm:
            return None, ssm.group(1)
        raise TaskError(f"image_id {image!r} is not an AMI id; on AWS write 'ami-0123456789abcdef0' "
                        "or 'ssm:/path/of/a/public/parameter' (e.g. ssm:/aws/service/deeplearning/"
                        "ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id).",
                        field="resources.image_id")

    @staticmethod
    def _port_range(port: str) -> dict[str, int]:
        low, _, high = port.partition("-")
        return {"from_port": int(low), "to_port": int(high or low)}

    @staticmethod
    def _network_id(value: Any, key: str) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not _ID[key].match(value):
            raise ConfigError(f"{key} {value!r} does not look like an AWS id "
                              f"({'vpc-0123456789abcdef0' if key == 'vpc_id' else 'subnet-0123456789abcdef0'}).")
        return value


def _s3_buckets(deployment: Deployment) -> list[str]:
    """The S3 buckets of the task's bucket file_mounts, sorted (a stable render)."""
    mounts = getattr(deployment.task, "storage_mounts", [])
    return sorted({m.ref.bucket for m in mounts if m.ref.store == "s3"})


def emulator_provider(url: str) -> str:
    """A provider override for an EC2/S3 emulator at `url` (moto, LocalStack)."""
    quoted = json.dumps(url.rstrip("/"))  # the regex allows no quotes, '$' or '%'
    endpoints = "\n".join(f"    {service} = {quoted}" for service in ("ec2", "iam", "ssm", "sts"))
    return ("# TEST ONLY: the AWS provider talks to an EC2 emulator (moto) at this endpoint.\n"
            "# Written by skyterra because the settings name aws_endpoint_url.\n"
            'provider "aws" {\n'
            "  skip_credentials_validation = true\n"
            "  skip_requesting_account_id  = true\n"
            "  skip_metadata_api_check     = true\n"
            "  skip_region_validation      = true\n"
            "  max_retries                 = 1\n"
            "\n"
            "  endpoints {\n"
            f"{endpoints}\n"
            "  }\n"
            "}\n")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# Started on each node of a managed job (see Cloud.interruption_watcher). IMDS answers
# 404 for spot/instance-action until AWS schedules the interruption.
AWS_INTERRUPTION_WATCHER = WATCHER_GUARD + r"""
imds=${SKYTERRA_IMDS_URL:-http://169.254.169.254/latest}
while :; do
  token=$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$imds/api/token")
  notice=$(curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" \
    "$imds/meta-data/spot/instance-action") && {
    printf '%s\n' "$notice" > "$HOME/.skyterra/interruption"; exit 0; }
  sleep "${SKYTERRA_WATCH_INTERVAL:-5}"
done
"""


def parse_aws_instance_action(text: str) -> str | None:
    """IMDS spot/instance-action JSON ({"action": "terminate", "time": "...Z"}) → a notice."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("action"):
        return None
    done = {"terminate": "terminated", "stop": "stopped", "hibernate": "hibernated"}
    action = done.get(str(data["action"]), str(data["action"]))
    return f"AWS spot interruption notice: the instance will be {action} at " \
        f"{data.get('time', 'soon')}"
