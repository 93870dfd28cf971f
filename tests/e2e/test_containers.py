"""image_id: docker:<image> on the local cloud: real podman containers on real nodes.

The image is built here (tests/container_image.py) into a store the nodes use
read-only; no registry is involved. The marker file exists only inside it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests import container_image
from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(container_image.available() is not None,
                                 reason=str(container_image.available()))]

IMAGE = "localhost/skyterra-test:1"

TASK = f"""
name: boxed
num_nodes: 2
resources:
  cloud: local
  image_id: docker:{IMAGE}
envs:
  GREETING: hello from the task
config:
  docker:
    run_options: --env "FROM_RUN_OPTIONS=set by config.docker"
setup: |
  cat {container_image.MARKER} > setup-saw
run: |
  echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES: $(cat {container_image.MARKER}) $GREETING"
  test -f setup-saw && echo "setup ran in the image on rank $SKYPILOT_NODE_RANK"
  echo "run options: $FROM_RUN_OPTIONS"
"""

LONG = """
num_nodes: 2
run: |
  sleep 300 & wait
"""


@pytest.fixture
def image_store(skyterra_home):
    """A podman store with the test image, outside /tmp (each node has its own /tmp),
    named in the skyterra config as the local cloud's image store."""
    root = Path(tempfile.mkdtemp(prefix="skyterra-images-", dir="/var/tmp"))
    store = root / "store"
    try:
        container_image.build(store, IMAGE)
        skyterra_home.mkdir(parents=True, exist_ok=True)
        (skyterra_home / "config.yaml").write_text(yaml.safe_dump(
            {"provision": {"container_image_stores": [str(store)]}}))
        yield store
    finally:
        container_image.remove_store(store)
        shutil.rmtree(root, ignore_errors=True)


def _cgroups() -> set[str]:
    return {str(p) for p in Path("/sys/fs/cgroup").glob("*/libpod_parent/libpod-*")}


def _inside(home: Path) -> list[str]:
    """Processes of the task running in a container (they carry the node marker)."""
    return [p for p in leftover_processes(str(home)) if "sleep 300" in p]


def test_two_ranks_run_setup_and_run_in_the_image_cancel_and_destroy_leave_nothing(
        skyterra_home, image_store, tmp_path):
    assert not Path(container_image.MARKER).exists()
    cgroups_before = _cgroups()
    task = write_task(tmp_path, TASK)
    try:
        out = skyterra("launch", str(task), "-c", "boxed", "-y").stdout
        marker = container_image.MARKER_TEXT
        assert f"(head, rank=0) rank=0 of 2: {marker} hello from the task" in out
        assert f"(worker1, rank=1) rank=1 of 2: {marker} hello from the task" in out
        assert "setup ran in the image on rank 0" in out
        assert "setup ran in the image on rank 1" in out
        assert "(worker1, rank=1) run options: set by config.docker" in out
        record = json.loads((skyterra_home / "clusters" / "boxed" / "cluster.json").read_text())
        assert record["container"]["image"] == IMAGE

        # The exit code of the process inside is the job's.
        failing = write_task(tmp_path, "num_nodes: 2\nrun: exit 7\n", "fail.yaml")
        result = skyterra("exec", "boxed", str(failing), check=False)
        assert result.returncode == 7, result.stdout + result.stderr

        # Cancel stops the process inside the container on both nodes.
        long = write_task(tmp_path, LONG, "long.yaml")
        skyterra("exec", "boxed", str(long), "-d")
        deadline = time.monotonic() + 30
        while len(_inside(skyterra_home)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_inside(skyterra_home)) == 2
        skyterra("cancel", "boxed", "3")
        deadline = time.monotonic() + 10
        while _inside(skyterra_home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _inside(skyterra_home) == []
        jobs = json.loads(skyterra("queue", "boxed", "--json").stdout)
        assert jobs[-1]["status"] == "CANCELLED"
        assert any("conmon" in p for p in leftover_processes(str(skyterra_home)))
    finally:
        skyterra("destroy", "boxed", "-y", check=False)
    assert leftover_processes(str(skyterra_home)) == []
    assert _cgroups() == cgroups_before


def test_an_image_that_cannot_be_had_names_node_and_image_and_keeps_the_cluster(
        skyterra_home, image_store, tmp_path):
    task = write_task(tmp_path, TASK.replace(IMAGE, "localhost:1/skyterra-missing:1"))
    try:
        result = skyterra("launch", str(task), "-c", "noimage", "-y", check=False)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert "could not pull the container image 'localhost:1/skyterra-missing:1'" in \
            result.stderr
        assert "head (127." in result.stderr or "worker1 (127." in result.stderr
        assert "SKYPILOT_DOCKER_USERNAME" in result.stderr
        status = skyterra("status").stdout
        assert "noimage" in status
    finally:
        skyterra("destroy", "noimage", "-y", check=False)
