"""skyterra inside a Terraform pipeline, on the local cloud.

The pipeline's side uses only plain `terraform` (no skyterra at apply time);
skyterra renders the module before and attaches to the nodes after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, SEED, skyterra, write_task
from tests.leaks import leftover_processes

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("terraform") is None,
                                 reason="plain terraform is not installed")]

TWO_NODES = """
name: pipeline-ranks
num_nodes: 2
resources:
  accelerators: L4:1
run: |
  echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES gpus=$SKYPILOT_NUM_GPUS_PER_NODE if=$GLOO_SOCKET_IFNAME"
"""


def plain_terraform(directory: Path, *args: str, stdout=None) -> subprocess.CompletedProcess:
    """Terraform the way a pipeline runs it: no skyterra config, no checkpoint calls."""
    empty = directory.parent / "empty.tfrc"
    empty.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(directory.parent),
           "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(empty), "TF_IN_AUTOMATION": "1"}
    done = subprocess.run(["terraform", *args], cwd=directory, env=env, text=True, check=False,
                          stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"terraform {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def test_render_apply_with_plain_terraform_attach_exec_forget_destroy(skyterra_home, tmp_path):
    task = write_task(tmp_path / "task", TWO_NODES)
    module = skyterra_home.parent / "pipeline" / "train"  # node sshds run from here
    # The pipeline's module is the seed's multi-node task (2 nodes, L4:4), for the local cloud
    rendered = skyterra("render", str(SEED / "train-multinode.yaml"), "--cloud", "local",
                        "--out", str(module), "-c", "pipe-train", "--json")
    info = json.loads(rendered.stdout)
    assert info["cluster_name"] == "pipe-train" and Path(info["out_dir"]) == module.resolve()
    assert (module / "README.md").exists() and (module / "terraform.tfvars.json").exists()
    assert json.loads(skyterra("status", "--json").stdout) == []  # rendering registers nothing

    applied = False
    try:
        plain_terraform(module, "init", "-input=false")
        plain_terraform(module, "apply", "-auto-approve", "-input=false")
        applied = True
        with open(module / "outputs.json", "w") as handle:
            plain_terraform(module, "output", "-json", stdout=handle)
        outputs = json.loads((module / "outputs.json").read_text())
        assert len(outputs["node_ips"]["value"]) == 2

        attached = skyterra("attach", "pipe-ext", "--from-outputs", str(module / "outputs.json"),
                            "--task", str(task))
        assert "pipe-ext" in attached.stdout
        status = json.loads(skyterra("status", "--json").stdout)
        assert [(c["name"], c["status"], c["owner"]) for c in status] == [
            ("pipe-ext", "UP", "external")]
        assert [n["ip"] for n in status[0]["nodes"]] == outputs["node_ips"]["value"]

        ran = skyterra("exec", "pipe-ext", str(task))
        assert "(head, rank=0) rank=0 of 2 gpus=1 if=lo" in ran.stdout
        assert "(worker1, rank=1) rank=1 of 2 gpus=1 if=lo" in ran.stdout

        jobs = json.loads(skyterra("queue", "pipe-ext", "--json").stdout)
        assert [(j["job_id"], j["status"]) for j in jobs] == [(1, "SUCCEEDED")]
        logs = skyterra("logs", "pipe-ext", "1", "--no-follow")
        assert "(worker1, rank=1) rank=1" in logs.stdout

        refused = skyterra("destroy", "pipe-ext", "-y", check=False)
        assert refused.returncode != 0
        assert "pipeline" in refused.stderr and "--forget" in refused.stderr
        assert len(leftover_processes(str(module))) >= 2  # the nodes are untouched

        skyterra("destroy", "pipe-ext", "-y", "--forget")
        assert json.loads(skyterra("status", "--json").stdout) == []
        assert not (skyterra_home / "clusters" / "pipe-ext").exists()
        assert not (skyterra_home / "ssh" / "pipe-ext.conf").exists()
        assert len(leftover_processes(str(module))) >= 2  # forgetting destroys nothing

        # --tf-dir reads the outputs itself; the same nodes can be attached again
        skyterra("attach", "pipe-again", "--tf-dir", str(module))
        again = skyterra("exec", "pipe-again", str(task))
        assert "(worker1, rank=1) rank=1 of 2" in again.stdout
        skyterra("destroy", "pipe-again", "-y", "--forget")
    finally:
        if applied or (module / "terraform.tfstate").exists():
            plain_terraform(module, "destroy", "-auto-approve", "-input=false")
    assert leftover_processes(str(tmp_path)) == []


def test_attach_refuses_nodes_that_do_not_answer(skyterra_home, tmp_path):
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"node_ips": {"value": ["127.250.250.2"]},
                                   "ssh_user": {"value": "root"},
                                   "ssh_port": {"value": 2299},
                                   "ssh_private_key_path": {"value": str(key)}}))
    result = skyterra("attach", "dead", "--from-outputs", str(outputs), check=False,
                      env={"SKYTERRA_SSH_TIMEOUT": "2"})
    assert result.returncode != 0 and "did not answer SSH" in result.stderr
    assert json.loads(skyterra("status", "--json").stdout) == []


def test_examples_pipeline_root_applies_and_the_script_attaches_and_runs(skyterra_home, tmp_path):
    root = skyterra_home.parent / "example"
    shutil.copytree(REPO / "examples" / "pipeline", root,
                    ignore=shutil.ignore_patterns("train", ".terraform*", "*.tfstate*",
                                                  "outputs.json"))
    skyterra("render", str(root / "task.yaml"), "--cloud", "local", "--out",
             str(root / "train"), "-c", "pipeline-train")
    applied = False
    try:
        plain_terraform(root, "init", "-input=false")
        plain_terraform(root, "apply", "-auto-approve", "-input=false")
        applied = True
        with open(root / "outputs.json", "w") as handle:
            plain_terraform(root, "output", "-json", stdout=handle)
        ran = subprocess.run([sys.executable, str(root / "attach_and_run.py"), "--outputs",
                              str(root / "outputs.json"), "--forget"], capture_output=True,
                             text=True, timeout=300, check=False, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdin=subprocess.DEVNULL)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        for rank, name in ((0, "head"), (1, "worker1")):
            assert f"({name}, rank={rank}) rank {rank} of 2, master 127." in ran.stdout
        assert json.loads(skyterra("status", "--json").stdout) == []  # --forget
    finally:
        if applied or (root / "terraform.tfstate").exists():
            plain_terraform(root, "destroy", "-auto-approve", "-input=false")
    assert leftover_processes(str(tmp_path)) == []
