"""Buckets at work: find or create them, upload sources, mount or copy them on every node.

What a task's bucket file_mounts (skyterra/storage.py) need done, in order:

1. `check_ready` (before any cloud resource exists): every store is reachable with
   this machine's credentials, and nodes of the chosen cloud can reach it.
2. `prepare` (cluster up, before setup): a `name:` bucket that does not exist is
   created and recorded as skyterra's (SKYTERRA_HOME/storage/<name>/record.json);
   a `source:` folder is uploaded.
3. `attach`: on every node, COPY with `rclone copy`, MOUNT / MOUNT_CACHED with
   `rclone mount --daemon` (FUSE, inside the node's own mount namespace).
4. `run_epilogue` + `job_env`: the job's script ends by flushing MOUNT_CACHED write
   caches into the bucket, so a job is reported finished only after its
   checkpoints are in the bucket.
5. `release` (cluster destroyed): skyterra's `persistent: false` buckets are deleted.
   A bucket skyterra did not create is never deleted.

Credentials: rclone reads its remote from RCLONE_CONFIG_<REMOTE>_<KEY> variables.
They reach a node on the SSH channel's stdin (never argv, never a file) and live
only in the environment of the rclone processes and the job. On a cloud with a
node identity (stores.store_of_cloud) nodes get no keys at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import executor, paths, storage
from skyterra.clouds.stores import STORES, BucketRef, store_of_cloud
from skyterra.cluster import Cluster, Node
from skyterra.errors import ConfigError, MissingToolError, SkyterraError, TaskError
from skyterra.storage import COPY, MOUNT_CACHED, StorageMount
from skyterra.task import Task

Progress = Callable[[str], None]
MOUNTS_DIR = ".skyterra/mounts"   # on each node, relative to the login home
# rclone mount options a training job needs: big files read in large parallel chunks,
# other users (containers, a dataloader's workers under another uid) may read.
MOUNT_FLAGS = ("--allow-other", "--vfs-read-chunk-size", "64M", "--vfs-read-chunk-size-limit",
               "off", "--buffer-size", "32M", "--dir-cache-time", "10s", "--attr-timeout", "1s",
               "--transfers", "8", "--daemon", "--daemon-timeout", "60s")
CACHED_FLAGS = ("--vfs-cache-mode", "full", "--vfs-write-back", "2s",
                "--vfs-cache-max-age", "24h")
COPY_FLAGS = ("--transfers", "16", "--checkers", "16", "--multi-thread-streams", "4")


class StorageError(SkyterraError):
    """A bucket could not be found, created, reached or removed."""


# --- the registry of buckets skyterra knows --------------------------------------------
@dataclasses.dataclass
class BucketRecord:
    name: str
    store: str
    account: str = ""
    created_by_skyterra: bool = False
    persistent: bool = True
    clusters: list[str] = dataclasses.field(default_factory=list)
    created_at: float = dataclasses.field(default_factory=time.time)

    @property
    def ref(self) -> BucketRef:
        return BucketRef(self.store, self.name, "", self.account)

    def url(self) -> str:
        return self.ref.url()


def storage_dir() -> Path:
    return paths.home() / "storage"


def _record_path(name: str) -> Path:
    return storage_dir() / name / "record.json"


def load(name: str) -> BucketRecord | None:
    try:
        return BucketRecord(**json.loads(_record_path(name).read_text()))
    except FileNotFoundError:
        return None


def save(record: BucketRecord) -> None:
    path = _record_path(record.name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True))
    os.replace(tmp, path)


def all_records() -> list[BucketRecord]:
    if not storage_dir().is_dir():
        return []
    names = sorted(p.parent.name for p in storage_dir().glob("*/record.json"))
    return [record for record in map(load, names) if record is not None]


# --- rclone on this machine ----------------------------------------------------------
REMOTE = "SKY"


def remote_env(remote: str, values: dict[str, str]) -> dict[str, str]:
    """rclone's environment form of a remote's settings."""
    env = {"RCLONE_CONFIG": "/dev/null"}
    for key, value in values.items():
        env[f"RCLONE_CONFIG_{remote}_{key.upper()}"] = value
    return env


def _host_env(ref: BucketRef) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    # rclone 1.60's S3 client cannot load AWS_CA_BUNDLE into its transport (it fails);
    # its own --ca-cert flag is given instead (see _rclone).
    env.pop("AWS_CA_BUNDLE", None)
    env.update(remote_env(REMOTE, STORES[ref.store].host_remote(ref)))
    return env


def _rclone(ref: BucketRef, *args: str, check: bool = True,
            timeout: float = 3600) -> subprocess.CompletedProcess:
    if shutil.which("rclone") is None:
        raise MissingToolError("rclone is not installed; bucket file_mounts need it on this "
                               "machine (Debian: apt-get install rclone fuse3).")
    bundle = os.environ.get("AWS_CA_BUNDLE", "")
    extra = ["--ca-cert", bundle] if bundle and Path(bundle).is_file() else []
    result = subprocess.run(["rclone", "--retries", "2", "--low-level-retries", "3",
                             "--contimeout", "10s", *extra, *args],
                            env=_host_env(ref), capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["rclone failed"])[-1]
        raise StorageError(f"{' '.join(args[:1])} on {ref.url()} failed: {detail}. Check "
                           "the credentials and endpoint settings of the store.")
    return result


def exists(ref: BucketRef) -> bool:
    """Does the bucket exist (and can we list it)?"""
    result = _rclone(ref, "lsjson", "--max-depth", "1", "--no-modtime", "--no-mimetype",
                     f"{REMOTE}:{ref.bucket}", check=False, timeout=120)
    if result.returncode == 0:
        return True
    if "not found" in result.stderr or "NoSuchBucket" in result.stderr or \
            "ContainerNotFound" in result.stderr:
        return False
    detail = (result.stderr.strip().splitlines() or ["rclone failed"])[-1]
    raise StorageError(f"cannot reach bucket {ref.url()}: {detail}. Check the store's "
                       "credentials and endpoint settings.")


def create(ref: BucketRef) -> None:
    _rclone(ref, "mkdir", f"{REMOTE}:{ref.bucket}")


def delete(ref: BucketRef) -> None:
    """Delete the bucket and everything in it."""
    _rclone(ref, "purge", f"{REMOTE}:{ref.bucket}")


def upload(source: Path, ref: BucketRef) -> None:
    _rclone(ref, "copy", *COPY_FLAGS, str(source), f"{REMOTE}:{ref.path}")


# --- 1. before anything is created ---------------------------------------------------
def check_ready(task: Task, cloud: str) -> None:
    """Stores reachable from here, and from nodes of `cloud`: else a clear error now."""
    if not task.storage_mounts:
        return
    if shutil.which("rclone") is None:
        raise MissingToolError("rclone is not installed; bucket file_mounts need it on this "
                               "machine (Debian: apt-get install rclone fuse3).")
    node_store = store_of_cloud(cloud)
    for mount in task.storage_mounts:
        mount = storage.bind_store(mount, node_store, cloud)
        store = STORES[mount.ref.store]
        if node_store is not None and store.name != node_store:
            raise TaskError(f"bucket {mount.ref.url()} is on {store.name}, but the task runs "
                            f"on {cloud}, whose nodes only get an identity for {node_store} "
                            "buckets (skyterra never copies long-lived keys onto cloud "
                            f"nodes). Use a {node_store} bucket, or run the task on "
                            f"{store.cloud}.", source=task.source, field=mount.field)
        if not store.has_credentials():
            raise ConfigError(f"{mount.field}: {store.no_credentials()}; nothing was created.")


def bind_stores(task: Task, cloud: str) -> None:
    """Mounts without `store:` go to the store of the cloud the task runs on."""
    node_store = store_of_cloud(cloud)
    task.storage_mounts = [storage.bind_store(m, node_store, cloud)
                           for m in task.storage_mounts]


# --- 2. buckets exist, sources uploaded ------------------------------------------------
def prepare(task: Task, cluster_name: str, progress: Progress) -> None:
    for mount in task.storage_mounts:
        record = load(mount.ref.bucket)
        if not exists(mount.ref):
            if not mount.create:
                raise StorageError(f"{mount.field}: bucket {mount.ref.url()} does not exist; "
                                   "create it, or use the dict form with `name:` and "
                                   "`store:` to let skyterra create it.")
            progress(f"creating bucket {mount.ref.url()}")
            create(mount.ref)
            record = BucketRecord(mount.ref.bucket, mount.ref.store, mount.ref.account,
                                  created_by_skyterra=True, persistent=mount.persistent)
        elif record is None:
            record = BucketRecord(mount.ref.bucket, mount.ref.store, mount.ref.account,
                                  persistent=True)
        if record.created_by_skyterra:
            record.persistent = record.persistent and mount.persistent
        if cluster_name not in record.clusters:
            record.clusters.append(cluster_name)
        save(record)
        source = mount.local_source(task.base_dir)
        if source is not None:
            progress(f"uploading {source} to {mount.ref.url()}")
            upload(source, mount.ref)


# --- 3. on the nodes ---------------------------------------------------------------------
def _node_remote(mount: StorageMount, cloud: str) -> dict[str, str]:
    store = STORES[mount.ref.store]
    if store_of_cloud(cloud) is not None:
        return store.identity_remote(mount.ref)
    return store.host_remote(mount.ref)


def node_env(task: Task, cloud: str) -> dict[str, str]:
    """The rclone remotes SKY0, SKY1 … of the task's mounts, as environment variables."""
    env: dict[str, str] = {}
    for index, mount in enumerate(task.storage_mounts):
        env.update(remote_env(f"{REMOTE}{index}", _node_remote(mount, cloud)))
    return env


def _node_path(path: str) -> str:
    """A mount point for the node's shell: quoted, with a leading ~/ left expandable."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:].rstrip("/") or ".")
    return shlex.quote(path.rstrip("/") or "/")


def _attach_lines(index: int, mount: StorageMount) -> list[str]:
    remote = shlex.quote(f"{REMOTE}{index}:{mount.ref.path}")
    point = _node_path(mount.path)
    log = f'"$HOME"/{MOUNTS_DIR}/{index}.log'
    if mount.mode == COPY:
        return [f"mkdir -p -- {point}",
                (f"rclone copy {' '.join(COPY_FLAGS)} {remote} {point} >>{log} 2>&1 || "
                f"fail {point} \"rclone copy failed: $(tail -n 1 {log})\"")]
    flags = list(MOUNT_FLAGS)
    if mount.mode == MOUNT_CACHED:
        flags += [*CACHED_FLAGS, "--cache-dir", f'"$HOME"/{MOUNTS_DIR}/cache{index}']
    return [(f"if [ -e {point} ] && [ ! -d {point} ]; then fail {point} 'exists as a file on "
            "the node; choose another mount point'; fi"),
            f"if ! mountpoint -q -- {point}; then",
            f"  mkdir -p -- {point}",
            (f"  rclone mount {remote} {point} {' '.join(flags)} --log-file {log} "
            f"</dev/null >/dev/null 2>&1 || fail {point} \"rclone mount failed: $(tail -n 3 {log} | tr '\\n' ' ')\""),
            "fi"]


def attach_script(task: Task, cloud: str) -> str:
    """The bash script (fed on stdin) that makes every mount of the task on one node."""
    lines = ["set -u", f'mkdir -p "$HOME"/{MOUNTS_DIR} && chmod 700 "$HOME"/.skyterra',
             "fail() { echo \"mount point $1: $2\" >&2; exit 3; }",
             ("command -v rclone >/dev/null || { echo 'rclone is not installed on the node' "
             ">&2; exit 4; }")]
    lines += executor.export_lines(node_env(task, cloud)).splitlines()
    for index, mount in enumerate(task.storage_mounts):
        lines += _attach_lines(index, mount)
    return "\n".join(lines) + "\n"


def attach(cluster: Cluster, task: Task, progress: Progress) -> None:
    """COPY / MOUNT / MOUNT_CACHED every bucket mount on every node, in parallel."""
    if not task.storage_mounts:
        return
    progress(f"attaching {len(task.storage_mounts)} bucket mount(s) on every node")
    script = attach_script(task, cluster.cloud)

    def on(node: Node) -> None:
        shell = executor.NodeShell(cluster, node)
        try:
            result = shell.run("bash -s", in_stream=script)  # text on stdin, then EOF
        finally:
            shell.close()
        if not result.ok:
            raise RuntimeError((result.stderr.strip().splitlines() or ["failed"])[-1])

    done = executor.for_each_node(cluster, on)
    for node in done.failed_nodes():
        error = done.failed[node.rank]
        if isinstance(error, (KeyboardInterrupt, executor.HostKeyMismatchError)):
            raise error
        raise StorageError(f"bucket mounts on {node.name} ({node.ip}) of cluster "
                           f"'{cluster.name}' failed: {error}.")


# --- 4. the job flushes its cached writes ------------------------------------------
def run_epilogue(task: Task) -> str:
    """Shell lines after the run: upload what MOUNT_CACHED mounts still hold in their
    write-back cache, keeping the run's exit code (the job ends only after this)."""
    lines = []
    for index, mount in enumerate(task.storage_mounts):
        if mount.mode != MOUNT_CACHED:
            continue
        cache = f'"$HOME"/{MOUNTS_DIR}/cache{index}/vfs/*/{shlex.quote(mount.ref.path)}'
        remote = shlex.quote(f"{REMOTE}{index}:{mount.ref.path}")
        lines.append(f"for d in {cache}; do [ -d \"$d\" ] || continue; rclone copy "
                     f"{' '.join(COPY_FLAGS)} \"$d\" {remote} || __sky_rc=${{__sky_rc:-1}}; "
                     "done")
    if not lines:
        return ""
    return "\n".join(["", "__sky_code=$?", "__sky_rc=", *lines,
                      ('if [ "$__sky_code" = 0 ] && [ -n "$__sky_rc" ]; then '
                      "echo 'skyterra: flushing a MOUNT_CACHED mount failed' >&2; exit 1; fi"),
                      'exit "$__sky_code"', ""])


def wrap_run(task: Task, script: str) -> str:
    """The run script with the flush after it (the user's script runs in a subshell, so
    its `exit` does not skip the flush)."""
    epilogue = run_epilogue(task)
    if not epilogue:
        return script
    return "(\n" + script + "\n)" + epilogue


# --- 5. when a cluster is destroyed ----------------------------------------------------
def release(cluster_name: str, progress: Progress) -> None:
    """Forget the cluster in every bucket record; delete skyterra's non-persistent ones."""
    for record in all_records():
        if cluster_name not in record.clusters:
            continue
        record.clusters.remove(cluster_name)
        if record.created_by_skyterra and not record.persistent and not record.clusters:
            progress(f"deleting bucket {record.url()} (persistent: false)")
            remove(record)
        else:
            save(record)


def remove(record: BucketRecord) -> None:
    """Delete a bucket skyterra created (others: forget the record only)."""
    if record.created_by_skyterra and exists(record.ref):
        delete(record.ref)
    shutil.rmtree(_record_path(record.name).parent, ignore_errors=True)


def describe(record: BucketRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["url"] = record.url()
    return data
