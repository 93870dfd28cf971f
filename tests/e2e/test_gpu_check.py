"""The GPU check between setup and run, on real local nodes over real SSH.

The local nodes' nvidia-smi and dmesg are the simulated ones of templates/local/bin/;
the check itself (command, parallel SSH, parsing, verdict) is the real one.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import skyterra, write_task

pytestmark = pytest.mark.e2e

TASK = """
num_nodes: 2
resources:
  accelerators: L4:2
setup: echo setup-ran-on-$SKYPILOT_SETUP_NODE_RANK
run: echo run-started-on-$SKYPILOT_NODE_RANK
"""


def test_launch_passes_when_every_node_shows_its_gpus(skyterra_home, tmp_path):
    task = write_task(tmp_path, TASK)
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "gpuok", "-y")
    try:
        assert "checking the GPUs of 2 node(s)" in result.stderr + result.stdout
        assert "run-started-on-0" in result.stdout and "run-started-on-1" in result.stdout
        # The check ran the node's own nvidia-smi: it is on the node PATH and says 2 GPUs.
        probe = write_task(tmp_path, "run: nvidia-smi -L\nnum_nodes: 2\n", name="probe.yaml")
        listing = skyterra("exec", "gpuok", str(probe))
        assert listing.stdout.count("GPU 1: NVIDIA L4 (simulated)") == 2
    finally:
        skyterra("destroy", "gpuok", "-y")


def test_node_with_a_wrong_gpu_count_fails_the_launch_naming_it(skyterra_home, tmp_path):
    task = write_task(tmp_path, TASK)
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "gpubad", "-y",
                      check=False, env={"SKYTERRA_LOCAL_GPU_COUNTS": "worker1=1"})
    try:
        assert result.returncode != 0
        assert "GPU check failed on worker1" in result.stderr
        assert "shows 1 GPU(s), the task asks for 2 per node" in result.stderr
        assert "setup-ran-on-1" in result.stdout          # setup ran first
        assert "run-started" not in result.stdout          # run never started
        assert "Traceback" not in result.stderr
        # The cluster is kept, like after a failed setup; its job says FAILED_SETUP.
        status = json.loads(skyterra("status", "--json").stdout)
        assert [c["name"] for c in status] == ["gpubad"]
        queue = skyterra("queue", "gpubad").stdout
        assert "FAILED_SETUP" in queue
    finally:
        skyterra("destroy", "gpubad", "-y")


def test_node_reporting_an_xid_error_fails_the_launch(skyterra_home, tmp_path):
    task = write_task(tmp_path, TASK)
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "gpuxid", "-y",
                      check=False, env={"SKYTERRA_LOCAL_GPU_XID": "head=79"})
    try:
        assert result.returncode != 0
        assert "GPU check failed on head" in result.stderr
        assert "Xid" in result.stderr and ": 79," in result.stderr
        assert "run-started" not in result.stdout
    finally:
        skyterra("destroy", "gpuxid", "-y")


def test_nodes_without_accelerators_skip_the_check(skyterra_home, tmp_path):
    task = write_task(tmp_path, "num_nodes: 2\nrun: echo cpu-run-$SKYPILOT_NODE_RANK\n")
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "cpuonly", "-y",
                      env={"SKYTERRA_LOCAL_GPU_COUNTS": "worker1=1"})
    try:
        assert "checking the GPUs" not in result.stderr + result.stdout
        assert "cpu-run-1" in result.stdout
    finally:
        skyterra("destroy", "cpuonly", "-y")
