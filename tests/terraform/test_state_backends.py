"""state/: backend snippets, bootstrap modules, and rendered modules with a shared backend.

The S3 test runs the real `terraform` S3 backend against moto (S3 + DynamoDB on
127.0.0.1): state written from one module copy is read from another, and a held
lock refuses a second plan.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from skyterra import backend, pipeline
from skyterra.errors import ConfigError
from skyterra.paths import state_templates_dir
from skyterra.task import Task
from tests import moto_server as moto_fixtures
from tests.leaks import leftover_processes
from tests.moto_server import s3_state_backend

moto_endpoint = moto_fixtures.moto_endpoint

TERRAFORM = shutil.which("terraform")
STATE = state_templates_dir()
MIRROR = Path(os.environ.get("SKYTERRA_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")


def run_terraform(directory: Path, *args: str, env: dict[str, str] | None = None,
                  check: bool = True) -> subprocess.CompletedProcess:
    config = directory.parent / f"{directory.name}.tfrc"
    if not config.exists():
        text = ""
        if (MIRROR / "registry.terraform.io").is_dir():
            text = (f'provider_installation {{\n  filesystem_mirror {{\n    path = '
                    f'{json.dumps(str(MIRROR))}\n  }}\n}}\n')
        config.write_text(text)
    environment = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                   "HOME": str(directory.parent), "CHECKPOINT_DISABLE": "1",
                   "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1",
                   **(env or {})}
    done = subprocess.run([TERRAFORM, *args, *(["-no-color"] if args[0] != "fmt" else [])],
                          cwd=directory, env=environment, capture_output=True, text=True,
                          timeout=300, check=False, stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, f"terraform {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def _task() -> Task:
    return Task.from_yaml_config({"name": "shared", "num_nodes": 1, "run": "echo hi"})


# --- the files in state/ ------------------------------------------------------------------
@needs_terraform
def test_state_folder_is_terraform_fmt_clean():
    done = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", "-diff", str(STATE)],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CHECKPOINT_DISABLE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("module", ["aws", "gcp", "azure"])
def test_bootstrap_variables_are_typed_and_described_and_outputs_name_the_backend(module):
    folder = STATE / "bootstrap" / module
    assert {p.name for p in folder.glob("*.tf")} >= {"main.tf", "variables.tf", "outputs.tf",
                                                       "versions.tf"}
    with open(folder / "variables.tf") as handle:
        variables = hcl2.load(handle)["variable"]
    for block in variables:
        (name, body), = block.items()  # hcl2 may keep the quotes of the label
        assert body.get("type") and body.get("description"), name
    with open(folder / "outputs.tf") as handle:
        outputs = {name.strip("\"") for block in hcl2.load(handle)["output"] for name in block}
    assert "skyterra_backend" in outputs
    main = (folder / "main.tf").read_text()
    for needed in {"aws": ["aws_s3_bucket_versioning", "aws_s3_bucket_public_access_block",
                           "aws_s3_bucket_server_side_encryption_configuration",
                           "aws_dynamodb_table", '"LockID"'],
                   "gcp": ["versioning", 'public_access_prevention    = "enforced"',
                           "uniform_bucket_level_access = true"],
                   "azure": ["versioning_enabled = true", 'container_access_type = "private"',
                             "allow_nested_items_to_be_public = false"]}[module]:
        assert needed in main, (module, needed)


@needs_terraform
@pytest.mark.skipif(not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
                    reason="no local mirror of the hashicorp/aws provider")
def test_aws_bootstrap_validates_with_the_mirrored_provider(tmp_path):
    module = tmp_path / "aws"
    shutil.copytree(STATE / "bootstrap" / "aws", module)
    run_terraform(module, "init", "-backend=false", "-input=false")
    run_terraform(module, "validate")


@pytest.mark.parametrize("kind", sorted(backend.BACKENDS))
def test_each_backend_renders_formatted_hcl_with_the_cluster_key(kind, tmp_path):
    settings = {"local": {"path": str(tmp_path / "shared")},
                "s3": {"bucket": "b", "region": "us-east-1", "use_lockfile": True},
                "gcs": {"bucket": "b"},
                "azurerm": {"resource_group_name": "rg", "storage_account_name": "sa",
                            "container_name": "tfstate"}}[kind]
    files = backend.backend_files_for("c1", {"type": kind, **settings})
    assert f'backend "{kind}" {{}}' in files["backend.tf"]
    values = files["backend.tfbackend"]
    assert {"local": f'"{tmp_path}/shared/skyterra/c1/terraform.tfstate"',
            "s3": '"skyterra/c1/terraform.tfstate"', "gcs": '"skyterra/c1"',
            "azurerm": '"skyterra/c1/terraform.tfstate"'}[kind] in values
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        hcl2.loads(text)
    if TERRAFORM:
        done = subprocess.run([TERRAFORM, "fmt", "-check", str(tmp_path / "backend.tf")],
                              capture_output=True, text=True, check=False, timeout=60,
                              env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
        assert done.returncode == 0, done.stdout + done.stderr


def test_backend_settings_are_checked():
    with pytest.raises(ConfigError, match="not supported"):
        backend.backend_files_for("c1", {"type": "consul"})
    with pytest.raises(ConfigError, match="needs bucket"):
        backend.backend_files_for("c1", {"type": "s3", "region": "us-east-1"})
    with pytest.raises(ConfigError, match="does not take key"):
        backend.backend_files_for("c1", {"type": "s3", "bucket": "b", "region": "r",
                                          "key": "x"})
    assert backend.backend_files_for("c1", None) == {}
    tricky = backend.backend_files_for("c1", {"type": "gcs", "bucket": 'a${b}"%{c}'})
    assert 'bucket = "a$${b}\\"%%{c}"' in tricky["backend.tfbackend"]


@needs_terraform
def test_rendered_module_with_a_local_backend_inits_against_the_shared_path(skyterra_home,
                                                                            tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".skyterra.yaml").write_text(
        f"backend:\n  type: local\n  path: {tmp_path / 'team-state'}\n")
    out = tmp_path / "mod"
    pipeline.render_standalone(_task(), out, cloud="local", cluster_name="shared-local")
    assert (out / "backend.tf").exists()
    assert "-backend-config=backend.tfbackend" in (out / "README.md").read_text()
    run_terraform(out, "init", "-input=false", "-backend-config=backend.tfbackend")
    backend = json.loads((out / ".terraform" / "terraform.tfstate").read_text())["backend"]
    assert backend["type"] == "local"
    assert backend["config"]["path"] == str(
        tmp_path / "team-state" / "skyterra" / "shared-local" / "terraform.tfstate")
    # without a backend setting, a re-render drops the backend files again
    (tmp_path / ".skyterra.yaml").unlink()
    pipeline.render_standalone(_task(), out, cloud="local", cluster_name="shared-local")
    assert not (out / "backend.tf").exists() and not (out / "backend.tfbackend").exists()


# --- S3 + DynamoDB on moto ------------------------------------------------------------------
@pytest.mark.e2e
@needs_terraform
def test_s3_state_is_shared_between_module_copies_and_a_held_lock_refuses(
        skyterra_home, tmp_path, moto_endpoint):
    aws_env = {"AWS_ACCESS_KEY_ID": "AKIAMOTOTESTING00000", "AWS_SECRET_ACCESS_KEY": "moto",
               "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
               "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "NO_PROXY": "127.0.0.1", "AWS_CONFIG_FILE": "/dev/null",
               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    clients, backend = s3_state_backend(moto_endpoint)
    first = tmp_path / "machine-a" / "mod"
    pipeline.render_standalone(_task(), first, cloud="local", cluster_name="shared-s3",
                               backend=backend)
    second = tmp_path / "machine-b" / "mod"
    shutil.copytree(first, second)  # the pipeline's checkout on another machine

    run_terraform(first, "init", "-input=false", "-backend-config=backend.tfbackend", env=aws_env)
    try:
        run_terraform(first, "apply", "-auto-approve", "-input=false", env=aws_env)
        assert not (first / "terraform.tfstate").exists()
        stored = clients["s3"].get_object(Bucket="team-state",
                                          Key="skyterra/shared-s3/terraform.tfstate")
        assert json.loads(stored["Body"].read())["resources"]

        run_terraform(second, "init", "-input=false", "-backend-config=backend.tfbackend",
                      env=aws_env)
        seen = json.loads(run_terraform(second, "output", "-json", env=aws_env).stdout)
        assert len(seen["node_ips"]["value"]) == 1

        lock_id = "team-state/skyterra/shared-s3/terraform.tfstate"
        clients["dynamodb"].put_item(TableName="locks", Item={
            "LockID": {"S": lock_id},
            "Info": {"S": json.dumps({"ID": "held-by-test", "Operation": "OperationTypeApply",
                                      "Who": "machine-a", "Version": "1.11.4",
                                      "Created": "2026-11-25T00:00:00Z", "Path": lock_id})}})
        refused = run_terraform(second, "plan", "-input=false", "-lock-timeout=0s",
                                env=aws_env, check=False)
        assert refused.returncode != 0
        assert "Error acquiring the state lock" in refused.stderr + refused.stdout
        clients["dynamodb"].delete_item(TableName="locks", Key={"LockID": {"S": lock_id}})
    finally:
        run_terraform(second if (second / ".terraform").is_dir() else first, "destroy",
                      "-auto-approve", "-input=false", env=aws_env)
    assert leftover_processes(str(tmp_path)) == []
