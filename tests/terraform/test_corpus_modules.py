"""The modules that `--dryrun` renders for the corpus files marked `validate: true`
(tests/fixtures/skypilot/expected.yaml) are valid Terraform.

aws: `terraform init` from the local provider mirror, then `terraform validate`.
gcp/azure (no provider here): every variable validation of the module, evaluated by
terraform on its variables.tf and the rendered terraform.tfvars.json. A dry run leaves
the GCP project, the Azure subscription and the SSH source ranges (the caller's address,
detected at launch) to launch time; the test gives them as a launch would.
"""

from __future__ import annotations

import json

import pytest

from skyterra.renderer import TFVARS_FILE
from tests.moto_server import terraform
from tests.terraform.test_gcp_azure_modules import TERRAFORM, plan_variables
from tests.unit.test_skypilot_corpus import EXPECTED, dryrun, entry_id

pytestmark = pytest.mark.terraform
MARKED = [e for e in EXPECTED if e.get("validate")]
CALLER = ["203.0.113.7/32"]  # TEST-NET-3: never a real caller
LAUNCH_TIME = {"gcp": {"project": "skyterra-test", "ssh_source_ranges": CALLER},
               "azure": {"subscription_id": "11111111-2222-3333-4444-555555555555",
                         "ssh_source_ranges": CALLER}}


def test_a_representative_set_is_marked_for_every_cloud():
    clouds = [e["pick"][0] for e in MARKED]
    assert {c: clouds.count(c) for c in set(clouds)}.keys() == {"aws", "gcp", "azure"}
    assert 3 <= clouds.count("aws") <= 6  # validate with the provider is slow: a handful


@pytest.mark.parametrize("entry", MARKED, ids=entry_id)
def test_corpus_module_validates(entry, tmp_path, monkeypatch):
    if not TERRAFORM:
        pytest.skip("terraform is not on PATH")
    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path / "home"))
    (result,) = dryrun(entry, tmp_path / "out")
    module, cloud = result.rendered_dir, result.candidate.cloud
    if cloud == "aws":
        terraform(module, "init", "-input=false", "-no-color", "-backend=false")
        validated = terraform(module, "validate", "-no-color")
        assert "Success" in validated.stdout, validated.output
        return
    tfvars = json.loads((module / TFVARS_FILE).read_text())
    overrides = {k: v for k, v in LAUNCH_TIME[cloud].items() if not tfvars.get(k)}
    planned = plan_variables(module, tmp_path / "vars", overrides)
    assert planned.returncode == 0, planned.stdout + planned.stderr
