"""The README's two commands: the test command is what .ci/run runs, and the example
command reports a failed launch (or destroy) while still destroying the cluster.

The example command is run with bash exactly as README.md spells it, in a folder whose
`.ci/install` and `.venv/bin/skyterra` are stand-ins that record their calls: this
checks the command's shell logic in milliseconds; tests/e2e/test_readme.py runs it for
real.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.readme import bash_blocks, first_command, suite_command

STILL_OPEN = "the pasting shell is still open"


def test_the_readme_has_the_two_commands_first():
    blocks = bash_blocks()
    assert len(blocks) >= 2
    assert all("\n" not in block for block in blocks[:2]), "each is one line to paste"
    assert "examples/mingpt/train.yaml" in blocks[0] and "pytest" in blocks[1]


def test_ci_run_runs_exactly_the_readme_test_command():
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[-1] == suite_command()
    # Everything before it only sets the shell up; nothing else runs.
    assert lines[:-1] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."']


def _stand_in_checkout(tmp_path: Path, launch_rc: int, destroy_rc: int) -> Path:
    root = tmp_path / "checkout"
    (root / ".ci").mkdir(parents=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".ci" / "install").write_text('echo install >> "$CALLS"\n')
    skyterra = root / ".venv" / "bin" / "skyterra"
    skyterra.write_text(f'#!/bin/bash\necho "$1" >> "$CALLS"\n'
                        f'[ "$1" = launch ] && exit {launch_rc}\n'
                        f'[ "$1" = destroy ] && exit {destroy_rc}\nexit 99\n')
    skyterra.chmod(0o755)
    return root


def _bash(script: str, cwd: Path, calls: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin", "CALLS": str(calls)})


@pytest.mark.parametrize("launch_rc, destroy_rc, expected", [
    (0, 0, 0), (3, 0, 3), (0, 5, 5), (3, 5, 5)])
def test_the_example_command_reports_failures_and_always_destroys(tmp_path, launch_rc,
                                                                  destroy_rc, expected):
    root = _stand_in_checkout(tmp_path, launch_rc, destroy_rc)
    calls = tmp_path / "calls"
    # As pasted into a shell that then goes on: the command must not end that shell.
    script = f'{first_command()}\nrc=$?\necho "{STILL_OPEN}"\nexit $rc\n'
    done = _bash(script, root, calls)
    assert STILL_OPEN in done.stdout, done.stderr
    assert done.returncode == expected
    assert calls.read_text().split() == ["install", "launch", "destroy"]


def test_the_example_command_stops_when_the_install_fails(tmp_path):
    root = _stand_in_checkout(tmp_path, 0, 0)
    (root / ".ci" / "install").write_text('echo install >> "$CALLS"; exit 7\n')
    calls = tmp_path / "calls"
    done = _bash(first_command(), root, calls)
    assert done.returncode == 7
    assert calls.read_text().split() == ["install"]
