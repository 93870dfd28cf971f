"""The local cluster registry: one directory per cluster under ~/.skyterra/clusters.

A cluster directory holds the rendered module, terraform.tfvars.json, the
Terraform state, the cluster's SSH key and cluster.json (metadata). It is
written *before* Terraform runs, so that whatever happens during apply, the
user can still `skyterra destroy` it. A lock file keeps two commands from
working on one cluster at once.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skyterra import paths
from skyterra.errors import (
    ClusterBusyError,
    ClusterNotFoundError,
    ConfigError,
    MissingToolError,
    TaskError,
)

CLUSTER_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,33}[a-z0-9])?$")
STATUS_INIT, STATUS_UP, STATUS_FAILED = "INIT", "UP", "FAILED"
STATUS_STOPPED = "STOPPED"   # skyterra stop / autostop: disks kept, compute not paid
# Files (and Terraform's folder) of a cluster dir that only the owner may read.
PRIVATE_FILES = ("cluster.json", "terraform.tfvars.json", "terraform.tfstate",
                 "terraform.tfstate.backup", "plan.tfplan", "outputs.json", ".terraform")


def check_cluster_name(name: str) -> str:
    """Names every cloud accepts in resource names: lowercase, digits, '-', ≤ 35 chars."""
    if not isinstance(name, str) or not CLUSTER_NAME.match(name):
        raise TaskError(f"cluster name {name!r} is not valid: use 1-35 lowercase letters, "
                        "digits and '-', starting with a letter and not ending with '-' "
                        "(the rule every cloud accepts).", field="cluster_name")
    return name


@dataclasses.dataclass
class ClusterRecord:
    """cluster.json: what skyterra remembers about a cluster between commands."""

    name: str
    cloud: str = ""
    status: str = STATUS_INIT
    owner: str = "skyterra"          # "external": nodes made by someone else (attach)
    num_nodes: int = 1
    region: str | None = None
    zone: str | None = None
    instance_type: str = ""
    accelerator: str | None = None
    accelerator_count: int = 0
    price: float = 0.0                # $/hour for the whole cluster
    nodes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ssh_user: str = ""
    ssh_port: int = 22
    ssh_key: str = ""
    task: dict[str, Any] = dataclasses.field(default_factory=dict)
    node_env: dict[str, str] = dataclasses.field(default_factory=dict)
    # Values a cloud keeps stable for the cluster (Cloud.prepare: the local cloud's slot,
    # port and nodes dir; the SSH ingress chosen at launch).
    cloud_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The task's container (image_id: docker:...), container.ContainerSpec.to_record().
    container: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: float = dataclasses.field(default_factory=time.time)
    launched_at: float | None = None
    last_error: str = ""
    # autostop.Autostop as a mapping (idle_minutes, down, wait_for), or {} when off.
    autostop: dict[str, Any] = dataclasses.field(default_factory=dict)
    status_reason: str = ""           # why the status is what it is ("autostopped after ...")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def clusters_root() -> Path:
    return paths.home() / "clusters"


def ensure_home() -> Path:
    """Create ~/.skyterra (0700) or say clearly why it cannot be used."""
    root = clusters_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(paths.home(), 0o700)
        probe = root / f".write-test-{os.getpid()}-{threading.get_ident()}"  # threads too
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to the skyterra home {paths.home()} "
                          f"({error.strerror or error}). Free some disk space or fix its "
                          "permissions, or point SKYTERRA_HOME at a writable directory."
                          ) from None
    return root


def ensure_key(key: Path, comment: str) -> tuple[str, Path]:
    """An ed25519 key pair at `key` (dir 0700, key 0600), made if missing:
    (public key text, private key path)."""
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                            "-f", str(key)], check=True, capture_output=True)
        except FileNotFoundError:
            raise MissingToolError("ssh-keygen is not installed; install the OpenSSH client "
                                   "(Debian: apt-get install openssh-client).") from None
    os.chmod(key.parent, 0o700)
    os.chmod(key, 0o600)
    return key.with_suffix(".pub").read_text().strip(), key


class ClusterDir:
    """One cluster's directory: paths, metadata and the lock."""

    def __init__(self, name: str):
        self.name = check_cluster_name(name)
        self.path = clusters_root() / name

    # --- paths ---------------------------------------------------------------------
    @property
    def metadata_path(self) -> Path:
        return self.path / "cluster.json"

    @property
    def key_path(self) -> Path:
        return self.path / "ssh" / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.path / "ssh" / "known_hosts"

    @property
    def jobs_path(self) -> Path:
        return self.path / "jobs"

    def exists(self) -> bool:
        return self.metadata_path.exists()

    # --- metadata ------------------------------------------------------------------
    def create(self) -> None:
        ensure_home()
        self.path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.path, 0o700)

    def load(self) -> ClusterRecord:
        try:
            return ClusterRecord.from_json(json.loads(self.metadata_path.read_text()))
        except FileNotFoundError:
            raise ClusterNotFoundError(
                f"cluster '{self.name}' does not exist. `skyterra status` lists clusters."
            ) from None
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"{self.metadata_path} is damaged ({error}). If the cluster's "
                              f"nodes are gone, remove {self.path}; otherwise run terraform "
                              f"destroy in {self.path} first.") from None

    def save(self, record: ClusterRecord) -> None:
        self.create()
        text = json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True) + "\n"
        tmp = self.metadata_path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, self.metadata_path)
        except OSError as error:
            raise ConfigError(f"cannot write {self.metadata_path} ({error.strerror}); free "
                              "disk space and run the command again.") from None

    def update(self, **changes: Any) -> ClusterRecord:
        record = self.load()
        for key, value in changes.items():
            setattr(record, key, value)
        self.save(record)
        return record

    def protect_files(self) -> None:
        """Owner-only state: Terraform writes its state and plan files 0644, and they
        hold every tfvars value and resource attribute."""
        for name in PRIVATE_FILES:
            try:
                os.chmod(self.path / name, 0o700 if name == ".terraform" else 0o600)
            except FileNotFoundError:
                pass

    # --- key -----------------------------------------------------------------------
    def ensure_key(self) -> tuple[str, Path]:
        """The cluster's own ed25519 key (0600): (public key text, private key path)."""
        return ensure_key(self.key_path, f"skyterra-{self.name}")

    # --- lock ----------------------------------------------------------------------
    def lock(self, command: str = "") -> ClusterLock:
        return ClusterLock(self, command)


class ClusterLock:
    """An exclusive flock on <cluster>/lock; the holder's pid is written inside."""

    def __init__(self, cluster: ClusterDir, command: str):
        self.cluster = cluster
        self.command = command
        self._fd: int | None = None

    def __enter__(self) -> ClusterLock:  # noqa: PYI034 - typing.Self needs Python 3.11
        self.cluster.create()
        path = self.cluster.path / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = path.read_text().strip() or "unknown"
            raise ClusterBusyError(
                f"cluster '{self.cluster.name}' is busy ({holder}). Wait for that command to "
                "finish, or stop it, then try again.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}{': ' + self.command if self.command else ''}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            if not self.cluster.metadata_path.exists():
                # The cluster was removed while we held the lock: leave no empty dir behind.
                (self.cluster.path / "lock").unlink(missing_ok=True)
                try:
                    self.cluster.path.rmdir()
                except OSError:
                    pass
            os.close(self._fd)
            self._fd = None


def forget(cluster: ClusterDir) -> None:
    """Drop everything this machine keeps about a cluster: its shared SSH connections, its
    `ssh NAME` entries and its directory (the caller holds the lock; the lock file goes
    when it is released)."""
    from skyterra import connection, ssh_config

    connection.close(cluster.known_hosts_path.parent)
    ssh_config.remove(cluster.name)
    remove_cluster_dir(cluster, keep_lock=True)


def list_clusters() -> Iterator[ClusterRecord]:
    root = clusters_root()
    if not root.is_dir():
        return
    for entry in sorted(root.iterdir()):
        if (entry / "cluster.json").exists() and CLUSTER_NAME.match(entry.name):
            try:
                yield ClusterDir(entry.name).load()
            except ConfigError:
                yield ClusterRecord(name=entry.name, status="DAMAGED")


def remove_cluster_dir(cluster: ClusterDir, keep_lock: bool = False) -> None:
    """Delete the directory after a successful destroy (keeps nothing secret behind).

    keep_lock: called while holding the lock; the lock file goes last, by the holder.
    """
    import shutil

    if not cluster.path.exists():
        return
    for entry in cluster.path.iterdir():
        if keep_lock and entry.name == "lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if not keep_lock:
        shutil.rmtree(cluster.path, ignore_errors=True)

