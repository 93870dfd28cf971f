"""Bucket file_mounts (SkyPilot's storage): what the task asks for, checked before anything.

Two forms, as in SkyPilot's task YAML:

    file_mounts:
      /data: s3://bucket/prefix          # COPY the objects onto every node
      /ckpt:                             # the dict form
        name: my-ckpts                   # created when it does not exist
        source: ./local-folder           # optional: uploaded first (or a bucket URL)
        store: s3 | gcs | azure
        mode: MOUNT | COPY | MOUNT_CACHED
        persistent: true                 # false: deleted when the cluster is destroyed

This module only parses and validates (no network): skyterra/buckets.py does
the work. Every bad value is a TaskError naming `file_mounts.<path>.<key>`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from skyterra.clouds.stores import STORES, BucketRef, store_for_url
from skyterra.errors import MissingValueError, NotSupportedError, TaskError, did_you_mean

COPY, MOUNT, MOUNT_CACHED = "COPY", "MOUNT", "MOUNT_CACHED"
MODES = (MOUNT, COPY, MOUNT_CACHED)
KEYS = ("name", "source", "store", "mode", "persistent")
# Keys of SkyPilot's storage spec that only tune its own mount daemons or bookkeeping:
# accepted with a warning (see `ignored_keys`). skyterra mounts with its own rclone flags.
IGNORED_KEYS = {
    "type": "a MOUNT_CACHED workload profile (rclone cache tuning)",
    "config": "rclone / mount tuning",
    "force_managed": "SkyPilot's older bookkeeping of who owns the bucket",
    "_force_delete": "SkyPilot's internal bookkeeping",
    "_is_sky_managed": "SkyPilot's internal bookkeeping",
    "_bucket_sub_path": "SkyPilot's internal bookkeeping",
}
# SkyPilot stores skyterra does not reach (yet): named so the error is precise.
OTHER_STORES = ("r2", "ibm", "oci", "nebius", "cos", "vastdata", "hf", "coreweave")


@dataclasses.dataclass(frozen=True)
class StorageMount:
    """One bucket mount point: where on the nodes, which bucket, how."""

    path: str                    # the mount point on every node (absolute or ~/...)
    ref: BucketRef
    mode: str
    persistent: bool = True
    source: str | None = None    # a local folder to upload first (as written in the YAML)
    create: bool = False         # `name:` given: create the bucket when it does not exist

    @property
    def field(self) -> str:
        return f"file_mounts.{self.path}"

    def local_source(self, base_dir: Path) -> Path | None:
        if self.source is None:
            return None
        return base_dir / os.path.expanduser(self.source)


def ignored_keys(path: str, value: Any) -> list[str]:
    """Warnings for the storage keys skyterra accepts but does not apply (IGNORED_KEYS)."""
    if not isinstance(value, dict):
        return []
    out = [f"file_mounts.{path}.{key} is ignored: it is {IGNORED_KEYS[key]}."
           for key in value if key in IGNORED_KEYS and value[key] is not None]
    mount = value.get("config", {}).get("mount") if isinstance(value.get("config"), dict) else None
    if isinstance(mount, dict) and mount.get("read_only"):
        out.append(f"file_mounts.{path}: config.mount.read_only is not applied; the bucket "
                   "is mounted read-write, so take care not to write to it.")
    return out


def is_bucket_mount(value: Any) -> bool:
    """A file_mounts value that names a bucket (and not a local path)."""
    return isinstance(value, dict) or (isinstance(value, str) and "://" in value)


# `store:` left out: the bucket lives on the store of the cloud the task runs on
# (SkyPilot's rule); skyterra/buckets.py binds it once the cloud is known.
STORE_OF_CLOUD = ""


def parse(path: str, value: Any, deferred: bool = False) -> StorageMount:
    """One bucket file_mounts entry → StorageMount (TaskError naming the field if bad).
    `deferred`: the entry names a required env not given yet, so the bucket name is
    checked at launch (which refuses until the env has a value)."""
    field = f"file_mounts.{path}"
    _check_mount_point(path, field)
    if isinstance(value, str):
        return StorageMount(path, _ref_from_url(value, field), COPY)
    if str(value.get("store", "")).lower() == "volume":
        raise NotSupportedError("volumes (store: volume: network disks or instance SSDs "
                                "attached to the nodes) are not supported by skyterra; mount "
                                "a bucket instead (store: s3, gcs or azure), or copy local "
                                "data with a plain file_mounts path.", field=f"{field}.store")
    unknown = [k for k in value if k not in KEYS and k not in IGNORED_KEYS]
    if unknown:
        key = str(unknown[0])
        raise TaskError(f"unknown key '{key}'.{did_you_mean(key, KEYS)}", field=f"{field}.{key}")
    if isinstance(value.get("source"), list) and len(value["source"]) == 1:
        value = {**value, "source": value["source"][0]}   # SkyPilot's ['./data'] = './data'
    if isinstance(value.get("source"), list):
        raise NotSupportedError("a list of local folders as one bucket's source is not "
                                "supported by skyterra; give one folder per bucket mount "
                                "(or upload the folders in setup).", field=f"{field}.source")
    mode = _mode(value.get("mode"), f"{field}.mode")
    persistent = value.get("persistent", True)
    if not isinstance(persistent, bool):
        raise TaskError(f"expected true or false, got {persistent!r}.",
                        field=f"{field}.persistent")
    source, name = value.get("source"), value.get("name")
    if isinstance(name, str) and not name.strip():
        name = None  # `name: ""` (or an env left "") is the placeholder `name:` is: noted
    for key, item in (("source", source), ("name", name)):
        if item is not None and (not isinstance(item, str) or not item.strip()):
            raise TaskError(f"expected a non-empty string, got {item!r}.", field=f"{field}.{key}")
    store = None if deferred and "$" in str(value.get("store", "")) else _store(
        value.get("store"), f"{field}.store")
    if isinstance(source, str) and "://" in source:
        ref = _ref_from_url(source, f"{field}.source")
        if store and store != ref.store:
            raise TaskError(f"store: {store} does not match the source {source!r} "
                            f"({ref.store}); remove store or fix the URL.", field=f"{field}.store")
        if name and name != ref.bucket:
            raise TaskError(f"name {name!r} differs from the bucket of source {source!r}; "
                            "give one of them.", field=f"{field}.name")
        return StorageMount(path, ref, mode, persistent)
    if not name:
        raise MissingValueError("a bucket mount needs `name:` (the bucket to create or use) or a "
                        "bucket URL as `source:` (s3://, gs://, https://<account>.blob.core."
                        "windows.net/<container>).", field=field)
    if not store:
        return StorageMount(path, BucketRef(STORE_OF_CLOUD, name), mode, persistent,
                            source=source, create=True)
    if not deferred:
        STORES[store].check_name(name, f"{field}.name")
    account = STORES[store].settings_account() if store == _azure() else ""
    return StorageMount(path, BucketRef(store, name, "", account), mode, persistent,
                        source=source, create=True)


def _azure() -> str:
    return next(name for name, s in STORES.items() if s.rclone_type == "azureblob")


def bind_store(mount: StorageMount, store: str | None, cloud: str) -> StorageMount:
    """A mount without `store:` on the store of `cloud` (the cloud the task runs on)."""
    if mount.ref.store != STORE_OF_CLOUD:
        return mount
    if store is None:
        raise TaskError(f"bucket {mount.ref.bucket!r} has no `store:` and the {cloud} cloud "
                        f"has no store of its own; add store: ({', '.join(STORES)}).",
                        field=f"{mount.field}.store")
    STORES[store].check_name(mount.ref.bucket, f"{mount.field}.name")
    account = STORES[store].settings_account() if store == _azure() else ""
    return dataclasses.replace(mount, ref=BucketRef(store, mount.ref.bucket, "", account))


def _check_mount_point(path: str, field: str) -> None:
    if not (path.startswith(("/", "~/"))) or path.rstrip("/") in ("", "~"):
        raise TaskError(f"mount point {path!r} must be an absolute path (or ~/...) below /, "
                        "e.g. /data.", field=field)
    if any(part == ".." for part in path.split("/")) or "\n" in path or "\x00" in path:
        raise TaskError(f"mount point {path!r} may not contain '..' or control characters.",
                        field=field)


def _ref_from_url(url: str, field: str) -> BucketRef:
    store = store_for_url(url)
    if store is None:
        scheme = url.split("://", 1)[0]
        hint = (f" skyterra does not reach {scheme}:// buckets yet." if scheme in OTHER_STORES
                else "")
        raise TaskError(f"{url!r} is not a bucket URL skyterra knows: use s3://BUCKET/PATH, "
                        "gs://BUCKET/PATH or https://ACCOUNT.blob.core.windows.net/CONTAINER/"
                        f"PATH.{hint}", field=field)
    ref = store.parse_url(url)
    store.check_name(ref.bucket, field)
    if store.name == _azure() and not ref.account:
        raise TaskError(f"{url!r}: no storage account (az:// URLs take it from "
                        "AZURE_STORAGE_ACCOUNT or AZURE_STORAGE_CONNECTION_STRING).", field=field)
    return ref


def _mode(value: Any, field: str) -> str:
    if value is None:
        return MOUNT
    text = str(value).upper()
    if text not in MODES:
        raise TaskError(f"unknown mode {value!r}; use one of {', '.join(MODES)}."
                        f"{did_you_mean(text, MODES)}", field=field)
    return text


def _store(value: Any, field: str) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if text in OTHER_STORES:
        raise NotSupportedError(f"store {value!r} is not supported by skyterra; use one of "
                                f"{', '.join(STORES)}.", field=field)
    if text not in STORES:
        raise TaskError(f"unknown store {value!r}; use one of {', '.join(STORES)}."
                        f"{did_you_mean(text, tuple(STORES))}", field=field)
    return text
