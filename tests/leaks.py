"""Find what a test left behind: node sshds, anything started on a node, containers
(a node's podman keeps its store under the node's home, so a container's conmon names
that path), mounts, and the shared SSH master connections (connection.py) of clusters
under a skyterra home."""

from __future__ import annotations

from pathlib import Path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


MUX_MARKER = b"SKYTERRA_SSH_MUX="   # skyterra.connection.MUX_ENV, on every ssh it starts


def _master_of(cmdline: bytes, needle: bytes) -> bool:
    """An ssh master (`ssh: SOCKET [mux]`: ssh rewrites its command line and environment)
    whose socket is under `needle`, or in a short socket dir whose owner file names it."""
    if not (cmdline.startswith(b"ssh: ") and cmdline.rstrip(b"\0 ").endswith(b"[mux]")):
        return False
    socket = cmdline[5:].rstrip(b"\0 ")[:-len(b"[mux]")].strip()
    if needle in socket:
        return True
    return needle in _read(Path(socket.decode(errors="replace")).parent / "owner")


def leftover_processes(root: str) -> list[str]:
    """Processes whose command line, SKYTERRA_NODE_ID marker or SSH master marker (an
    `ssh: ... [mux]` connection of a cluster under `root`) mentions `root`: node sshds,
    jobs, masters, and containers (conmon, podman) whose store lies under `root`."""
    needle = root.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        cmdline = _read(proc / "cmdline")
        environ = _read(proc / "environ")
        state = _read(proc / "stat").split(b") ", 1)[-1][:1]
        if state == b"Z":
            continue  # a zombie holds nothing; its parent reaps it
        marker = any(item.startswith((b"SKYTERRA_NODE_ID=", MUX_MARKER)) and needle in item
                     for item in environ.split(b"\0")) or _master_of(cmdline, needle)
        program = cmdline.split(b"\0", 1)[0].rsplit(b"/", 1)[-1]
        tool = b"sshd" in cmdline or program in (b"conmon", b"podman")
        if marker or (tool and needle in cmdline):
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {text}")
    return found


def _unescape(field: str) -> str:
    """/proc/*/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts_under(root: str, mounts_file: str = "/proc/self/mounts") -> list[str]:
    """Mounts (overlay, tmpfs, bind, anything) whose mount point is `root` or below it.

    Read from this process's mount namespace, the host's: a local node mounts
    only inside its own private namespace, so any hit here leaked out of one.
    """
    prefix = root.rstrip("/") + "/"
    found = []
    for line in _read(Path(mounts_file)).decode(errors="replace").splitlines():
        fields = line.split(" ")
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        if point == root.rstrip("/") or point.startswith(prefix):
            found.append(f"{fields[2]} on {point} ({fields[0]})")
    return found


def leftovers(root: str) -> list[str]:
    """Everything a test under `root` must not leave behind: processes and mounts."""
    return leftover_processes(root) + [f"mount: {m}" for m in mounts_under(root)]
