"""Run the real `skyterra` CLI in a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
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
