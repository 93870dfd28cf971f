"""Jobs outlive the terminal: Ctrl-C, re-attach, cancel, failure of one rank, ssh aliases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import REPO, SEED, kill_node, skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e

LONG_JOB = """
name: long
num_nodes: 2
run: |
  for i in $(seq 1000); do echo "tick $i from $SKYPILOT_NODE_RANK"; sleep 0.2; done
"""


def _queue(cluster: str) -> list[dict]:
    return json.loads(skyterra("queue", cluster, "--json").stdout)


def _job_processes(home) -> list[str]:
    return [p for p in leftover_processes(str(home)) if "sshd" not in p.split(":", 1)[1][:8]]


def test_ctrl_c_detaches_logs_reattach_cancel_stops_everything(skyterra_home, tmp_path):
    task = write_task(tmp_path, LONG_JOB)
    client = subprocess.Popen([sys.executable, "-m", "skyterra.cli", "launch", str(task),
                               "--cloud", "local", "-c", "jobs", "-y"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
    try:
        seen = set()
        deadline = time.monotonic() + 120
        while len(seen) < 2 and time.monotonic() < deadline:
            line = client.stdout.readline()
            if "tick" in line:
                seen.add(line.split(")")[0])
        assert seen == {"(head, rank=0", "(worker1, rank=1"}
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=30)
        assert client.returncode == 130
        assert "keeps running" in err and "skyterra logs jobs 1" in err
        assert "Traceback" not in err

        time.sleep(1)
        [job] = _queue("jobs")
        assert job["status"] == "RUNNING"
        assert len([p for p in _job_processes(skyterra_home) if "seq 1000" in p or
                    "job.sh" in p]) >= 2

        logs = skyterra("logs", "jobs", "1", "--no-follow", "--tail", "5").stdout
        assert "(head, rank=0) tick" in logs and "(worker1, rank=1) tick" in logs
        status = skyterra("logs", "jobs", "1", "--status", check=False)
        assert status.returncode == 101  # not finished, like SkyPilot

        started = time.monotonic()
        assert "Cancelled job(s) 1" in skyterra("cancel", "jobs", "1").stdout
        assert time.monotonic() - started < 15
        assert [p for p in _job_processes(skyterra_home) if "tick" in p or "job.sh" in p] == []
        assert _queue("jobs")[0]["status"] == "CANCELLED"
        assert skyterra("logs", "jobs", "1", "--status", check=False).returncode == 103
    finally:
        if client.poll() is None:
            client.kill()
        skyterra("destroy", "jobs", "-y")


def test_one_failing_rank_fails_the_job_and_stops_the_others(skyterra_home, tmp_path):
    task = write_task(tmp_path, """
num_nodes: 2
run: |
  if [ "$SKYPILOT_NODE_RANK" = "1" ]; then sleep 1; echo dying; exit 7; fi
  echo head-waiting; sleep 1000
""")
    started = time.monotonic()
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "failrank", "-y",
                      check=False)
    try:
        assert result.returncode == 7
        assert time.monotonic() - started < 90
        [job] = _queue("failrank")
        assert job["status"] == "FAILED" and job["failed_node"] == "worker1"
        assert job["exit_code"] == 7
        assert [p for p in _job_processes(skyterra_home) if "sleep 1000" in p] == []
    finally:
        skyterra("destroy", "failrank", "-y")


def test_ssh_alias_and_rsync_through_generated_config(skyterra_home, tmp_path):
    task = write_task(tmp_path, "num_nodes: 2\nrun: mkdir -p out && echo artifact > out/a.txt\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "alias", "-y")
    ssh_config = tmp_path / "ssh_config"
    from skyterra import ssh_config as module

    os.environ["SKYTERRA_HOME"] = str(skyterra_home)
    assert module.install_include(ssh_config)
    assert not module.install_include(ssh_config)  # added once
    try:
        base = ["-F", str(ssh_config), "-o", "BatchMode=yes"]
        head = subprocess.run(["ssh", *base, "alias", "echo $SKYPILOT_X; pwd"],
                              capture_output=True, text=True, timeout=30, check=False)
        assert head.returncode == 0, head.stderr
        assert head.stdout.strip().endswith("home")
        worker = subprocess.run(["ssh", *base, "alias-worker1", "cat sky_workdir/out/a.txt"],
                                capture_output=True, text=True, timeout=30, check=False)
        assert worker.stdout.strip() == "artifact", worker.stderr
        pulled = tmp_path / "pulled"
        rsync = subprocess.run(["rsync", "-a", "-e", f"ssh -F {ssh_config}",
                                "alias:sky_workdir/out/", str(pulled)],
                               capture_output=True, text=True, timeout=30, check=False)
        assert rsync.returncode == 0, rsync.stderr
        assert (pulled / "a.txt").read_text() == "artifact\n"
    finally:
        skyterra("destroy", "alias", "-y")
    assert not (skyterra_home / "ssh" / "alias.conf").exists()


def test_seed_sdk_script_shape_runs_end_to_end(skyterra_home, tmp_path):
    """train.py from the seed, with its clone replaced by a local command (no network)."""
    source = (SEED / "train.py").read_text()
    assert "import skyterra as sky" in source
    script = source.replace(
        "'git clone --depth 1 https://github.com/pytorch/examples || true',",
        "'mkdir -p examples/mingpt && cp -r $HOME/../../../../../../examples-src/* "
        "examples/mingpt/ 2>/dev/null || true',")
    script = (source.split("setup=[")[0] + "setup=['echo setup-ran'],\n"
              "    run=['echo rank=$SKYPILOT_NODE_RANK gpus=$SKYPILOT_NUM_GPUS_PER_NODE',\n"
              "         'torchrun --nproc_per_node=2 -m torch.distributed.run --help "
              ">/dev/null && echo torchrun-ok'],\n)\n" +
              "cluster_name = 'mingpt'\n" + source.split("cluster_name = 'mingpt'\n")[1])
    path = tmp_path / "train.py"
    path.write_text(script)
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=False,
                            timeout=300, cwd=tmp_path,
                            env={**os.environ, "SKYTERRA_CLOUDS": "local",
                                 "PYTHONPATH": str(REPO)})
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "setup-ran" in result.stdout
        assert "(head, rank=0) rank=0 gpus=4" in result.stdout
        assert "torchrun-ok" in result.stdout
    finally:
        skyterra("destroy", "mingpt", "-y")


def test_a_cancel_that_cannot_reach_a_node_names_it_and_does_not_claim_cancelled(
        skyterra_home, tmp_path):
    task = write_task(tmp_path, "num_nodes: 2\nrun: sleep 300\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "halfcancel", "-y", "-d")
    try:
        # worker1 goes dark (the whole node: a live connection to it would still work)
        kill_node(skyterra_home / "clusters" / "halfcancel" / "nodes" / "halfcancel-1")
        result = skyterra("cancel", "halfcancel", check=False)
        assert result.returncode != 0
        assert "on worker1 (" in result.stderr and "Traceback" not in result.stderr
        jobs = json.loads(skyterra("queue", "halfcancel", "--json", "--no-refresh").stdout)
        assert jobs[-1]["status"] != "CANCELLED"
    finally:
        skyterra("destroy", "halfcancel", "-y")
