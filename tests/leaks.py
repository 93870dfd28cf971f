"""Find processes a test left behind: node sshds, anything started on a node, and the
shared SSH master connections (connection.py) of clusters under a skyterra home."""

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
    """Processes whose command line, SKYTERRA_NODE_ID marker or SSH master marker
    (an `ssh: ... [mux]` connection of a cluster under `root`) mentions `root`."""
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
        if marker or (b"sshd" in cmdline and needle in cmdline):
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {text}")
    return found
