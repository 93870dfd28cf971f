"""Buckets at work: find or create them, upload sources, mount or copy them on every node.

What a task's bucket file_mounts (skyterra/storage.py) need done, in order:

1. `check_ready` (before any cloud resource exists): every store is reachable with
   this machine's credentials, and nodes of the chosen cloud can reach it.
2. `prepare` (cluster up, before setup): a `name:` bucket that does not exist is
   created as a Terraform resource in its own module and state
   (skyterra/bucketstate.py: SKYTERRA_HOME/storage/<name>/, record.json beside it);
   a `source:` folder is uploaded.
3. `attach`: on every node, COPY with `rclone copy`, MOUNT / MOUNT_CACHED with
   `rclone mount --daemon` (FUSE, inside the node's own mount namespace).
4. `run_epilogue` + `job_env`: the job's script ends by flushing MOUNT_CACHED write
   caches into the bucket, so a job is reported finished only after its
   checkpoints are in the bucket.
5. `release` (cluster destroyed): skyterra's `persistent: false` buckets are
   destroyed (terraform destroy of their module). A bucket skyterra did not create
   is never deleted.

Credentials: rclone reads its remote from RCLONE_CONFIG_<REMOTE>_<KEY> variables.
They reach a node on the SSH channel's stdin (never argv, never a file) and live
only in the environment of the rclone processes and the job. On a cloud with a
node identity (stores.store_of_cloud) nodes get no keys at all.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from skyterra import bucketstate, executor, storage
from skyterra.bucketstate import BucketRecord
from skyterra.clouds.stores import STORES, BucketRef, remote_env, store_of_cloud
from skyterra.cluster import Cluster, Node
from skyterra.errors import (
    ConfigError,
    MissingToolError,
    SkyterraError,
    StorageError,
    TaskError,
)
from skyterra.storage import COPY, MOUNT_CACHED, StorageMount
from skyterra.task import Task

Progress = Callable[[str], None]
MOUNTS_DIR = ".skyterra/mounts"   # on each node, relative to the login home
# rclone mount options a training job needs: big files read in large parallel chunks,
# other users (containers, a dataloader's workers under another uid) may read
# ($allow_other: --allow-other where FUSE permits it, see attach_script).
MOUNT_FLAGS = ("$allow_other", "--vfs-read-chunk-size", "64M", "--vfs-read-chunk-size-limit",
               "off", "--buffer-size", "32M", "--dir-cache-time", "10s", "--attr-timeout", "1s",
               "--transfers", "8", "--daemon", "--daemon-timeout", "60s")
CACHED_FLAGS = ("--vfs-cache-mode", "full", "--vfs-write-back", "2s",
                "--vfs-cache-max-age", "24h")
COPY_FLAGS = ("--transfers", "16", "--checkers", "16", "--multi-thread-streams", "4")


REMOTE = "SKY"


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
    """Every bucket exists (a `name:` one that does not is created as its own Terraform
    module, skyterra/bucketstate.py), is recorded as used by the cluster, and has its
    `source:` folder uploaded."""
    for mount in task.storage_mounts:
        record = bucketstate.load(mount.ref.bucket)
        if not exists(mount.ref):
            if not mount.create:
                raise StorageError(f"{mount.field}: bucket {mount.ref.url()} does not exist; "
                                   "create it, or use the dict form with `name:` and "
                                   "`store:` to let skyterra create it.")
            progress(f"creating bucket {mount.ref.url()} (its own Terraform state)")
            template = bucketstate.create(mount.ref, progress)
            record = BucketRecord(mount.ref.bucket, mount.ref.store, mount.ref.account,
                                  created_by_skyterra=True, persistent=mount.persistent,
                                  clusters=record.clusters if record else [],
                                  module=template)
        elif record is None:
            record = BucketRecord(mount.ref.bucket, mount.ref.store, mount.ref.account,
                                  persistent=True)
        if record.created_by_skyterra:
            record.persistent = record.persistent and mount.persistent
        if cluster_name not in record.clusters:
            record.clusters.append(cluster_name)
        bucketstate.save(record)
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
            # node-down.sh unmounts what is listed here when the node shares this
            # machine's mounts (a local node not run as root)
            f"  printf '%s\\n' {point} >>\"$HOME\"/{MOUNTS_DIR}/points",
            "fi"]


def attach_script(task: Task, cloud: str) -> str:
    """The bash script (fed on stdin) that makes every mount of the task on one node."""
    lines = ["set -u", f'mkdir -p "$HOME"/{MOUNTS_DIR} && chmod 700 "$HOME"/.skyterra',
             "fail() { echo \"mount point $1: $2\" >&2; exit 3; }",
             # FUSE lets a user other than root pass allow_other only with
             # user_allow_other in /etc/fuse.conf
             ("allow_other=--allow-other; [ \"$(id -u)\" = 0 ] || grep -qsx "
              "user_allow_other /etc/fuse.conf || allow_other="),
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
    """Forget the cluster in every bucket record; destroy skyterra's non-persistent ones.

    Never raises: the cluster's nodes are gone already, so a bucket that cannot be
    deleted now (store unreachable, no credentials) must not keep `destroy` from
    forgetting the cluster. It is named in a warning and keeps its record and state,
    for `skyterra storage delete NAME` later. A bucket skyterra did not create is
    forgotten when its last cluster goes (it has no state of skyterra's), never deleted.
    """
    for record in bucketstate.all_records():
        if cluster_name not in record.clusters:
            continue
        record.clusters.remove(cluster_name)
        if record.clusters:
            bucketstate.save(record)
        elif not record.created_by_skyterra:
            bucketstate.forget(record.name)
        elif record.persistent:
            bucketstate.save(record)
        else:
            _destroy_non_persistent(record, progress)


def _destroy_non_persistent(record: BucketRecord, progress: Progress) -> None:
    progress(f"deleting bucket {record.url()} (persistent: false)")
    bucketstate.save(record)   # this cluster no longer uses it, whatever happens next
    try:
        bucketstate.destroy(record, progress)
    except SkyterraError as error:   # unreachable store, no credentials, no terraform
        progress(f"WARNING: bucket {record.name} (persistent: false) was not deleted and is "
                 f"kept: {error}")
