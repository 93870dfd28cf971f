"""Find processes a test left behind: node sshds and anything started on a node."""

from __future__ import annotations

from pathlib import Path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def leftover_processes(root: str) -> list[str]:
    """Processes whose command line or SKYTERRA_NODE_ID marker mentions `root`."""
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
        marker = any(item.startswith(b"SKYTERRA_NODE_ID=") and needle in item
                     for item in environ.split(b"\0"))
        if marker or (b"sshd" in cmdline and needle in cmdline):
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {text}")
    return found
