"""Every module that `--dryrun` renders for an accepted corpus file
(tests/fixtures/skypilot/expected.yaml; every task of a pipeline) is valid Terraform.

Variables (all clouds): every variable validation of the module, evaluated by terraform
on its variables.tf and the rendered terraform.tfvars.json. A dry run leaves the GCP
project, the Azure subscription and the SSH source ranges (the caller's address,
detected at launch) to launch time; the test gives them as a launch would.
aws: also `terraform init` from the local provider mirror, then `terraform validate`,
once per distinct set of .tf files (most files render the same configuration with other
values, and validate does not read the values). gcp/azure: no provider here; their
configurations are checked offline by tests/terraform/test_gcp_azure_modules.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from skyterra.renderer import TFVARS_FILE
from tests.moto_server import terraform
from tests.terraform.test_gcp_azure_modules import TERRAFORM, plan_variables
from tests.unit.test_skypilot_corpus import EXPECTED, dryrun, entry_id
from tests.unit.test_skypilot_corpus import picks as picks_of

pytestmark = pytest.mark.terraform
ACCEPTED = [e for e in EXPECTED if e.get("outcome") != "refused"]
CALLER = ["203.0.113.7/32"]  # TEST-NET-3: never a real caller
LAUNCH_TIME = {"aws": {"ssh_cidrs": CALLER},
               "gcp": {"project": "skyterra-test", "ssh_source_ranges": CALLER},
               "azure": {"subscription_id": "11111111-2222-3333-4444-555555555555",
                         "ssh_source_ranges": CALLER}}
_validated: set[str] = set()   # digests of the aws configurations validated so far


def _configuration(module: Path) -> str:
    """A digest of the module's Terraform configuration (its .tf files, not the values)."""
    digest = hashlib.sha256()
    for path in sorted(module.rglob("*.tf")):
        digest.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_every_cloud_has_accepted_files():
    picks = [one["pick"][0] for e in ACCEPTED for one in picks_of(e)]
    assert {"aws", "gcp", "azure"} <= set(picks)


@pytest.mark.parametrize("entry", ACCEPTED, ids=entry_id)
def test_corpus_module_validates(entry, tmp_path, monkeypatch):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    for index, result in enumerate(dryrun(entry, tmp_path / "out")):
        module, cloud = result.rendered_dir, result.candidate.cloud
        tfvars = json.loads((module / TFVARS_FILE).read_text())
        overrides = {k: v for k, v in LAUNCH_TIME[cloud].items() if not tfvars.get(k)}
        planned = plan_variables(module, tmp_path / f"vars-{index}", overrides)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        if cloud == "aws" and _configuration(module) not in _validated:
            terraform(module, "init", "-input=false", "-no-color", "-backend=false")
            validated = terraform(module, "validate", "-no-color")
            assert "Success" in validated.stdout, validated.output
            _validated.add(_configuration(module))
