"""What a person at a terminal sees during a launch: one compact live line per phase.

The CLI runs in a real pseudo-terminal (python's pty module): the screen shows
counted phases, not Terraform's event stream; `skyterra logs --provision`
has the whole stream; piped output stays plain lines; a failed apply prints
Terraform's error in full.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RAW_EVENTS = ("Creating...", "Creation complete", "Executing:", "Plan: 2 to add")
TASK = """
num_nodes: 2
setup: echo "setup-output-on-$SKYPILOT_SETUP_NODE_RANK"
run: echo "ran on $SKYPILOT_NODE_RANK"
"""


def in_terminal(*args: str, env: dict[str, str] | None = None, timeout: float = 300
                ) -> tuple[int, str]:
    """Run `skyterra ARGS` with a pseudo-terminal as stdin, stdout and stderr."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "skyterra.cli", *args], stdin=slave,
                               stdout=slave, stderr=slave, close_fds=True,
                               env={**os.environ, "TERM": "xterm", "COLUMNS": "150",
                                    **(env or {})})
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    screen = ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r", "\n")
    return process.returncode, screen


def test_a_terminal_sees_phases_and_the_log_has_every_event(skyterra_home, tmp_path):
    task = write_task(tmp_path, TASK)
    try:
        code, screen = in_terminal("launch", str(task), "--cloud", "local", "-c", "live", "-y")
        assert code == 0, screen
        # two resources per local node: the node and its power state (stop/start)
        assert "provisioning: 4/4 resources done" in screen, screen
        assert "waiting for SSH: 2/2 nodes answering" in screen, screen
        assert "setup: 2/2 nodes done" in screen, screen
        for raw in RAW_EVENTS:
            assert raw not in screen, (raw, screen)
        assert "setup-output-on-0" not in screen  # setup output goes to the log
        assert "(head, rank=0) ran on 0" in screen and "(worker1, rank=1) ran on 1" in screen

        log = skyterra("logs", "live", "--provision").stdout
        assert "terraform_data.node[0]: Creation complete" in log
        assert "terraform_data.node[1]: Creation complete" in log
        assert "Plan: 4 to add" in log and "Apply complete!" in log
        assert "(worker1, rank=1) setup-output-on-1" in log

        piped = skyterra("launch", str(task), "--cloud", "local", "-c", "live", "-y")
        assert "setup-output-on-1" in piped.stdout  # plain lines when not a terminal
        assert "setup: " not in piped.stderr and "\x1b[" not in piped.stderr
        verbose, screen = in_terminal("launch", str(task), "--cloud", "local", "-c", "live",
                                      "-y", "--verbose")
        assert verbose == 0 and "setup-output-on-0" in screen, screen
        # The commands shared one master connection per node, kept for the next command...
        masters = [p for p in leftover_processes(str(skyterra_home)) if "[mux]" in p]
        assert len(masters) == 2, masters
    finally:
        skyterra("destroy", "live", "-y")
    assert leftover_processes(str(skyterra_home)) == []  # ...and destroy ended them


def test_a_failed_apply_prints_terraforms_error_in_full(skyterra_home, tmp_path):
    task = write_task(tmp_path, TASK)
    code, screen = in_terminal("launch", str(task), "--cloud", "local", "-c", "nocap", "-y",
                               env={"SKYTERRA_LOCAL_UNAVAILABLE_ZONES": "local-a,local-b"})
    assert code != 0
    # Terraform's diagnostic, summary and detail, as node-up.sh reported it.
    assert "Error: local-exec provisioner error" in screen, screen
    assert "We currently do not have sufficient capacity" in screen, screen
    assert "simulated: zone local-b is listed in unavailable_zones" in screen, screen
    assert "Traceback" not in screen
    assert leftover_processes(str(skyterra_home)) == []
