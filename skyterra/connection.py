"""One OpenSSH connection per node, shared by every command for a few minutes.

The first `ssh` to a node becomes the master of a multiplexed connection
(ControlMaster=auto, ControlPersist): later commands -- of this launch or of
the next `skyterra exec`, `logs`, `queue`, `cancel` -- open a new session on
it and skip the TCP and crypto handshake. The host key is checked when the
master connects, against the cluster's own known_hosts only.

Control sockets are per cluster and per node. UNIX socket paths are limited
to 108 bytes (and ssh appends a 17-character temporary suffix while it
creates one), so a socket lives in `<cluster>/ssh/cm/` when that path is
short enough, else in a short per-user directory `/tmp/skyterra-<uid>/<hash>/`
(0700, checked to be ours). `close` ends the masters of a cluster; destroy
calls it, so no master outlives its cluster.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

from skyterra.errors import ConfigError

PERSIST_SECONDS = 300
MUX_ENV = "SKYTERRA_SSH_MUX"   # set on every ssh we start (an ssh client's own marker)
OWNER_FILE = "owner"           # in a short socket dir: the cluster SSH dir it serves
_SOCKET_ROOM = 104 - 17        # sun_path minus the suffix ssh adds while creating the socket


def cluster_ssh_dir(known_hosts: Path | None, ssh_key: Path) -> Path:
    """The directory that identifies a cluster's connections: where its SSH files live."""
    return (known_hosts or ssh_key).parent


def socket_dir(ssh_dir: Path) -> Path:
    """Where the control sockets of the cluster whose SSH files are in `ssh_dir` live."""
    inside = ssh_dir / "cm"
    if len(str(inside)) + 1 + 10 <= _SOCKET_ROOM:
        return inside
    digest = hashlib.sha256(str(ssh_dir).encode()).hexdigest()[:12]
    return _short_root() / digest


def _short_root() -> Path:
    return Path(tempfile.gettempdir()) / f"skyterra-{os.geteuid()}"


def control_path(ssh_dir: Path, user: str, ip: str, port: int, pinned: str = "") -> Path:
    """The socket of one node's master: a short hash, so the path fits in sun_path.

    `pinned` is the node's line in the cluster's known_hosts: a master is reused only
    for the host key it checked when it connected. Change the pinned key and the next
    command connects anew -- and is refused unless the node has that key.
    """
    name = hashlib.sha256(f"{user}@{ip}:{port} {pinned}".encode()).hexdigest()[:10]
    return socket_dir(ssh_dir) / name


def ensure_socket_dir(ssh_dir: Path) -> Path:
    """Create the socket directory (0700); refuse one that someone else could write."""
    directory = socket_dir(ssh_dir)
    if directory.parent == _short_root():
        _private_dir(directory.parent)
        _private_dir(directory)
        owner = directory / OWNER_FILE  # whose sockets these are (leak checks read it)
        if not owner.exists():
            owner.write_text(str(ssh_dir) + "\n")
            owner.chmod(0o600)
    else:
        _private_dir(directory)
    return directory


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as error:
        raise ConfigError(f"cannot create the SSH control socket directory {path} "
                          f"({error.strerror}); free disk space or fix its permissions.") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ConfigError(f"{path} is not a directory owned by you; skyterra keeps SSH "
                          "control sockets there and will not use it. Remove it and try again.")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def mux_options(ssh_dir: Path, user: str, ip: str, port: int, pinned: str = "") -> list[str]:
    """ssh -o options that make a command use (or become) the node's shared master."""
    path = control_path(ssh_dir, user, ip, port, pinned)
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={path}",
            "-o", f"ControlPersist={PERSIST_SECONDS}"]


_pins: dict[tuple[str, int, int], dict[str, str]] = {}


def pinned_keys(known_hosts: Path | None) -> dict[str, str]:
    """known_hosts as {host name: its whole line}, cached while the file is unchanged."""
    if known_hosts is None:
        return {}
    try:
        info = known_hosts.stat()
    except OSError:
        return {}
    key = (str(known_hosts), info.st_mtime_ns, info.st_size)
    if key not in _pins:
        lines: dict[str, str] = {}
        for line in known_hosts.read_text(errors="replace").splitlines():
            if line.strip() and not line.startswith("#"):
                for name in line.split(" ", 1)[0].split(","):
                    lines[name] = line.strip()
        _pins.clear()
        _pins[key] = lines
    return _pins[key]


def mux_env(ssh_dir: Path) -> dict[str, str]:
    """The environment of an ssh that may become a master: ours plus the leak marker."""
    return {**os.environ, MUX_ENV: str(ssh_dir)}


def close(ssh_dir: Path) -> int:
    """End every master of the cluster whose SSH files are in `ssh_dir`; return how many.

    `ssh -O exit` on each socket; a socket whose master is already gone is removed.
    The per-cluster socket directory is removed too.
    """
    directory = socket_dir(ssh_dir)
    if not directory.is_dir():
        return 0
    sockets = [p for p in directory.iterdir() if p.is_socket()]
    processes = [subprocess.Popen(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}",
                                   "-O", "exit", "skyterra-node"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for sock in sockets]
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for sock in sockets:
        sock.unlink(missing_ok=True)
    (directory / OWNER_FILE).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass
    return len(sockets)


def close_node(ssh_dir: Path, user: str, ip: str, port: int, pinned: str = "") -> None:
    """End one node's master (a replaced node gets a new connection and host key)."""
    sock = control_path(ssh_dir, user, ip, port, pinned)
    if sock.is_socket():
        subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit",
                        "skyterra-node"], check=False, capture_output=True, timeout=10)
        sock.unlink(missing_ok=True)
