"""Job groups (execution: parallel) on the local cloud, through the real CLI: every task
on its own cluster at the same time, per-task logs, everything destroyed at the end."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.helpers import skyterra, write_task

pytestmark = pytest.mark.e2e

STAMPS = re.compile(r"(\w+) start=(\d+\.\d+) end=(\d+\.\d+)")


def _task(name: str, run: str) -> str:
    return f"""---
name: {name}
resources: {{cloud: local}}
run: |
{chr(10).join('  ' + line for line in run.strip().splitlines())}
"""


def _stamped(name: str, seconds: float, exit_code: int = 0) -> str:
    """Writes its start/end times to a file on its node, then prints the file."""
    return _task(name, f"""
start=$(date +%s.%N)
echo "$SKYTERRA_GROUP_HOSTS" | grep -q "^{name} 127\\." || exit 9
sleep {seconds}
echo "{name} start=$start end=$(date +%s.%N)" > ~/stamp.txt
cat ~/stamp.txt
exit {exit_code}
""")


def _no_clusters_left() -> None:
    assert json.loads(skyterra("status", "--json").stdout) == []


def test_two_tasks_run_at_the_same_time_on_their_own_clusters(skyterra_home, tmp_path):
    path = write_task(tmp_path, "name: overlap\nexecution: parallel\n"
                      + _stamped("alpha", 3) + _stamped("beta", 3))
    done = skyterra("launch", str(path), "-y")
    stamps = {m[0]: (float(m[1]), float(m[2])) for m in STAMPS.findall(done.stdout)}
    assert set(stamps) == {"alpha", "beta"}, done.stdout
    (a_start, a_end), (b_start, b_end) = stamps["alpha"], stamps["beta"]
    assert a_start < b_end and b_start < a_end, stamps           # the runs overlapped
    assert "[alpha]" in done.stdout and "[beta]" in done.stdout  # prefixed per task
    assert "alpha: SUCCEEDED (cluster 'overlap-alpha'" in done.stdout
    for name in ("alpha", "beta"):
        log = skyterra_home / "groups" / "overlap" / f"{name}.log"
        assert f"{name} start=" in log.read_text()
    _no_clusters_left()


def test_a_failed_task_cancels_the_others_and_everything_is_destroyed(skyterra_home,
                                                                      tmp_path):
    path = write_task(tmp_path, "name: fails\nexecution: parallel\n"
                      + _stamped("bad", 1, exit_code=3) + _stamped("slow", 120))
    done = skyterra("launch", str(path), "-y", check=False, timeout=120)
    assert done.returncode != 0
    message = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(message) == 1, done.stderr
    assert "task 'bad' failed" in message[0] and "Cancelled: slow" in message[0], message
    assert "Traceback" not in done.stderr + done.stdout
    assert "slow start=" not in done.stdout  # cancelled long before its 120 s
    _no_clusters_left()


def test_auxiliary_tasks_stop_when_the_primary_tasks_are_done(skyterra_home, tmp_path):
    path = write_task(tmp_path, "name: primary\nexecution: parallel\nprimary_tasks: [main]\n"
                      "termination_delay: 1s\n"
                      + _stamped("main", 1) + _task("helper", "sleep 300"))
    done = skyterra("launch", str(path), "-y", timeout=120)
    assert "main: SUCCEEDED" in done.stdout and "helper: CANCELLED" in done.stdout
    _no_clusters_left()
