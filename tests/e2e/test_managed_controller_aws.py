"""`jobs launch --controller aws` on moto: the controller's node goes through the normal render,
plan and apply path (the real hashicorp/aws provider against moto), and the controller's
bootstrap is what would be run on it.

A moto instance is not a machine: nothing can SSH to it (its addresses are fake public IPs,
and tests talk to loopback only). So in this one test the two calls that would reach the node
are replaced by recorders: pinning its host key, and `submit` (sync, setup, run) of the
controller's task. What `submit` is handed -- the setup and run scripts, the staged workdir,
the secrets -- is checked here; that the same bootstrap really runs and starts a controller on
a node is shown on a local controller node (tests/e2e/test_managed.py and
tests/e2e/test_managed_shared.py, which run it for real).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skyterra import executor, state
from skyterra.clouds.aws import UBUNTU_SSM_PARAMETERS
from skyterra.managed import bootstrap, remote
from skyterra.managed.store import JobDir
from skyterra.task import Task
from tests import moto_server as moto_fixtures
from tests.moto_server import MOTO_UBUNTU_DLAMI

moto_server = moto_fixtures.moto_server
aws_env = moto_fixtures.aws_env
moto = moto_fixtures.moto

pytestmark = [pytest.mark.e2e, pytest.mark.moto, pytest.mark.terraform]

CALLER = "203.0.113.7/32"   # TEST-NET-3: never a real caller


def _instances(ec2) -> list[dict]:
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]


def test_controller_node_is_provisioned_on_moto_and_handed_the_bootstrap(
        moto, skyterra_home, monkeypatch, tmp_path):
    skyterra_home.mkdir(parents=True, exist_ok=True)
    moto.publish_public_parameter(UBUNTU_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    monkeypatch.setenv("SKYTERRA_AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("SKYTERRA_SSH_CIDRS", CALLER)

    pinned, handed = [], []

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to SSH to a moto instance")

    def pin(cluster, *args, **kwargs):
        pinned.append([node.ip for node in cluster.nodes])

    def submit(cluster, cluster_dir, task, out, run_setup, progress):
        workdir = Path(task.workdir)
        handed.append({"task": task, "run_setup": run_setup, "cluster": cluster.name,
                       "files": sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                                       if p.is_file() and "__pycache__" not in p.parts),
                       "config": (workdir / bootstrap.CONFIG_FILE).exists()})

    monkeypatch.setattr(executor, "probe", refuse)
    monkeypatch.setattr(executor, "pin_host_keys", pin)
    monkeypatch.setattr(remote, "submit", submit)

    (tmp_path / "train.py").write_text("print('hi')\n")
    task = Task(name="train", workdir=str(tmp_path), run="python3 train.py",
                secrets={"WANDB_API_KEY": "not-a-real-key"})
    lines: list[str] = []
    try:
        job_id = remote.launch(task, name=None, clouds=None, cloud="aws", progress=lines.append)
        job_dir = JobDir(job_id)
        job = job_dir.load()
        # rendered, planned and applied through the normal path: a small on-demand CPU node
        record = state.ClusterDir(job.controller).load()
        assert (record.cloud, record.instance_type, record.num_nodes) == ("aws", "c6a.large", 1)
        [instance] = _instances(moto.client("ec2"))
        assert instance["InstanceType"] == "c6a.large"
        assert "InstanceLifecycle" not in instance            # on-demand, not spot
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        assert tags["skyterra-cluster"] == job.controller
        module = state.ClusterDir(job.controller).path
        assert 'resource "aws_instance"' in (module / "main.tf").read_text()
        log = (module / "provision.log").read_text()
        assert "Plan: " in log and "Apply complete" in log, log
        assert pinned == [[instance["PublicIpAddress"]]]

        # what the executor is handed: the bootstrap, the staged job, the secrets
        [given] = handed
        controller = given["task"]
        assert given["cluster"] == job.controller and given["run_setup"] is True
        requirement = f"./{bootstrap.SOURCE_DIR}[{bootstrap.EXTRAS}]"
        assert controller.setup == bootstrap.setup_script(requirement)
        assert controller.run == bootstrap.run_script(job_id)
        assert f"-m skyterra.managed.remote serve {job_id}" in controller.run
        assert f"pip\" install --quiet '{requirement}'" in controller.setup
        assert {"job.json", "secrets.json", "workdir/train.py",
                f"{bootstrap.SOURCE_DIR}/pyproject.toml",
                f"{bootstrap.SOURCE_DIR}/skyterra/managed/controller.py",
                f"{bootstrap.SOURCE_DIR}/templates/aws/main.tf.j2"} <= set(given["files"])
        assert given["config"] is False            # no shared backend in this home
        assert controller.secrets["AWS_ACCESS_KEY_ID"] == os.environ["AWS_ACCESS_KEY_ID"]
        assert "not-a-real-key" not in "\n".join(lines)   # secrets never printed
        assert job.status == "STARTING" and job.controller.startswith("sky-jobs-controller-")

        # the job ended: kept with keep_controller, destroyed without
        job_dir.update(status="SUCCEEDED", keep_controller=True)
        remote.refresh(job_dir)
        assert state.ClusterDir(job.controller).exists()
        job_dir.update(keep_controller=False)
        remote.refresh(job_dir)
        assert not state.ClusterDir(job.controller).exists()
        assert _instances(moto.client("ec2")) == []
    finally:
        from skyterra.managed.controller import teardown_cluster

        for left in state.list_clusters():
            teardown_cluster(left.name, lambda line: None)
