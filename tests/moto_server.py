"""Fixtures and helpers for tests that run the AWS module against moto.

Import the fixtures into a test module (`from tests.moto_server import
moto_server, aws_env, moto  # noqa: F401`). Nothing here may reach real AWS:

* the moto server listens on 127.0.0.1 only, on a free port;
* `aws_env` sets dummy keys, AWS_EC2_METADATA_DISABLED, AWS_ENDPOINT_URL at
  moto, empty shared config/credentials files, and HTTP(S)_PROXY at a dead
  loopback port with NO_PROXY=127.0.0.1, so a request that escapes the
  endpoint overrides fails at once instead of leaving the machine;
* `moto` resets the emulator before the test and fails the test when an
  instance (not terminated), a security group (other than a VPC's default) or
  a key pair is still there afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"  # moto's default account id
TF_PLUGIN_MIRROR = Path(os.environ.get("SKYTERRA_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
# moto ships a few 2017 images; this one is an Ubuntu Deep Learning AMI (user ubuntu).
MOTO_UBUNTU_DLAMI = "ami-dca37ea5"
DUMMY_KEY_ID = "AKIAMOTOTESTING00000"
DUMMY_SECRET = "moto-test-secret-not-a-real-key"
# A real-format ed25519 public key (its private half is not kept anywhere).
TEST_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICim6VOMVEfV+oLtpHquYeWM/79A6r84LA7D"
                   "Ftplx1sQ skyterra-test")


# --- terraform ---------------------------------------------------------------------

def terraform_cli_config(directory: Path) -> Path:
    """A Terraform CLI config that installs providers from the machine's mirror.

    `direct {}` must exclude the mirrored providers: otherwise init asks the
    registry for their version list too and fails on a machine without internet.
    """
    path = directory / "terraformrc"
    mirrored = sorted(f"{host.name}/{namespace.name}/{provider.name}"
                      for host in _dirs(TF_PLUGIN_MIRROR) for namespace in _dirs(host)
                      for provider in _dirs(namespace))
    text = "provider_installation {\n"
    if mirrored:
        text += f'  filesystem_mirror {{\n    path = "{TF_PLUGIN_MIRROR}"\n  }}\n'
    text += "  direct {\n"
    if mirrored:
        text += f"    exclude = {json.dumps(mirrored)}\n"
    text += "  }\n}\n"
    path.write_text(text)
    return path


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


@dataclass
class TerraformResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def terraform(module: Path, *args: str, check: bool = True, timeout: float = 300,
              env: dict[str, str] | None = None) -> TerraformResult:
    """Run `terraform <args>` in `module` with -input=false -no-color semantics."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    command = ["terraform", *args]
    environment = dict(os.environ if env is None else env)
    environment["TF_CLI_CONFIG_FILE"] = str(terraform_cli_config(module))
    environment["TF_IN_AUTOMATION"] = "1"
    environment.pop("TF_LOG", None)
    started = time.monotonic()
    proc = subprocess.run(command, cwd=module, env=environment, capture_output=True, text=True,
                          timeout=timeout, check=False)
    result = TerraformResult(command, proc.returncode, proc.stdout, proc.stderr,
                             time.monotonic() - started)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({proc.returncode}) in {module}:\n"
                             f"{result.output[-6000:]}")
    return result


def terraform_plan_json(module: Path) -> dict:
    """`terraform plan -out` then `terraform show -json` of that plan file."""
    terraform(module, "plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan")
    shown = terraform(module, "show", "-json", "-no-color", "plan.tfplan")
    return json.loads(shown.stdout)


def planned_resources(plan: dict) -> dict[str, dict]:
    """address -> planned values, from `terraform show -json` of a plan."""
    out: dict[str, dict] = {}

    def walk(module: dict) -> None:
        for resource in module.get("resources", []):
            out[resource["address"]] = resource
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan.get("planned_values", {}).get("root_module", {}))
    return out


# --- moto ----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MotoServer:
    url: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with _no_proxy().open(request, timeout=10) as reply:
            reply.read()

    def client(self, service: str = "ec2", region: str = REGION):
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.url,
                            aws_access_key_id=DUMMY_KEY_ID,
                            aws_secret_access_key=DUMMY_SECRET)

    def leftovers(self, region: str = REGION) -> list[str]:
        """Instances (not terminated), security groups (not 'default') and key pairs."""
        ec2 = self.client("ec2", region)
        found = []
        for reservation in ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] != "terminated":
                    found.append(f"instance {instance['InstanceId']} "
                                 f"({instance['State']['Name']})")
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            if group["GroupName"] != "default":
                found.append(f"security group {group['GroupId']} ({group['GroupName']})")
        for pair in ec2.describe_key_pairs()["KeyPairs"]:
            found.append(f"key pair {pair['KeyName']}")
        return found

    def publish_public_parameter(self, name: str, value: str, region: str = REGION) -> None:
        """Add an /aws/service/... parameter (the DLAMI ids AWS publishes) to moto.

        moto refuses PutParameter for names under /aws, and knows only the Amazon
        Linux ones; the server runs in this process, so write to its backend.
        """
        from moto.core.utils import utcnow
        from moto.ssm.models import Parameter, ssm_backends

        parameters = ssm_backends[MOTO_ACCOUNT][region]._parameters
        parameters[name].append(Parameter(
            account_id=MOTO_ACCOUNT, name=name, value=value, parameter_type="String",
            description=None, allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
            version=len(parameters[name]) + 1, data_type="aws:ec2:image"))


def _no_proxy() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One in-process moto server on 127.0.0.1:<free port> for the whole session.

    Bad instance types and AMIs fail like on AWS (moto reads these switches from
    its settings module, which is imported before any fixture runs, so both the
    environment and the module attributes are set).
    """
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
        patch.setenv("MOTO_ENABLE_AMI_VALIDATION", "true")
        from moto import settings
        from moto.server import ThreadedMotoServer

        patch.setattr(settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
        patch.setattr(settings, "ENABLE_AMI_VALIDATION", True)
        _fix_modify_shutdown_behavior(patch)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        moto = MotoServer(url=f"http://127.0.0.1:{port}")
        try:
            for _ in range(100):
                try:
                    moto.reset()
                    break
                except OSError:
                    time.sleep(0.05)
            yield moto
        finally:
            server.stop()


def _fix_modify_shutdown_behavior(patch: pytest.MonkeyPatch) -> None:
    """Make moto's ModifyInstanceAttribute handle InstanceInitiatedShutdownBehavior as EC2 does.

    moto 5.2.5 has no handler for `InstanceInitiatedShutdownBehavior.Value` (the form
    the AWS SDKs and Terraform's provider send; it sets the attribute after RunInstances):
    the call falls through to its security-group handler, which replaces the
    instance's groups with none and leaves the behaviour unchanged. EC2 changes the
    behaviour and keeps the groups; with this the second plan of an instance with
    `instance_initiated_shutdown_behavior` is clean on moto as on EC2.
    """
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse._dot_value_instance_attribute_handler

    def handler(self: InstanceResponse) -> bool:
        value = self._get_param("InstanceInitiatedShutdownBehavior.Value")
        if value is None:
            return original(self)
        self.error_on_dryrun()
        self.ec2_backend.modify_instance_attribute(
            self._get_param("InstanceId"), "instance_initiated_shutdown_behavior", value)
        return True

    patch.setattr(InstanceResponse, "_dot_value_instance_attribute_handler", handler)


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch,
            tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    """Dummy credentials and endpoints for boto3 and Terraform, only inside this test."""
    empty = tmp_path_factory.mktemp("aws-config")
    (empty / "config").write_text("")
    (empty / "credentials").write_text("")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(empty / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_MAX_ATTEMPTS": "1",
        # Anything that ignores the endpoint overrides dies on a dead loopback proxy.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        if name.endswith("PROXY"):
            monkeypatch.setenv(name.lower(), value)
    return moto_server


@pytest.fixture
def moto(aws_env: MotoServer) -> Iterator[MotoServer]:
    """A clean moto for this test; the test fails if it leaves EC2 resources behind."""
    aws_env.reset()
    yield aws_env
    leftovers = aws_env.leftovers()
    aws_env.reset()
    if leftovers:
        pytest.fail("the test left resources in moto: " + "; ".join(leftovers))


# --- a shared Terraform state backend (S3 + DynamoDB lock table) on moto ---------------------
@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """A moto server of its own (S3, DynamoDB) for one test: its URL.

    moto keeps its emulated accounts in process-wide memory shared by every server
    in this process, so the state is reset before and after: tests never see each
    other's buckets or tables.
    """
    server_module = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    handle = MotoServer(f"http://127.0.0.1:{port}")
    try:
        handle.reset()
        yield handle.url
    finally:
        handle.reset()
        server.stop()


def s3_state_backend(endpoint: str) -> tuple[dict, dict]:
    """Create bucket `team-state` and lock table `locks`; return (boto3 clients by service,
    the skyterra `backend:` setting that points Terraform's S3 backend at them)."""
    import boto3

    clients = {name: boto3.client(name, region_name=REGION, endpoint_url=endpoint,
                                  aws_access_key_id="x", aws_secret_access_key="x")
               for name in ("s3", "dynamodb")}
    clients["s3"].create_bucket(Bucket="team-state")
    clients["dynamodb"].create_table(
        TableName="locks", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}])
    backend = {"type": "s3", "bucket": "team-state", "region": REGION,
               "dynamodb_table": "locks", "use_path_style": True,
               "skip_credentials_validation": True, "skip_requesting_account_id": True,
               "skip_metadata_api_check": True,
               "endpoints": {"s3": endpoint, "dynamodb": endpoint}}
    return clients, backend


# The environment of a machine sharing state through moto: dummy keys, no config files,
# and proxies that make any request beyond loopback fail at once.
SHARED_AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIAMOTOTESTING00000", "AWS_SECRET_ACCESS_KEY": "moto",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "NO_PROXY": "127.0.0.1"}


def two_machines_sharing(tmp_path: Path, backend: dict, monkeypatch) -> dict[str, Path]:
    """Two skyterra homes ("a" and "b") whose config points at the same `backend`, with
    the dummy AWS credentials and the SSH ingress the shared-state tests need."""
    import yaml

    for key, value in SHARED_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SKYTERRA_SSH_CIDRS", "127.0.0.1/32")
    homes = {}
    for machine in ("a", "b"):
        home = tmp_path / f"machine-{machine}"
        home.mkdir()
        (home / "config.yaml").write_text(yaml.safe_dump({"backend": backend}))
        homes[machine] = home
    return homes
