"""`skyterra render` output inside a pipeline's own Terraform root.

A rendered module is a proper child module (no provider block of its own), so a
root can call it with `count`; and a render that does not know who may SSH in
leaves that variable to the root (or to `-var` at plan time) instead of failing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from skyterra import api
from skyterra.renderer import TFVARS_FILE
from skyterra.task import Task
from tests import moto_server as moto_fixtures
from tests.moto_server import MOTO_UBUNTU_DLAMI, planned_resources, terraform
from tests.terraform.test_gcp_azure_modules import plan_variables

pytestmark = pytest.mark.terraform
REPO = Path(__file__).resolve().parents[2]
CALLER = "203.0.113.7/32"  # TEST-NET-3: never a real caller
moto_server = moto_fixtures.moto_server
aws_env = moto_fixtures.aws_env
moto = moto_fixtures.moto

CIDR_VARIABLE = {"aws": "ssh_cidrs", "gcp": "ssh_source_ranges", "azure": "ssh_source_ranges"}


def _task(cloud: str) -> Task:
    return Task.from_yaml(REPO / "examples" / "pipeline" / "task.yaml").set_resources_override(
        cloud=cloud)


@pytest.fixture
def no_cidrs(skyterra_home, monkeypatch):
    """An empty skyterra config and no SKYTERRA_* settings: nothing says who may SSH in."""
    for name in ("SKYTERRA_SSH_CIDRS", "SKYTERRA_CLOUDS", "SKYTERRA_AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return skyterra_home


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_render_with_no_cidrs_leaves_them_to_plan_time(cloud, no_cidrs, tmp_path):
    out = tmp_path / cloud
    api.render(_task(cloud), cloud=cloud, out_dir=out, cluster_name="train")
    tfvars = json.loads((out / TFVARS_FILE).read_text())
    variable = CIDR_VARIABLE[cloud]
    assert variable not in tfvars
    assert f'{variable} = ["203.0.113.7/32"]  # required' in (out / "README.md").read_text()
    missing = plan_variables(out, tmp_path / "vars")
    assert missing.returncode != 0 and "No value for required variable" in (
        missing.stdout + missing.stderr)
    given = plan_variables(out, tmp_path / "vars", {variable: [CALLER]})
    assert given.returncode == 0, given.stdout + given.stderr


def test_the_aws_module_validates_with_the_real_provider(no_cidrs, tmp_path):
    out = tmp_path / "aws"
    api.render(_task("aws"), cloud="aws", out_dir=out, cluster_name="train")
    terraform(out, "init", "-backend=false", "-input=false", "-no-color")
    done = terraform(out, "validate", "-no-color")
    assert "Success" in done.stdout, done.output


@pytest.mark.moto
def test_a_root_calls_the_rendered_aws_module_with_count_and_plans_on_moto(no_cidrs, moto,
                                                                          tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(REPO / "examples" / "pipeline" / "aws" / "main.tf", root / "main.tf")
    api.render(_task("aws"), cloud="aws", out_dir=root / "train", cluster_name="train",
               provider=False)
    assert not list((root / "train").glob("providers.tf"))
    assert "provider \"aws\"" not in "".join(
        p.read_text() for p in (root / "train").glob("*.tf"))
    # TEST ONLY, in the root (where a pipeline keeps its provider settings): moto.
    (root / "moto_override.tf").write_text(
        'provider "aws" {\n'
        "  skip_credentials_validation = true\n  skip_requesting_account_id  = true\n"
        "  skip_metadata_api_check     = true\n  max_retries                 = 1\n"
        f'  endpoints {{\n    ec2 = "{moto.url}"\n    ssm = "{moto.url}"\n'
        f'    sts = "{moto.url}"\n    iam = "{moto.url}"\n  }}\n}}\n')
    parameter = json.loads((root / "train" / TFVARS_FILE).read_text())["image_ssm_parameter"]
    moto.publish_public_parameter(parameter, MOTO_UBUNTU_DLAMI)
    terraform(root, "init", "-input=false", "-no-color")
    terraform(root, "plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan",
              "-var", f'ssh_cidrs=["{CALLER}"]')
    shown = terraform(root, "show", "-json", "-no-color", "plan.tfplan")
    resources = planned_resources(json.loads(shown.stdout))
    nodes = sorted(a for a in resources if ".aws_instance.node[" in a)
    assert nodes == ["module.train[0].aws_instance.node[0]",
                     "module.train[0].aws_instance.node[1]"]
    sg = resources["module.train[0].aws_security_group.cluster"]["values"]
    assert [r["cidr_blocks"] for r in sg["ingress"] if r["from_port"] == 22] == [[CALLER]]

