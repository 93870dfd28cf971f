"""Multi-task files and git workdirs on the local cloud, through the real CLI.

The git repository is a local bare repo reached over file:// (the local nodes
see this machine's filesystem): no network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import skyterra, write_task

pytestmark = pytest.mark.e2e


def _bare_repo(tmp_path: Path) -> Path:
    """A bare repo with two commits: main says 'v2', tag v1 says 'v1'."""
    work, bare = tmp_path / "src", tmp_path / "repo with space.git"
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(work)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "version.txt").write_text("v1\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (work / "version.txt").write_text("v2\n")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def test_pipeline_runs_in_order_on_one_cluster_and_a_failure_stops_it(skyterra_home,
                                                                     tmp_path):
    bare = _bare_repo(tmp_path)
    task = write_task(tmp_path, f"""
name: chain
---
name: prep
resources: {{cloud: local}}
workdir:
  url: "file://{bare}"
  ref: v1
run: |
  cat version.txt > ~/prep-output
---
name: train
resources: {{cloud: local}}
workdir:
  url: "file://{bare}"
run: |
  echo "train sees $(cat ~/prep-output) then $(cat version.txt)"
  exit 7
---
name: never
resources: {{cloud: local}}
run: echo SHOULD-NOT-RUN
""")
    try:
        result = skyterra("launch", str(task), "-c", "chain", "-y", check=False)
        assert result.returncode != 0
        assert "(head, rank=0) train sees v1 then v2" in result.stdout
        assert "SHOULD-NOT-RUN" not in result.stdout
        assert "task 2/3 'train' failed (exit code 7)" in result.stderr
        assert "not run: never" in result.stderr
        assert "Traceback" not in result.stderr
        status = json.loads(skyterra("status", "--json").stdout)
        assert [c["name"] for c in status] == ["chain"]  # one cluster for all three tasks
    finally:
        skyterra("destroy", "chain", "-y", check=False)


def test_header_dependencies_run_each_task_after_what_it_needs(skyterra_home, tmp_path):
    """SkyPilot's DAG form: written eval-first, run prep -> train -> eval; each task sees
    what the tasks it needs left on the shared cluster."""
    task = write_task(tmp_path, """
name: dag
dependencies:
  train: [prep]
  eval: [train]
---
name: eval
resources: {cloud: local}
run: echo "eval after $(paste -sd" " ~/trail)"
---
name: train
resources: {cloud: local}
run: echo train >> ~/trail
---
name: prep
resources: {cloud: local}
run: echo prep > ~/trail
""")
    try:
        out = skyterra("launch", str(task), "-c", "dag", "-y").stdout
        assert "(head, rank=0) eval after prep train" in out, out
    finally:
        skyterra("destroy", "dag", "-y", check=False)


def test_a_task_with_other_resources_gets_its_own_cluster(skyterra_home, tmp_path):
    task = write_task(tmp_path, """
name: two-shapes
---
resources: {cloud: local}
run: echo first
---
num_nodes: 2
resources: {cloud: local}
run: echo "second on $SKYPILOT_NUM_NODES nodes"
""")
    try:
        dry = json.loads(skyterra("launch", str(task), "-c", "shapes", "--dryrun",
                                  "--json").stdout)
        assert [t["cluster_name"] for t in dry["tasks"]] == ["shapes", "shapes-2"]
        result = skyterra("launch", str(task), "-c", "shapes", "-y")
        assert "(head, rank=0) first" in result.stdout
        assert "(worker1, rank=1) second on 2 nodes" in result.stdout
        assert "Cluster(s) kept: shapes, shapes-2" in result.stdout
    finally:
        skyterra("destroy", "shapes", "shapes-2", "-y", check=False)


def test_a_git_workdir_that_cannot_be_cloned_names_the_node(skyterra_home, tmp_path):
    task = write_task(tmp_path, f"""
resources: {{cloud: local}}
workdir:
  url: "file://{tmp_path}/missing.git"
run: echo never
""")
    try:
        result = skyterra("launch", str(task), "-c", "noclone", "-y", check=False)
        assert result.returncode != 0
        assert "could not clone the workdir on" in result.stderr
        assert "missing.git" in result.stderr and "Traceback" not in result.stderr
    finally:
        skyterra("destroy", "noclone", "-y", check=False)
