"""Helpers the benchmarks share: how a skyterra process is started, and the load it met.

Bytecode: this machine's environment sets PYTHONDONTWRITEBYTECODE=1, so every new
Python process compiles skyterra (and click, yaml, jinja2 ... of an editable install)
from source again: ~80 ms of each command at load 5 that no user pays (pip compiles
bytecode when it installs a package). The benchmarks compile it once and start
skyterra without that variable; `--source` keeps it, for the figures as this machine's
shell would see them.
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def skyterra_env(source: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked skyterra process (bytecode compiled unless source)."""
    env = {**os.environ, **extra}
    if not source:
        compileall.compile_dir(str(REPO / "skyterra"), quiet=1)
        for path in sys.path:
            if path.endswith("site-packages"):
                for name in ("click", "yaml", "jinja2", "markupsafe", "rich", "python_terraform"):
                    if (Path(path) / name).is_dir():
                        compileall.compile_dir(str(Path(path) / name), quiet=1)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def load() -> float:
    """The 1-minute load average now (the machine is shared: every figure carries it)."""
    return os.getloadavg()[0]
