"""The README's commands, read from README.md itself (tests never keep their own copy)."""

from __future__ import annotations

import re

from tests.paths import REPO

_BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def bash_blocks(text: str | None = None) -> list[str]:
    """The ```bash blocks of README.md in order, each stripped of its outer whitespace."""
    if text is None:
        text = (REPO / "README.md").read_text()
    return [match.group(1).strip() for match in _BASH_BLOCK.finditer(text)]


def first_command() -> str:
    """The README's first command: install, run the example, destroy its cluster."""
    return bash_blocks()[0]


def suite_command() -> str:
    """The README's second command: install, then the whole test suite (what .ci/run does)."""
    return bash_blocks()[1]
