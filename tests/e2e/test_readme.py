"""The README's first command, exactly as README.md spells it, in a fresh copy of the repo.

A new user's situation: a checkout with nothing beside it (no ../shared), no .venv yet,
a system Python without torch, their own skyterra home. The command installs (.ci/install
creates .venv; pip reads the machine's configured package index, the one place this test
goes beyond loopback, because that is what the command does), trains on 2 local nodes x 2
processes, and destroys the cluster. Afterwards: exit 0, training happened (4 ranks, the
loss fell), no cluster and no process is left, and the system Python's packages are as
they were (nodes use the venv's torch, they never install into the system).

Slow (~2-3 min: a fresh venv with the local torch wheel, then the training).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO
from tests.leaks import leftover_processes
from tests.readme import first_command

pytestmark = pytest.mark.e2e

# A login shell's PATH on Debian: no pyenv, no virtualenv, nothing of the test's own.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMMAND_TIMEOUT = 900
STILL_OPEN = "the pasting shell is still open"
# What .ci/install needs before it would reach for apt (the network): then we skip.
INSTALL_TOOLS = ("sshd", "ssh", "ssh-keyscan", "rsync")


def _copy_checkout(dest: Path) -> Path:
    """The repo's files (tracked and new, not ignored: no .venv, .git, caches) in dest."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True, check=False)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            source = REPO / name
            if source.is_file() or source.is_symlink():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name, follow_symlinks=False)
    else:  # an export without git metadata
        shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"))
    return dest


def _user_env(home: Path) -> dict[str, str]:
    """The caller's environment as a fresh shell has it: system PATH, no venv, own home."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SKYTERRA_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "CONDA"))}
    env.update(PATH=SYSTEM_PATH, SKYTERRA_HOME=str(home))
    return env


def _system_python(env: dict[str, str]) -> str:
    """The PATH's python3, checked to be a Python without torch (else the test skips)."""
    python = shutil.which("python3", path=env["PATH"])
    if python is None:
        pytest.skip(f"no python3 on {env['PATH']}")
    probe = subprocess.run([python, "-c", "import torch"], env=env, capture_output=True,
                           check=False, timeout=120)
    if probe.returncode == 0:
        pytest.skip(f"{python} (the python3 of PATH={env['PATH']}) has torch; the README "
                    "command must be tried with a system Python without it")
    venv = subprocess.run([python, "-c", "import venv, ensurepip"], env=env,
                          capture_output=True, check=False, timeout=60)
    if venv.returncode != 0:
        pytest.skip(f".ci/install would apt-get install python3-venv for {python} (network)")
    return python


def _packages(python: str, env: dict[str, str]) -> str:
    """`python -m pip freeze --all` of the system Python (its packages, user site too)."""
    done = subprocess.run([python, "-m", "pip", "freeze", "--all"], env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, f"{python} -m pip freeze failed:\n{done.stderr}"
    return done.stdout


def _run_pasted(command: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `command` as if pasted into a bash that goes on afterwards; its exit code."""
    script = f'{command}\nrc=$?\necho "{STILL_OPEN}"\nexit $rc\n'
    proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate()
        pytest.fail(f"the README command ran over {COMMAND_TIMEOUT} s\n{out[-4000:]}\n{err[-4000:]}")
    return proc.returncode, out, err


def test_the_readme_first_command_trains_and_cleans_up_in_a_fresh_copy(skyterra_home,
                                                                       tmp_path):
    command = first_command()
    missing = [tool for tool in INSTALL_TOOLS if shutil.which(tool, path=SYSTEM_PATH) is None]
    if missing:
        pytest.skip(f".ci/install would apt-get install {missing} (network); install them")
    env = _user_env(skyterra_home)
    python = _system_python(env)
    assert not Path(python).resolve().is_relative_to(REPO), python
    before = _packages(python, env)

    checkout = _copy_checkout(tmp_path / "skyterra")
    assert not (checkout.parent / "shared").exists() and not (checkout / ".venv").exists()
    rc, out, err = _run_pasted(command, checkout, env)
    report = f"command: {command}\nexit {rc}\nstdout:\n{out[-6000:]}\nstderr:\n{err[-6000:]}"

    assert STILL_OPEN in out, "the command closed the shell it was pasted into\n" + report
    assert rc == 0, report
    assert "world_size=4" in out, report
    losses = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines()
              if " step " in line and " loss " in line]
    assert len(losses) >= 2 and losses[-1] < losses[0], report
    assert "final loss" in out, report

    assert not (skyterra_home / "clusters" / "mingpt").exists(), report
    status = subprocess.run([str(checkout / ".venv" / "bin" / "skyterra"), "status", "--json"],
                            cwd=checkout, env=env, capture_output=True, text=True,
                            check=False, timeout=60)
    assert status.returncode == 0 and status.stdout.strip() == "[]", status.stdout + status.stderr
    assert leftover_processes(str(skyterra_home)) == []
    assert leftover_processes(str(checkout)) == []
    assert _packages(python, env) == before, "the system Python's packages changed"
    probe = subprocess.run([python, "-c", "import torch"], env=env, capture_output=True,
                           check=False, timeout=120)
    assert probe.returncode != 0, "torch was installed into the system Python"
