"""Where skyterra finds its shipped files and keeps its own.

Templates and state modules live at the top of the checkout (templates/,
state/) and inside the wheel (skyterra/_data/…, see pyproject's
force-include); both layouts are found the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"skyterra's {name}/ folder is missing from the installation "
                            f"(looked in {_PACKAGE / '_data'} and {_PACKAGE.parent}); "
                            "reinstall skyterra.")


def templates_dir() -> Path:
    return _data_dir("templates")


def state_templates_dir() -> Path:
    return _data_dir("state")


def home() -> Path:
    """~/.skyterra, or $SKYTERRA_HOME: the cluster registry and caches."""
    return Path(os.environ.get("SKYTERRA_HOME") or Path.home() / ".skyterra").expanduser()
