"""Buckets skyterra knows: each one's record, and for those it creates, their own module.

A bucket a task names with `name:` (and that does not exist yet) is a Terraform
resource in a small module of its own, rendered from templates/storage/ into
SKYTERRA_HOME/storage/<name>/ with its own state: it outlives every cluster that
uses it, and `skyterra storage delete NAME` is that module's `terraform destroy`.
With a shared backend the state goes there, under skyterra-storage/<name>/ (the
clusters' keys are skyterra/<cluster>/).

Next to the module, record.json says what skyterra knows of the bucket: which
clusters use it, whether skyterra created it (only then may it delete it) and
whether it is `persistent`. `skyterra storage ls` reads these records.

The store decides the module (skyterra/clouds/stores.py): S3 is `aws_s3_bucket`
with the hashicorp/aws provider (against moto, LocalStack or MinIO too); GCS and
Azure Blob are `google_storage_bucket` / `azurerm_storage_container` on the
clouds, and on their emulators -- for which no provider is installable here --
Terraform's built-in `terraform_data` whose provisioners run rclone. Such a
module reads its rclone remote from the environment of each Terraform command,
so no credential is written to its files or its state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import backend, config, paths
from skyterra.clouds.stores import RCLONE_MODULE, STORES, BucketRef, remote_env
from skyterra.errors import StorageError, TerraformError
from skyterra.terraform import Workspace

Progress = Callable[[str], None]
RECORD_FILE = "record.json"
REMOTE = "SKY"   # the rclone remote the rclone module's provisioners use


@dataclasses.dataclass
class BucketRecord:
    """What skyterra knows of one bucket."""

    name: str
    store: str
    account: str = ""
    created_by_skyterra: bool = False
    persistent: bool = True
    clusters: list[str] = dataclasses.field(default_factory=list)
    created_at: float = dataclasses.field(default_factory=time.time)
    module: str = ""   # the template its module was rendered from (created ones)

    @property
    def ref(self) -> BucketRef:
        return BucketRef(self.store, self.name, "", self.account)

    def url(self) -> str:
        return self.ref.url()


def storage_dir() -> Path:
    return paths.home() / "storage"


def bucket_dir(name: str) -> Path:
    return storage_dir() / name


def load(name: str) -> BucketRecord | None:
    try:
        return BucketRecord(**json.loads((bucket_dir(name) / RECORD_FILE).read_text()))
    except FileNotFoundError:
        return None


def save(record: BucketRecord) -> None:
    path = bucket_dir(record.name) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True))
    os.replace(tmp, path)


def forget(name: str) -> None:
    """Drop the record (and the emptied module dir) of a bucket."""
    shutil.rmtree(bucket_dir(name), ignore_errors=True)


def all_records() -> list[BucketRecord]:
    if not storage_dir().is_dir():
        return []
    names = sorted(p.parent.name for p in storage_dir().glob(f"*/{RECORD_FILE}"))
    return [record for record in map(load, names) if record is not None]


def describe(record: BucketRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["url"] = record.url()
    data["state"] = str(bucket_dir(record.name))
    return data


# --- the bucket's own Terraform module -----------------------------------------------
@dataclasses.dataclass(frozen=True)
class BucketModule:
    """One bucket's module: which template, its values, and where it lives."""

    ref: BucketRef
    backend: dict[str, Any] | None = None
    template: str = ""
    at: Path | None = None   # elsewhere than SKYTERRA_HOME/storage/<name> (golden copies)

    @classmethod
    def of(cls, ref: BucketRef, template: str = "") -> BucketModule:
        """The module of `ref`: from `template` (the one it was created from), else the
        one this machine's settings choose now."""
        return cls(ref, backend.shared_backend(config.load()),
                   template or STORES[ref.store].module_template())

    @property
    def directory(self) -> Path:
        return self.at or bucket_dir(self.ref.bucket)

    @property
    def uses_rclone(self) -> bool:
        return self.template == RCLONE_MODULE

    def context(self) -> dict[str, Any]:
        return STORES[self.ref.store].module_context()

    def tfvars(self) -> dict[str, Any]:
        store = STORES[self.ref.store]
        return store.rclone_module_values(self.ref) if self.uses_rclone else \
            store.module_values(self.ref)

    def extra_files(self) -> dict[str, str]:
        return backend.backend_files_for(self.ref.bucket, self.backend,
                                         prefix=backend.BUCKETS_PREFIX)

    def env(self) -> dict[str, str]:
        """The rclone remote of the rclone module's provisioners, from this machine's
        settings now (credentials are never kept in the module or its state)."""
        if not self.uses_rclone:
            return {}
        store = STORES[self.ref.store]
        if not store.emulated():
            # Never aim the module's rclone at the cloud: a bucket of the same name there
            # is not the one this state knows.
            raise StorageError(f"bucket {self.ref.url()} was created on a {store.name} "
                               "emulator, but this machine's settings no longer point at one "
                               "(STORAGE_EMULATOR_HOST, or AZURE_STORAGE_CONNECTION_STRING with "
                               "the emulator's BlobEndpoint); set them and try again.")
        return remote_env(REMOTE, store.host_remote(self.ref))

    def workspace(self, progress: Progress) -> Workspace:
        ws = Workspace(self.directory, progress=progress, env=self.env())
        values = self.directory / backend.BACKEND_VALUES_FILE
        ws.init(backend_config=values if values.exists() else None)
        return ws


def create(ref: BucketRef, progress: Progress) -> str:
    """Render the bucket's module and apply it: the bucket exists, in its own state.
    Returns the template (kept in the record, so destroy uses the same module).

    A failed apply is destroyed again (a half-made bucket is not left behind) and
    the error names the bucket and Terraform's reason.
    """
    from skyterra.renderer import render_bucket

    module = BucketModule.of(ref)
    render_bucket(module)
    ws = None
    try:
        ws = module.workspace(progress)
        replace = _missing_but_recorded(ws, module)
        if ws.plan(replace=replace):
            ws.apply_plan()
        return module.template
    except TerraformError as error:
        if ws is not None:
            try:
                ws.destroy()
                forget(ref.bucket)
            except TerraformError:
                pass
        raise StorageError(f"could not create bucket {ref.url()} with Terraform (module "
                           f"{module.directory}): {_reason(error)}") from None


def _missing_but_recorded(ws: Workspace, module: BucketModule) -> list[str]:
    """The rclone module cannot see a bucket deleted behind its back: when the caller
    found it missing but the state still has it, it is made again (-replace)."""
    if not module.uses_rclone:
        return []   # the provider's refresh notices it and plans a new one
    address = "terraform_data.bucket"
    return [address] if address in ws.state_resources() else []


def resources(name: str) -> list[str]:
    """`terraform state list` of the bucket's module ([] when it has none)."""
    record = load(name)
    if record is None or not any(bucket_dir(name).glob("*.tf")):
        return []
    module = BucketModule.of(record.ref, record.module)
    return module.workspace(lambda line: None).state_resources()


def check_deletable(record: BucketRecord) -> None:
    """A bucket skyterra did not create is never deleted: a clear refusal."""
    if not record.created_by_skyterra:
        raise StorageError(f"bucket {record.url()} was not created by skyterra, so skyterra "
                           "will not delete it (it only reads and writes it; it has no "
                           "Terraform state of skyterra's). Nothing was deleted. Delete it "
                           "with your cloud's own tools if you mean to.")


def destroy(record: BucketRecord, progress: Progress) -> None:
    """`terraform destroy` of a bucket skyterra created, then forget it.

    Refuses a bucket skyterra did not create: it is never deleted. On failure
    (store unreachable, no credentials) the record and state stay as they were,
    so the same command can be run again.
    """
    check_deletable(record)
    module = BucketModule.of(record.ref, record.module)
    if not any(module.directory.glob("*.tf")):
        raise StorageError(f"bucket {record.url()} has no Terraform module in "
                           f"{module.directory} (an earlier skyterra made it with rclone), so "
                           "skyterra cannot destroy it. Delete it with the store's own tools, "
                           f"then remove {module.directory}.")
    try:
        module.workspace(progress).destroy()
    except TerraformError as error:
        raise StorageError(f"could not delete bucket {record.url()}: {_reason(error)} "
                           f"Its Terraform state is kept in {module.directory}; fix the "
                           "store's settings or credentials and run `skyterra storage "
                           f"delete {record.name}` again.") from None
    if module.backend and (module.directory / backend.BACKEND_VALUES_FILE).exists():
        backend.delete_state(module.backend, record.name, prefix=backend.BUCKETS_PREFIX)
    forget(record.name)


def _reason(error: TerraformError) -> str:
    """Terraform's own message, without the 'terraform X failed in DIR:' line."""
    text = str(error).split("\n", 1)[-1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[-4:]) if lines else str(error)
