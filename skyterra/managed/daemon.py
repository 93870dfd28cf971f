"""Starting and restarting a managed job's controller as a detached process of this machine.

`setsid --fork`: the controller leads its own session and is nobody's child
(no zombie in a long-lived SDK process, no hang-up when the terminal goes).
A dead controller is seen by its free flock (store.JobDir.controller_alive).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from skyterra import paths
from skyterra.errors import MissingToolError, SkyterraError
from skyterra.managed.store import TERMINAL, JobDir


def start_controller(job_dir: JobDir) -> None:
    """A detached controller: own session, nobody's child (setsid --fork), own log."""
    setsid = shutil.which("setsid")
    if not setsid:
        raise MissingToolError("setsid is not installed; install util-linux (Debian: apt-get "
                               "install util-linux) to run managed jobs.")
    env = {**os.environ, "SKYTERRA_HOME": str(paths.home()), "PYTHONUNBUFFERED": "1"}
    with open(job_dir.controller_log, "a") as log:
        subprocess.run([setsid, "--fork", sys.executable, "-m", "skyterra.managed.controller",
                        str(job_dir.job_id)], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, env=env, cwd=job_dir.path, check=True)


def wait_for_controller(job_dir: JobDir, timeout: float = 15.0) -> None:
    """Until a controller holds the job's lock and has put its pid in the record (so the
    record a caller reads next names the live controller), or the job ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_dir.load()
        if job.status in TERMINAL:
            return
        if job_dir.controller_alive() and str(job.controller_pid) == _lock_pid(job_dir):
            return
        time.sleep(0.05)
    raise SkyterraError(f"the controller of managed job {job_dir.job_id} did not start; see "
                        f"{job_dir.controller_log}.")


def _lock_pid(job_dir: JobDir) -> str:
    """The pid the lock's holder wrote into the lock file (ControllerLock.acquire)."""
    try:
        return job_dir.lock_path.read_text().strip()
    except FileNotFoundError:
        return ""


def ensure_controller(job_dir: JobDir) -> bool:
    """Restart the controller of an unfinished job whose controller died; True if restarted."""
    job = job_dir.load()
    if job.status in TERMINAL or job.controller or job_dir.controller_alive():
        return False
    job_dir.event("CONTROLLER", "the controller was not running; restarted it (it resumes "
                  "from the job's record)")
    start_controller(job_dir)
    wait_for_controller(job_dir)
    return True
