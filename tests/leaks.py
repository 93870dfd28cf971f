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
                     for item in environ.split(b"\0"))
        if marker or (b"sshd" in cmdline and needle in cmdline):
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {text}")
    return found
