"""The module of a bucket skyterra creates (templates/storage/), per store.

GCS and Azure Blob on the clouds (google_storage_bucket, azurerm_storage_container):
their providers are not installable here, so offline checks -- terraform fmt,
python-hcl2, the tfvars -- and golden copies (tests/golden/storage-*/). Regenerate
them after an intended template change, then review the diff:

    python tests/terraform/test_bucket_modules.py --update

The rclone module (terraform_data, the emulators' stand-in) and the S3 one (real
provider, on moto) are applied for real in tests/e2e/test_bucket_mounts.py; here
the rclone one is also applied with a shared (local-path) backend: its state goes
to the backend under skyterra-storage/<name>/, not into SKYTERRA_HOME.
"""

from __future__ import annotations

import dataclasses
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # for `python tests/terraform/test_bucket_modules.py --update`
    sys.path.insert(0, str(REPO))

from skyterra import bucketstate
from skyterra.clouds.stores import BucketRef
from skyterra.renderer import render_bucket
from tests.terraform.test_gcp_azure_modules import load_module

GOLDEN = REPO / "tests" / "golden"
# A real-cloud-shaped Azure setting (a made-up account and a key that is not one).
AZURE_CONNECTION = ("DefaultEndpointsProtocol=https;AccountName=acct7;AccountKey=bm90LWEta2V5;"
                    "EndpointSuffix=core.windows.net")
CASES = {
    "storage-gcs": BucketRef("gcs", "ckpt-7"),
    "storage-azure": BucketRef("azure", "box-7", "", "acct7"),
    "storage-s3": BucketRef("s3", "ckpt-7"),
}
CLOUD_SETTINGS = ("STORAGE_EMULATOR_HOST", "AZURE_STORAGE_CONNECTION_STRING", "AWS_ENDPOINT_URL",
                  "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
                  "GOOGLE_CLOUD_PROJECT", "SKYTERRA_GCS_LOCATION", "ARM_SUBSCRIPTION_ID")


def _cloud_environment(patch: pytest.MonkeyPatch) -> None:
    """This machine's settings as for the real clouds: no emulator anywhere."""
    for name in CLOUD_SETTINGS:
        patch.delenv(name, raising=False)
    patch.setenv("AZURE_STORAGE_CONNECTION_STRING", AZURE_CONNECTION)


def render_case(name: str, out: Path) -> Path:
    """The case's module as this machine's settings make it, rendered into `out`
    (no backend: golden copies do not depend on the machine's config)."""
    module = bucketstate.BucketModule.of(CASES[name])
    render_bucket(dataclasses.replace(module, backend=None, at=out))
    return out


def _fmt_check(directory: Path) -> None:
    if shutil.which("terraform"):
        done = subprocess.run(["terraform", "fmt", "-check", "-diff"], cwd=directory,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_gcs_bucket_on_the_cloud_is_a_google_storage_bucket(tmp_path, monkeypatch):
    _cloud_environment(monkeypatch)
    mod = load_module(render_case("storage-gcs", tmp_path / "g"))
    _fmt_check(tmp_path / "g")
    bucket = mod.resource("google_storage_bucket", "bucket")
    assert bucket["name"] == "${var.bucket_name}" and bucket["force_destroy"] == \
        "${var.force_destroy}"
    assert bucket["uniform_bucket_level_access"] is True
    assert mod.tfvars == {"bucket_name": "ckpt-7", "force_destroy": True,
                          "labels": {"skyterra-bucket": "ckpt-7"}}
    assert "ckpt-7" not in mod.text   # the name is a value: tfvars only
    assert not list((tmp_path / "g").glob("backend.tf"))


def test_an_azure_container_on_the_cloud_is_an_azurerm_storage_container(tmp_path,
                                                                         monkeypatch):
    _cloud_environment(monkeypatch)
    mod = load_module(render_case("storage-azure", tmp_path / "a"))
    _fmt_check(tmp_path / "a")
    container = mod.resource("azurerm_storage_container", "bucket")
    assert container["name"] == "${var.bucket_name}"
    assert "data.azurerm_resources.account" in str(container["storage_account_id"])
    assert container["container_access_type"] == "private"
    assert mod.tfvars == {"bucket_name": "box-7", "account": "acct7",
                          "metadata": {"skyterra_bucket": "box-7"}}
    assert "box-7" not in mod.text and "acct7" not in mod.text
    assert "bm90LWEta2V5" not in (tmp_path / "a" / "terraform.tfvars.json").read_text()


def test_an_s3_bucket_is_an_aws_s3_bucket_with_its_tag(tmp_path, monkeypatch):
    _cloud_environment(monkeypatch)
    mod = load_module(render_case("storage-s3", tmp_path / "s"))
    _fmt_check(tmp_path / "s")
    bucket = mod.resource("aws_s3_bucket", "bucket")
    assert bucket["bucket"] == "${var.bucket_name}" and bucket["tags"] == "${var.tags}"
    assert mod.tfvars["tags"] == {"skyterra-bucket": "ckpt-7"}
    assert "endpoints" not in mod.text and "s3_endpoint" not in mod.tfvars  # the real AWS
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000")
    emulated = load_module(render_case("storage-s3", tmp_path / "e"))
    _fmt_check(tmp_path / "e")
    provider = emulated.providers["aws"]
    assert provider["s3_use_path_style"] is True and provider["skip_credentials_validation"]
    assert emulated.tfvars["s3_endpoint"] == "http://127.0.0.1:5000"


def test_on_an_emulator_gcs_and_azure_buckets_are_terraform_data_run_by_rclone(
        tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       "AccountName=devstoreaccount1;AccountKey=bm90LWEta2V5;"
                       "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    for name in ("storage-gcs", "storage-azure"):
        out = render_case(name, tmp_path / name)
        _fmt_check(out)
        mod = load_module(out)
        assert list(mod.resources) == ["terraform_data"]
        assert "required_providers" not in mod.text   # nothing to download
        assert mod.tfvars["bucket_name"] == CASES[name].bucket
        module = bucketstate.BucketModule.of(CASES[name])
        # the rclone remote (credentials included) is for the Terraform process only
        assert module.env()["RCLONE_CONFIG_SKY_TYPE"]
        assert not any(value in (out / "terraform.tfvars.json").read_text()
                       for key, value in module.env().items() if key != "RCLONE_CONFIG")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_copy_of_the_bucket_module_matches_a_fresh_render(name, tmp_path, monkeypatch):
    _cloud_environment(monkeypatch)
    fresh = render_case(name, tmp_path / name)
    golden = GOLDEN / name
    compared = filecmp.dircmp(fresh, golden)
    assert (compared.left_only, compared.right_only, compared.diff_files) == ([], [], []), (
        f"{name}: run `python tests/terraform/test_bucket_modules.py --update` if intended")


@pytest.mark.terraform
def test_with_a_shared_backend_the_bucket_state_goes_to_the_backend(tmp_path, monkeypatch):
    tool = Path(sys.executable).parent / "gcp-storage-emulator"
    if not (tool.exists() and shutil.which("rclone") and shutil.which("terraform")):
        pytest.skip("needs gcp-storage-emulator, rclone and terraform (run .ci/install)")
    from tests.storage_emulators import _free_port, _stop, _wait_port

    home, shared = tmp_path / "home", tmp_path / "shared"
    home.mkdir()
    (home / "config.yaml").write_text(f"backend:\n  type: local\n  path: {shared}\n")
    monkeypatch.setenv("SKYTERRA_HOME", str(home))
    port = _free_port()
    proc = subprocess.Popen([str(tool), "start", "--host", "127.0.0.1", "--port", str(port),
                             "--in-memory"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path)
    try:
        _wait_port(port, proc, "gcp-storage-emulator")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        ref = BucketRef("gcs", "shared-7")
        bucketstate.create(ref, lambda line: None)
        record = bucketstate.BucketRecord("shared-7", "gcs", created_by_skyterra=True)
        bucketstate.save(record)
        state = shared / "skyterra-storage" / "shared-7" / "terraform.tfstate"
        assert state.is_file() and "terraform_data" in state.read_text()
        assert not (home / "storage" / "shared-7" / "terraform.tfstate").exists()
        assert bucketstate.resources("shared-7") == ["terraform_data.bucket"]
        bucketstate.destroy(record, lambda line: None)
        assert not state.exists() and bucketstate.load("shared-7") is None
    finally:
        _stop(proc, "gcp-storage-emulator")


def update_golden() -> None:
    with pytest.MonkeyPatch.context() as patch:
        _cloud_environment(patch)
        for name in sorted(CASES):
            shutil.rmtree(GOLDEN / name, ignore_errors=True)
            render_case(name, GOLDEN / name)
            print(f"{name}: written")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: python {sys.argv[0]} --update   (regenerate tests/golden/storage-*/)")
    update_golden()
