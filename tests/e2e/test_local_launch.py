"""The whole pipeline on the local cloud: launch → Terraform → SSH → torchrun → destroy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = pytest.mark.e2e


def test_example_trains_on_two_nodes_then_exec_reuse_and_destroy(skyterra_home):
    example = REPO / "examples" / "mingpt" / "train.yaml"
    launched = skyterra("launch", str(example), "--cloud", "local", "-c", "mingpt", "-y",
                        "--env", "MAX_STEPS=40", "--env", "LOG_EVERY=10")
    # The nodes' PATH starts with the venv skyterra runs from (where .ci/install put
    # torch), so the example's setup finds torch there and installs nothing.
    for prefix in ("(head, rank=0) torch ", "(worker1, rank=1) torch "):
        assert any(line.startswith(prefix) and line.endswith(" is already installed")
                   for line in launched.stdout.splitlines()), prefix
    assert "(head, rank=0) world_size=4" in launched.stdout
    assert "final loss" in launched.stdout
    assert "(worker1, rank=1)" in launched.stdout  # the worker's own prefixed lines
    losses = [float(line.rsplit(" ", 1)[1]) for line in launched.stdout.splitlines()
              if " step " in line and " loss " in line]
    assert losses and losses[-1] < losses[0]

    status = json.loads(skyterra("status", "--json").stdout)
    assert [c["name"] for c in status] == ["mingpt"] and status[0]["status"] == "UP"
    assert len(status[0]["nodes"]) == 2

    executed = skyterra("exec", "mingpt", str(example), "--env", "MAX_STEPS=10")
    assert "world_size=4" in executed.stdout
    # exec runs `run` only: neither the setup step nor any line setup printed at launch.
    setup_lines = _setup_output(launched.stdout)
    assert "running setup on all nodes" in launched.stderr and setup_lines, launched.stdout
    assert "running setup" not in executed.stderr
    assert not [line for line in executed.stdout.splitlines() if line in setup_lines]

    again = skyterra("launch", str(example), "-c", "mingpt", "-y", "--env", "MAX_STEPS=10")
    # same nodes reused: nothing changed, so not even a plan runs
    assert "nothing changed since the last apply" in again.stderr
    assert "Plan:" not in again.stderr and "Creating" not in again.stderr

    skyterra("destroy", "mingpt", "-y")
    assert not (skyterra_home / "clusters" / "mingpt").exists()
    assert leftover_processes(str(skyterra_home)) == []
    second = skyterra("destroy", "mingpt", "-y")
    assert "does not exist" in second.stdout


def _setup_output(stdout: str) -> set[str]:
    """The lines a launch printed before the example's run began ("node R/N: ...")."""
    lines = stdout.splitlines()
    first_run = next(i for i, line in enumerate(lines) if ") node 0/" in line or ") node 1/" in line)
    return {line for line in lines[:first_run] if line.strip()}


def test_env_values_reach_nodes_byte_identical(skyterra_home, tmp_path):
    tricky = "a b;c $(echo no) `echo no` ${HOME} %{x} 'q' \"d\" \\ end"
    task = write_task(tmp_path, """
name: env-check
num_nodes: 2
envs:
  TRICKY: placeholder
run: |
  printf '%s\\n' "rank=$SKYPILOT_NODE_RANK value=[$TRICKY]"
  printf 'ips=%s\\n' "$(echo "$SKYPILOT_NODE_IPS" | tr '\\n' ',')"
  echo "info=$SKYPILOT_CLUSTER_INFO"
""")
    out = skyterra("launch", str(task), "--cloud", "local", "-c", "envs", "-y",
                   "--env", f"TRICKY={tricky}").stdout
    try:
        for rank, name in ((0, "head"), (1, "worker1")):
            assert f"({name}, rank={rank}) rank={rank} value=[{tricky}]" in out
        ips_line = next(line for line in out.splitlines() if "ips=" in line)
        ips = ips_line.split("ips=")[1].strip(",").split(",")
        assert len(ips) == 2 and all(ip.startswith("127.") for ip in ips)
        info = json.loads(next(line for line in out.splitlines()
                               if "info=" in line).split("info=", 1)[1])
        assert info["cluster_name"] == "envs" and info["cloud"] == "local"
    finally:
        skyterra("destroy", "envs", "-y")


def test_setup_failure_names_the_node_and_skips_run(skyterra_home, tmp_path):
    task = write_task(tmp_path, """
num_nodes: 2
setup: |
  if [ "$SKYPILOT_SETUP_NODE_RANK" = "1" ]; then echo broken >&2; exit 3; fi
run: echo should-not-run
""")
    result = skyterra("launch", str(task), "--cloud", "local", "-c", "badsetup", "-y",
                      check=False)
    try:
        assert result.returncode == 3
        assert "setup failed on worker1" in result.stderr
        assert "should-not-run" not in result.stdout
        assert "Traceback" not in result.stderr
    finally:
        skyterra("destroy", "badsetup", "-y")


def test_failover_moves_to_the_next_zone_and_reports_every_attempt(skyterra_home, tmp_path):
    task = write_task(tmp_path, "num_nodes: 2\nrun: echo ran-in-$SKYPILOT_NODE_RANK\n")
    moved = skyterra("launch", str(task), "--cloud", "local", "-c", "failover", "-y",
                     env={"SKYTERRA_LOCAL_UNAVAILABLE_ZONES": "local-a"})
    try:
        assert "local-a: capacity error" in moved.stderr
        assert "ran-in-0" in moved.stdout and "ran-in-1" in moved.stdout
        status = json.loads(skyterra("status", "--json").stdout)
        assert len(status) == 1 and status[0]["zone"] == "local-b"
    finally:
        skyterra("destroy", "failover", "-y")

    failed = skyterra("launch", str(task), "--cloud", "local", "-c", "nowhere", "-y",
                      check=False, env={"SKYTERRA_LOCAL_UNAVAILABLE_ZONES": "local-a,local-b"})
    assert failed.returncode == 1
    assert "every candidate failed (2 tried)" in failed.stderr
    assert "local-a" in failed.stderr and "local-b" in failed.stderr
    assert "InsufficientInstanceCapacity" in failed.stderr
    assert leftover_processes(str(skyterra_home)) == []
    skyterra("destroy", "nowhere", "-y")  # the record of the failed launch goes away cleanly


def test_workdir_sync_honours_gitignore_and_file_mounts_land(skyterra_home, tmp_path):
    workdir = tmp_path / "project"
    (workdir / "data").mkdir(parents=True)
    (workdir / ".gitignore").write_text("*.ckpt\ndata/\n")
    (workdir / "train.py").write_text("print('hi')\n")
    (workdir / "model.ckpt").write_text("big\n")
    (workdir / "data" / "shard0").write_text("big\n")
    (workdir / ".git").mkdir()
    (workdir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    mounted = tmp_path / "vocab.txt"
    mounted.write_text("a b c\n")
    task = write_task(tmp_path, f"""
workdir: {workdir}
file_mounts:
  ~/inputs/vocab.txt: {mounted}
run: |
  echo "files: $(ls -A | sort | tr '\\n' ' ')"
  echo "mounted: $(cat ~/inputs/vocab.txt)"
""")
    out = skyterra("launch", str(task), "--cloud", "local", "-c", "sync", "-y").stdout
    try:
        assert "files: .gitignore train.py\n" in out  # no model.ckpt, data/ or .git
        assert "mounted: a b c" in out
    finally:
        skyterra("destroy", "sync", "-y")


def test_sky_key_mount_lets_the_head_ssh_to_the_workers(skyterra_home, tmp_path):
    """SkyPilot's DeepSpeed/MPI files copy `~/.ssh/sky-key` to ~/.ssh/id_rsa: the nodes get
    the cluster's own key and each other's host keys, so the head reaches a worker with
    plain `ssh` (host key checked, no prompt) although this machine has no sky-key."""
    fake_home = tmp_path / "user"
    fake_home.mkdir()
    host_ssh_config = sorted(p.name for p in Path("/etc/ssh/ssh_config.d").glob("*"))
    task = write_task(tmp_path, """
name: sky-key
num_nodes: 2
file_mounts:
  ~/.ssh/id_rsa: ~/.ssh/sky-key
setup: echo "$SKYPILOT_NODE_RANK" > ~/rank
run: |
  if [ "$SKYPILOT_NODE_RANK" = 0 ]; then
    worker=$(echo "$SKYPILOT_NODE_IPS" | sed -n 2p)
    echo "from worker: rank $(ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "$worker" cat rank)"
  fi
""")
    out = skyterra("launch", str(task), "--cloud", "local", "-c", "skykey", "-y",
                   env={"HOME": str(fake_home)})
    try:
        assert "~/.ssh/sky-key is SkyPilot's cluster key" in out.stderr
        assert "(head, rank=0) from worker: rank 1" in out.stdout, out.stdout + out.stderr
    finally:
        skyterra("destroy", "skykey", "-y", env={"HOME": str(fake_home)})
    assert not (fake_home / ".ssh" / "sky-key").exists()
    # the nodes' ssh client settings live in their own layer of /etc, never the host's
    assert sorted(p.name for p in Path("/etc/ssh/ssh_config.d").glob("*")) == host_ssh_config
