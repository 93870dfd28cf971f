"""Time the README's first command (install, train the example on 2 local nodes, destroy).

The command is read from README.md (its first ```bash block) and run with bash in this
checkout, where `.ci/install` has already run (so the install step only re-checks), with a
throwaway SKYTERRA_HOME. Target: under 3 minutes on a 2-core machine.

    python bench/readme_command.py [--repeat 1] [--fresh]

--fresh runs it in a copy of the checkout without .venv, so the time includes creating
the venv and installing torch (what a new user waits for the first time).

Until local nodes find the venv's torch by themselves, run it with PATH=.venv/bin:$PATH:
a node's python3 is the first on the caller's PATH, and the example's setup would
pip-install torch into it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.readme import first_command

TARGET_S = 180.0


def fresh_copy(dest: Path) -> Path:
    """The checkout's tracked and new files, without .venv/.git (like a fresh clone)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def time_command(command: str, cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, exit code and output tail of one run with its own SKYTERRA_HOME."""
    with tempfile.TemporaryDirectory(prefix="skyterra-bench-home-") as home:
        env = {**os.environ, "SKYTERRA_HOME": home}
        start = time.perf_counter()
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - start
    return elapsed, done.returncode, (done.stdout + done.stderr)[-3000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="in a copy without .venv")
    args = parser.parse_args()
    command = first_command()
    print(f"command: {command}")
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"
          f", {time.strftime('%Y-%m-%d %H:%M')}")
    failed = False
    for attempt in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="skyterra-bench-copy-") as tmp:
            cwd = fresh_copy(Path(tmp) / "skyterra") if args.fresh else REPO
            elapsed, code, tail = time_command(command, cwd)
        verdict = "ok" if code == 0 and elapsed < TARGET_S else "OVER TARGET" if code == 0 \
            else f"FAILED (exit {code})"
        print(f"run {attempt + 1}: {elapsed:.1f} s ({verdict}; target < {TARGET_S:.0f} s)")
        if code != 0:
            print(tail)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
