"""Run the real `skyterra` CLI in a subprocess, the way a user does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.paths import QUICKSTART as SEED
from tests.paths import REPO

__all__ = ["REPO", "SEED", "skyterra", "write_task"]


def skyterra(*args: str, timeout: float = 300, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "skyterra.cli", *args], check=False,
                            capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **(env or {})},
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"skyterra {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def write_task(directory: Path, text: str, name: str = "task.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def kill_node(node_dir: Path) -> None:
    """A node dies: its sshd, the sshd processes of its open connections and every process
    with its marker (sessions, jobs), at once, as when a machine is lost. (Killing only
    the listening sshd would leave the established connections to the node working,
    which a lost machine does not.)"""
    sshd_pid = int((node_dir / "sshd.pid").read_text().strip())
    marker = f"SKYTERRA_NODE_ID={node_dir}".encode()
    parents: dict[int, int] = {}
    pids = {sshd_pid}
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            environ = Path(f"/proc/{proc}/environ").read_bytes()
            parents[int(proc)] = int(Path(f"/proc/{proc}/stat").read_text()
                                     .rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if marker in environ.split(b"\0"):
            pids.add(int(proc))
    grew = True
    while grew:  # the connection processes are children (and grandchildren) of the sshd
        before = len(pids)
        pids |= {pid for pid, parent in parents.items() if parent in pids}
        grew = len(pids) > before
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(predicate, timeout: float, step: float = 0.5):
    """Poll `predicate` until it returns something truthy or `timeout` seconds pass;
    its last value either way (so a failing assert shows what it saw)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
