"""Managed jobs without processes: recovery rules, candidate order, notices, the job store."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from skyterra.catalog import Candidate
from skyterra.clouds.aws import parse_aws_instance_action
from skyterra.clouds.gcp import parse_gcp_preempted
from skyterra.managed import recovery
from skyterra.managed.store import (
    ControllerLock,
    JobDir,
    ManagedJob,
    cluster_name_for,
    new_job_dir,
)
from skyterra.state import check_cluster_name
from skyterra.task import Task

Policy = recovery.Policy


def _task(job_recovery) -> Task:
    return Task.from_yaml_config({"run": "true", "resources": {"job_recovery": job_recovery}})


def test_policy_defaults_to_skypilots_eager_next_region_and_no_limit_set():
    assert Policy.of(Task(run="true")) == Policy("EAGER_NEXT_REGION", None, ())
    assert Policy.of(_task({"strategy": "FAILOVER", "max_restarts_on_errors": 2,
                            "recover_on_exit_codes": [34, 33]})) == Policy("FAILOVER", 2,
                                                                           (33, 34))
    assert Policy.of(_task({"recover_on_exit_codes": 33})) == Policy(
        "EAGER_NEXT_REGION", None, (33,))
    assert Policy.of(_task({"max_restarts_on_errors": 0})).max_restarts_on_errors == 0


def test_a_listed_code_restarts_up_to_the_limit_then_fails():
    policy = Policy(max_restarts_on_errors=2, recover_on_exit_codes=(33,))
    assert recovery.on_failed_run(policy, [33], restarts_on_errors=0) == recovery.RESTART
    assert recovery.on_failed_run(policy, [0, 33], 1) == recovery.RESTART   # any node's code
    assert recovery.on_failed_run(policy, [33], 2) == recovery.FAIL
    assert recovery.on_failed_run(Policy(max_restarts_on_errors=0,
                                         recover_on_exit_codes=(33,)), [33], 0) == recovery.FAIL


def test_a_listed_code_restarts_without_limit_when_no_limit_is_set():
    policy = Policy(recover_on_exit_codes=(33, 34))
    for made in (0, 1, 10, 1000):
        assert recovery.on_failed_run(policy, [34], made) == recovery.RESTART


def test_with_a_list_any_other_non_zero_exit_fails_at_once():
    for policy in (Policy(recover_on_exit_codes=(33,)),
                   Policy(max_restarts_on_errors=5, recover_on_exit_codes=(33,))):
        assert recovery.on_failed_run(policy, [7], 0) == recovery.FAIL
        assert recovery.on_failed_run(policy, [0, 7], 0) == recovery.FAIL


def test_without_a_list_the_limit_covers_every_non_zero_exit():
    policy = Policy(max_restarts_on_errors=2)
    assert [recovery.on_failed_run(policy, [code], made) for code, made in
            ((1, 0), (137, 1), (33, 2))] == [recovery.RESTART, recovery.RESTART, recovery.FAIL]
    assert recovery.on_failed_run(Policy(), [1], 0) == recovery.FAIL       # not set: none
    assert recovery.on_failed_run(Policy(max_restarts_on_errors=0), [1], 0) == recovery.FAIL


def test_listed_tells_which_restarts_were_for_a_listed_code():
    policy = Policy(recover_on_exit_codes=(33,))
    assert recovery.listed(policy, [0, 33]) and not recovery.listed(policy, [7])
    assert not recovery.listed(Policy(), [33])


def _candidate(region: str, zone: str, cloud: str = "aws") -> Candidate:
    return Candidate(cloud=cloud, region=region, zone=zone, instance_type="g6.xlarge",
                     accelerator="L4", accelerator_count=1, vcpus=4, memory_gib=16,
                     price=1.0, use_spot=True, num_nodes=1)


RANKED = [_candidate("us-east-1", "us-east-1a"), _candidate("us-east-1", "us-east-1b"),
          _candidate("us-west-2", "us-west-2a"), _candidate("eu-west-1", "eu-west-1a")]
LOST = ("aws", "us-east-1", "us-east-1a")


def test_eager_next_region_goes_to_another_region_first_and_the_lost_zone_last():
    order = [c.zone for c in recovery.next_candidates(Policy("EAGER_NEXT_REGION"), RANKED,
                                                      LOST)]
    assert order == ["us-west-2a", "eu-west-1a", "us-east-1b", "us-east-1a"]


def test_failover_stays_in_the_region_first():
    order = [c.zone for c in recovery.next_candidates(Policy("FAILOVER"), RANKED, LOST)]
    assert order == ["us-east-1b", "us-east-1a", "us-west-2a", "eu-west-1a"]
    assert recovery.next_candidates(Policy("FAILOVER"), RANKED, None) == RANKED


def test_spot_interruption_notices_are_parsed():
    aws = parse_aws_instance_action('{"action": "terminate", "time": "2026-12-01T10:02:00Z"}')
    assert aws == ("AWS spot interruption notice: the instance will be terminated at "
                   "2026-12-01T10:02:00Z")
    assert "stopped" in parse_aws_instance_action('{"action": "stop", "time": "t"}')
    for nothing in ("", "<html>404 - Not Found</html>", "[]", '{"action": ""}'):
        assert parse_aws_instance_action(nothing) is None
    assert "preempting" in parse_gcp_preempted("TRUE\n")
    assert parse_gcp_preempted("FALSE") is None and parse_gcp_preempted("") is None


def test_watcher_scripts_are_valid_bash():
    from skyterra.clouds.aws import AWS_INTERRUPTION_WATCHER
    from skyterra.clouds.gcp import GCP_INTERRUPTION_WATCHER

    for script in (AWS_INTERRUPTION_WATCHER, GCP_INTERRUPTION_WATCHER):
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_cluster_names_of_managed_jobs_are_valid_everywhere():
    for name in (None, "minGPT-ddp", "9lives", "A" * 80, "x.y_z"):
        check_cluster_name(cluster_name_for(name, 12345))


def test_job_ids_are_unique_and_records_round_trip(tmp_path):
    first, second = new_job_dir(tmp_path), new_job_dir(tmp_path)
    assert (first.job_id, second.job_id) == (1, 2)
    job = ManagedJob(job_id=1, name="n", down_time=2.0, down_since=None)
    first.save(job)
    assert first.load() == job
    first.event("RECOVERING", "node gone", lost_ranks=[1])
    assert first.events()[0]["lost_ranks"] == [1]
    assert "RECOVERING: node gone" in first.run_log.read_text()
    assert oct(first.record_path.stat().st_mode & 0o777) == "0o600"


def test_total_down_time_includes_an_ongoing_recovery():
    job = ManagedJob(job_id=1, down_time=5.0, down_since=100.0)
    assert job.total_down_time(now=110.0) == 15.0
    assert dataclasses.replace(job, down_since=None).total_down_time() == 5.0


def test_a_controller_lock_is_seen_from_another_process_and_dies_with_it(tmp_path):
    job_dir = JobDir(1, tmp_path)
    job_dir.save(ManagedJob(job_id=1))
    assert not job_dir.controller_alive()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path;"
        "from skyterra.managed.store import ControllerLock, JobDir;"
        f"lock = ControllerLock(JobDir(1, Path({str(tmp_path)!r})));"
        "assert lock.acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert job_dir.controller_alive()
        assert not ControllerLock(job_dir).acquire()    # a second controller is refused
    finally:
        holder.kill()
        holder.wait()
    assert not job_dir.controller_alive()
    lock = ControllerLock(job_dir)
    assert lock.acquire()
    lock.release(remove=True)
    assert not job_dir.lock_path.exists()


def test_aws_reports_terminated_and_missing_instances_as_gone(monkeypatch, tmp_path):
    """EC2's own answer (moto, in process): a terminated spot instance is a lost node."""
    import boto3
    from moto import mock_aws

    from skyterra.clouds import get_cloud
    from skyterra.state import ClusterRecord

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("SKYTERRA_AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MOTO_ENABLE_AMI_VALIDATION", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = "ami-12c6146b"   # moto accepts any id unless AMI validation is on
        ids = [i["InstanceId"] for i in ec2.run_instances(
            ImageId=image, MinCount=2, MaxCount=2, InstanceType="t3.micro")["Instances"]]
        record = ClusterRecord(name="c", cloud="aws", region="us-east-1", nodes=[
            {"rank": 0, "ip": "1", "instance_id": ids[0]},
            {"rank": 1, "ip": "2", "instance_id": ids[1]},
            {"rank": 2, "ip": "3", "instance_id": "i-0123456789abcdef0"}])
        aws = get_cloud("aws")
        assert aws.instances_gone(tmp_path, record) == [2]
        ec2.terminate_instances(InstanceIds=[ids[1]])
        assert aws.instances_gone(tmp_path, record) == [1, 2]


def test_the_sdk_offers_the_managed_job_functions():
    import skyterra as sky

    for name in ("jobs_launch", "jobs_queue", "jobs_cancel", "jobs_logs", "jobs_wait"):
        assert callable(getattr(sky, name))


def test_preempting_an_unknown_local_node_says_so(tmp_path):
    result = subprocess.run([sys.executable, "-m", "skyterra.clouds.local", "preempt", "nosuch",
                             "1"], check=False, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "SKYTERRA_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "cluster 'nosuch' does not exist" in result.stderr and "Traceback" not in result.stderr


def test_jobs_queue_is_empty_and_logs_explain_without_jobs(monkeypatch, tmp_path):
    from skyterra import api
    from skyterra.errors import SkyterraError

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    assert api.jobs_queue() == []
    assert api.jobs_cancel() == []
    try:
        api.jobs_logs(follow=False, out=lambda line: None)
    except SkyterraError as error:
        assert "skyterra jobs launch" in str(error)
    else:
        raise AssertionError("no error without jobs")


def test_a_controller_node_gets_copies_of_local_mounts_but_the_sky_key_reference(tmp_path):
    """On a controller node the job's cluster is launched from there, so SkyPilot's
    `~/.ssh/sky-key` stays a reference (that cluster's own key), never a copied file."""
    from skyterra.managed.remote import _stage
    from skyterra.task import Task

    (tmp_path / "tokens.txt").write_text("t\n")
    task = Task(run="true", base_dir=tmp_path, file_mounts={
        "~/.ssh/id_rsa": "~/.ssh/sky-key", "/remote/tokens.txt": "./tokens.txt"})
    staging = tmp_path / "staging"
    staging.mkdir()
    _stage(task, ManagedJob(job_id=3, task=task.to_yaml_config()), {}, staging)
    staged = json.loads((staging / "job.json").read_text())["task"]["file_mounts"]
    assert staged == {"~/.ssh/id_rsa": "~/.ssh/sky-key", "/remote/tokens.txt": "mounts/0"}
    assert (staging / "mounts" / "0").read_text() == "t\n"
