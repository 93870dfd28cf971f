"""The AWS module applied for real against moto (an EC2 emulator on 127.0.0.1).

Each apply cycle costs about a minute here (provider start per command, 10 s
instance polling on create and on destroy), so there are few of them:

1. the 2-node spot seed: apply → what moto holds (type, count, disk, tags,
   security group rules, key pair) → a second plan has no changes → destroy
   leaves no instance, security group or key pair;
2. bad input: an unknown instance type and a missing AMI fail at plan time,
   an AMI that vanishes between plan and apply fails after the key pair and
   security group exist; all are 'invalid' to the classifier, and the partial
   state destroys (from the state alone: `-refresh=false`);
3. `skyterra launch --cloud aws --provision-only` of the seed train.yaml
   through the CLI, then `skyterra destroy`.

The `moto` fixture (tests/moto_server.py) resets the emulator first and fails
the test if anything is left in it afterwards. Nothing talks to a non-loopback
address: endpoints point at moto, and HTTP(S)_PROXY is a dead loopback port.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from skyterra.clouds import get_cloud
from skyterra.clouds.aws import DLAMI_SSM_PARAMETERS
from tests import moto_server as moto_fixtures
from tests.moto_server import MOTO_UBUNTU_DLAMI, terraform
from tests.terraform.test_aws_module import (
    CALLER,
    CASES,
    G6_L4X4,
    SEED,
    render,
    render_case,
    variant_task,
)

moto_server = moto_fixtures.moto_server
aws_env = moto_fixtures.aws_env
moto = moto_fixtures.moto

pytestmark = [pytest.mark.e2e, pytest.mark.moto]

TF = ("-input=false", "-no-color")


def _instances(ec2) -> list[dict]:
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]


def _tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@pytest.mark.terraform
def test_two_node_spot_cluster_applies_replans_clean_and_destroys_to_nothing(moto, tmp_path):
    started = time.monotonic()
    module = render_case(CASES["aws-train-multinode"], tmp_path / "cluster",
                         aws_endpoint_url=moto.url, placement_group=False)  # moto: no PGs
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    terraform(module, "init", *TF)
    try:
        terraform(module, "plan", *TF, "-out=plan.tfplan")
        terraform(module, "apply", *TF, "plan.tfplan")
        outputs = {k: v["value"] for k, v in
                   json.loads(terraform(module, "output", "-json").stdout).items()}

        ec2 = moto.client("ec2")
        nodes = sorted(_instances(ec2), key=lambda i: int(_tags(i)["skyterra-node-rank"]))
        assert len(nodes) == 2
        assert outputs["instance_ids"] == [n["InstanceId"] for n in nodes]  # head first
        assert outputs["node_ips"] == [n["PublicIpAddress"] for n in nodes]
        assert outputs["node_private_ips"] == [n["PrivateIpAddress"] for n in nodes]
        assert len(set(outputs["node_ips"] + outputs["node_private_ips"])) == 4
        assert (outputs["ssh_user"], outputs["ssh_port"], outputs["zone"]) == \
            ("ubuntu", 22, "us-east-1a")
        for rank, node in enumerate(nodes):
            assert node["InstanceType"] == "g6.12xlarge"
            assert node["ImageId"] == MOTO_UBUNTU_DLAMI
            assert node["InstanceLifecycle"] == "spot"
            assert node["KeyName"] == "skyterra-mingpt"
            assert node["Placement"]["AvailabilityZone"] == "us-east-1a"
            assert _tags(node) == {"Name": ["mingpt-head", "mingpt-worker1"][rank],
                                   "skyterra-cluster": "mingpt",
                                   "skyterra-node-rank": str(rank)}
            (volume_id,) = [m["Ebs"]["VolumeId"] for m in node["BlockDeviceMappings"]]
            (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
            assert (volume["Size"], volume["VolumeType"]) == (256, "gp3")
            assert [g["GroupId"] for g in node["SecurityGroups"]] == \
                [outputs["security_group_id"]]

        (group,) = ec2.describe_security_groups(
            GroupIds=[outputs["security_group_id"]])["SecurityGroups"]
        assert group["GroupName"] == "skyterra-mingpt"
        assert _tags(group) == {"Name": "skyterra-mingpt", "skyterra-cluster": "mingpt"}
        rules = {(r["IpProtocol"], r.get("FromPort"), r.get("ToPort")): r
                 for r in group["IpPermissions"]}
        assert set(rules) == {("tcp", 22, 22), ("-1", None, None)}
        assert [r["CidrIp"] for r in rules[("tcp", 22, 22)]["IpRanges"]] == [CALLER]
        inside = rules[("-1", None, None)]
        assert [p["GroupId"] for p in inside["UserIdGroupPairs"]] == [group["GroupId"]]
        assert inside["IpRanges"] == []
        assert [r["CidrIp"] for r in group["IpPermissionsEgress"][0]["IpRanges"]] == \
            ["0.0.0.0/0"]
        (pair,) = ec2.describe_key_pairs()["KeyPairs"]
        assert pair["KeyName"] == "skyterra-mingpt"

        again = terraform(module, "plan", *TF, "-detailed-exitcode")
        assert again.returncode == 0 and "No changes." in again.stdout
    finally:
        terraform(module, "destroy", *TF, "-auto-approve")
    assert moto.leftovers() == []
    print(f"2-node apply/replan/destroy cycle: {time.monotonic() - started:.1f} s")


@pytest.mark.terraform
def test_bad_instance_type_and_bad_ami_are_invalid_and_leave_a_destroyable_state(
        moto, tmp_path):
    aws = get_cloud("aws")
    options = {"ssh_cidrs": [CALLER], "aws_endpoint_url": moto.url}
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    render(variant_task({}), dataclasses.replace(G6_L4X4, instance_type="g6.48bogus"),
           tmp_path, options)
    terraform(tmp_path, "init", *TF)

    def plan_fails(*needles: str) -> None:
        failed = terraform(tmp_path, "plan", *TF, "-out=plan.tfplan", check=False)
        assert failed.returncode == 1, failed.output
        for needle in needles:
            assert needle in failed.output, failed.output
        assert aws.classify_error(failed.output) == "invalid", failed.output
        assert moto.leftovers() == []

    try:
        # Refused while planning, before anything exists: a type EC2 does not know...
        plan_fails("InvalidInstanceType", "g6.48bogus")
        # ...and an AMI id that does not exist.
        render(variant_task({"image_id": "ami-0123456789abcdef0"}), G6_L4X4, tmp_path, options)
        plan_fails("Your query returned no results")

        # An AMI that disappears between plan and apply: the key pair and the security
        # group get created, the instance does not; the error is still 'invalid'.
        ec2 = moto.client("ec2")
        image = ec2.copy_image(SourceImageId=MOTO_UBUNTU_DLAMI, SourceRegion="us-east-1",
                               Name="skyterra-vanishing-image")["ImageId"]
        render(variant_task({"image_id": image}), G6_L4X4, tmp_path, options)
        terraform(tmp_path, "plan", *TF, "-out=plan.tfplan")
        ec2.deregister_image(ImageId=image)
        failed = terraform(tmp_path, "apply", *TF, "plan.tfplan", check=False)
        assert failed.returncode == 1, failed.output
        assert aws.classify_error(failed.output) == "invalid", failed.output
        left = moto.leftovers()
        assert any(item.startswith("key pair") for item in left), left
        assert not any(item.startswith("instance") for item in left), left

        # A plain destroy re-reads the data sources first and trips over the vanished
        # AMI; destroying from the state alone (-refresh=false) works.
        plain = terraform(tmp_path, "destroy", *TF, "-auto-approve", check=False)
        assert plain.returncode == 1 and "Your query returned no results" in plain.output
    finally:
        terraform(tmp_path, "destroy", *TF, "-auto-approve", "-refresh=false")
    assert moto.leftovers() == []


def test_check_credentials_verify_asks_sts_who_we_are(moto):
    report = get_cloud("aws").check_credentials(verify=True)
    assert report.ok, report
    assert "environment variables" in report.detail
    assert "account 123456789012" in report.detail
    assert moto_fixtures.DUMMY_SECRET not in report.detail


# --- the whole pipeline through the CLI --------------------------------------------------

def _prepare_moto_launch(moto, skyterra_home, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every launch on moto needs: placement groups off (moto has none: HTTP 500), the
    DLAMI's public parameter, the endpoint and SSH ingress, and no SSH to moto's fake IPs."""
    skyterra_home.mkdir(parents=True, exist_ok=True)
    (skyterra_home / "config.yaml").write_text("provision:\n  placement_group: false\n")
    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    monkeypatch.setenv("SKYTERRA_AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("SKYTERRA_SSH_CIDRS", CALLER)
    _guard_ssh(monkeypatch)


def _guard_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moto's addresses are fake public IPs: no SSH may ever be attempted to them."""
    from skyterra import executor

    def refuse(*args, **kwargs):
        raise AssertionError("launch --provision-only tried to reach the nodes over SSH; "
                             "moto's node IPs are not reachable (and not loopback)")

    for name in ("pin_host_keys", "probe", "wait_for_ssh"):
        if hasattr(executor, name):
            monkeypatch.setattr(executor, name, refuse)


@pytest.mark.terraform
@pytest.mark.parametrize("seed_name,nodes", [("train.yaml", 1), ("train-multinode.yaml", 2)])
def test_cli_launch_provision_only_on_moto_then_destroy(moto, skyterra_home, monkeypatch,
                                                        tmp_path, seed_name, nodes):
    from click.testing import CliRunner

    from skyterra import cli

    seed = SEED / seed_name
    _prepare_moto_launch(moto, skyterra_home, monkeypatch)
    runner = CliRunner()
    launch = ["launch", str(seed), "--cloud", "aws/us-east-1", "-c", "mingpt-moto", "-y",
              "--provision-only"]
    try:
        first = runner.invoke(cli.main, launch, catch_exceptions=False)
        assert first.exit_code == 0, first.output
        ec2 = moto.client("ec2")
        created = _instances(ec2)
        assert len(created) == nodes
        node = created[0]
        assert all(i["InstanceType"] == "g6.12xlarge" for i in created)
        assert _tags(node)["skyterra-cluster"] == "mingpt-moto"
        assert node["KeyName"] == "skyterra-mingpt-moto"
        second = runner.invoke(cli.main, launch, catch_exceptions=False)
        assert second.exit_code == 0, second.output
        # Nothing to change: skyterra sees module, variables and state as the last apply
        # left them and runs no plan (or, had anything moved, Terraform plans no change).
        assert ("nothing changed since the last apply" in second.output
                or "0 to add, 0 to change, 0 to destroy" in second.output), second.output
        assert sorted(i["InstanceId"] for i in _instances(ec2)) == sorted(
            i["InstanceId"] for i in created)
    finally:
        done = runner.invoke(cli.main, ["destroy", "mingpt-moto", "-y"],
                             catch_exceptions=False)
        assert done.exit_code == 0, done.output
    assert moto.leftovers() == []


@pytest.mark.terraform
def test_stop_then_start_through_terraform_keeps_volumes_tags_and_plans_clean(moto, tmp_path):
    """skyterra stop/start on AWS is `nodes_running` in the tfvars: aws_ec2_instance_state
    stops the instances (volumes stay), a plan afterwards has no changes; start brings
    the same instances back and a refresh reads their public IPs. Labels are tags on
    instances, root volumes and the security group."""
    from skyterra.renderer import render as render_deployment
    from tests.deployments import deployment_for
    from tests.terraform.test_aws_module import KEY_PATH, TEST_PUBLIC_KEY

    task = variant_task({"labels": {"team": "ml"}}, num_nodes=2)
    module = tmp_path / "cluster"
    options = {"ssh_cidrs": [CALLER], "aws_endpoint_url": moto.url, "placement_group": False}

    def render_with(running: bool) -> None:
        render_deployment(deployment_for(task, G6_L4X4, directory=module, name="pause",
                                         public_key=TEST_PUBLIC_KEY, private_key_path=KEY_PATH,
                                         options=options, stored={"nodes_running": running}))

    def no_changes() -> bool:
        again = terraform(module, "plan", *TF, "-detailed-exitcode", check=False)
        return again.returncode == 0 and "No changes." in again.stdout

    def changed_attributes() -> set[tuple[str, str]]:
        """(resource address, attribute) of every planned change."""
        terraform(module, "plan", *TF, "-out=check.tfplan")
        plan = json.loads(terraform(module, "show", "-json", "check.tfplan").stdout)
        found = set()
        for change in plan.get("resource_changes", []):
            before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
            if change["change"]["actions"] != ["no-op"]:
                found |= {(change["address"], k) for k in set(before) | set(after)
                          if before.get(k) != after.get(k)}
        return found

    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    render_with(True)
    terraform(module, "init", *TF)
    ec2 = moto.client("ec2")
    try:
        terraform(module, "apply", *TF, "-auto-approve")
        nodes = _instances(ec2)
        ids = sorted(n["InstanceId"] for n in nodes)
        for node in nodes:
            assert _tags(node)["team"] == "ml" and _tags(node)["skyterra-cluster"] == "pause"
            (volume_id,) = [m["Ebs"]["VolumeId"] for m in node["BlockDeviceMappings"]]
            (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
            assert _tags(volume)["team"] == "ml" and _tags(volume)["skyterra-cluster"] == "pause"
        (group,) = [g for g in ec2.describe_security_groups()["SecurityGroups"]
                    if g["GroupName"] == "skyterra-pause"]
        assert _tags(group)["team"] == "ml"

        render_with(False)
        terraform(module, "apply", *TF, "-auto-approve")
        assert sorted(n["InstanceId"] for n in _instances(ec2)) == ids     # same instances
        assert {n["State"]["Name"] for n in _instances(ec2)} == {"stopped"}
        # No drift but one moto quirk: once a moto instance was stopped, the provider reads
        # its security groups back empty (moto's DescribeInstances still lists them; EC2
        # keeps them), so it plans to add the group again. Nothing else may change.
        moto_quirk = {(f"aws_instance.node[{k}]", "vpc_security_group_ids") for k in (0, 1)}
        assert changed_attributes() <= moto_quirk

        render_with(True)
        terraform(module, "apply", *TF, "-auto-approve")
        terraform(module, "apply", *TF, "-refresh-only", "-auto-approve")
        nodes = _instances(ec2)
        assert {n["State"]["Name"] for n in nodes} == {"running"}
        outputs = {k: v["value"] for k, v in
                   json.loads(terraform(module, "output", "-json").stdout).items()}
        by_id = {n["InstanceId"]: n for n in nodes}
        assert outputs["node_ips"] == [by_id[i]["PublicIpAddress"]
                                       for i in outputs["instance_ids"]]
        assert changed_attributes() <= moto_quirk
    finally:
        terraform(module, "destroy", *TF, "-auto-approve")
    assert moto.leftovers() == []


# --- autostop: the instances stop or terminate themselves -------------------------------

@pytest.mark.terraform
def test_autostop_sets_the_shutdown_behaviour_and_a_cancel_sets_it_back_plans_clean(
        moto, tmp_path):
    """Autodown renders instance_initiated_shutdown_behavior = "terminate", so the head
    watcher's `shutdown -h now` terminates each node; a cancel renders "stop" again.
    Both applies keep the security group and the next plan has no changes.

    moto 5.2.5 does not handle ModifyInstanceAttribute(InstanceInitiatedShutdownBehavior)
    (the provider sets the attribute that way): it fell through to its security-group
    handler and left the instances with no group, so the second plan was not clean.
    The moto fixture (tests/moto_server.py) makes that call behave as EC2's does."""
    from skyterra.renderer import render as render_deployment
    from tests.deployments import deployment_for
    from tests.terraform.test_aws_module import KEY_PATH, TEST_PUBLIC_KEY

    task = variant_task({"autostop": {"idle_minutes": 5, "down": True}}, num_nodes=2)
    module = tmp_path / "cluster"
    options = {"ssh_cidrs": [CALLER], "aws_endpoint_url": moto.url, "placement_group": False}

    def render_with(stored: dict) -> None:
        render_deployment(deployment_for(task, G6_L4X4, directory=module, name="idle",
                                         public_key=TEST_PUBLIC_KEY, private_key_path=KEY_PATH,
                                         options=options, stored=stored))

    def behaviour_and_groups(ec2) -> set[tuple[str, tuple[str, ...]]]:
        return {(ec2.describe_instance_attribute(
                    InstanceId=n["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
                 )["InstanceInitiatedShutdownBehavior"]["Value"],
                 tuple(g["GroupName"] for g in n["SecurityGroups"])) for n in _instances(ec2)}

    moto.publish_public_parameter(DLAMI_SSM_PARAMETERS["x86_64"], MOTO_UBUNTU_DLAMI)
    render_with({})
    assert json.loads((module / "terraform.tfvars.json").read_text())["shutdown_behavior"] \
        == "terminate"
    terraform(module, "init", *TF)
    ec2 = moto.client("ec2")
    try:
        terraform(module, "apply", *TF, "-auto-approve")
        assert behaviour_and_groups(ec2) == {("terminate", ("skyterra-idle",))}
        again = terraform(module, "plan", *TF, "-detailed-exitcode", check=False)
        assert again.returncode == 0 and "No changes." in again.stdout, again.output

        render_with({"autostop": {}})          # `skyterra autostop idle --cancel`
        terraform(module, "apply", *TF, "-auto-approve")
        assert behaviour_and_groups(ec2) == {("stop", ("skyterra-idle",))}
        again = terraform(module, "plan", *TF, "-detailed-exitcode", check=False)
        assert again.returncode == 0 and "No changes." in again.stdout, again.output
    finally:
        terraform(module, "destroy", *TF, "-auto-approve")
    assert moto.leftovers() == []


def _launch_with_autostop(runner, moto, skyterra_home, monkeypatch, tmp_path, name: str,
                          *flags: str):
    """`skyterra launch --cloud aws -i ... --provision-only` of one on-demand node on moto,
    then the setting recorded as set_autostop records it once the watcher is on the head
    (--provision-only stops before that: the watcher goes on over SSH, and moto's node
    IPs are not reachable)."""
    from skyterra import autostop, cli, idle_watcher, state

    # The watcher goes on (and off) the head over SSH; moto's node IPs are fake public
    # addresses that no test may try to reach: the calls are recorded instead.
    watcher_calls: list[tuple[str, str]] = []
    monkeypatch.setattr(idle_watcher, "install", lambda cluster, setting, **kw:
                        watcher_calls.append(("install", setting)))
    monkeypatch.setattr(idle_watcher, "remove", lambda cluster, **kw:
                        watcher_calls.append(("remove", None)))
    _prepare_moto_launch(moto, skyterra_home, monkeypatch)
    task = tmp_path / f"{name}.yaml"
    task.write_text("resources:\n  accelerators: L4:4\nrun: 'true'\n")
    launched = runner.invoke(cli.main, ["launch", str(task), "--cloud", "aws/us-east-1",
                                        "-c", name, "-y", "--provision-only", *flags],
                             catch_exceptions=False)
    assert launched.exit_code == 0, launched.output
    cluster_dir = state.ClusterDir(name)
    tfvars = json.loads((cluster_dir.path / "terraform.tfvars.json").read_text())
    setting = autostop.for_launch(None, int(flags[flags.index("-i") + 1]), "--down" in flags)
    assert tfvars["shutdown_behavior"] == ("terminate" if setting.down else "stop")
    cluster_dir.update(autostop=setting.to_record())
    (node,) = _instances(moto.client("ec2"))
    return cluster_dir, node["InstanceId"], watcher_calls


@pytest.mark.terraform
def test_status_refresh_records_an_aws_cluster_that_stopped_itself_as_stopped(
        moto, skyterra_home, monkeypatch, tmp_path):
    """The head's watcher ends with `shutdown -h now`; with the "stop" behaviour EC2 stops
    the instance. Here the test stops it through moto's API, as that shutdown would."""
    from click.testing import CliRunner

    from skyterra import cli

    runner = CliRunner()
    cluster_dir, instance, _ = _launch_with_autostop(runner, moto, skyterra_home,
                                                     monkeypatch, tmp_path, "nap", "-i", "5")
    try:
        quiet = runner.invoke(cli.main, ["status", "--refresh", "--json"],
                              catch_exceptions=False)
        assert json.loads(quiet.output)[0]["status"] == "UP"   # running: nothing happens
        ec2 = moto.client("ec2")
        ec2.stop_instances(InstanceIds=[instance])
        shown = runner.invoke(cli.main, ["status", "--refresh"], catch_exceptions=False)
        assert shown.exit_code == 0, shown.output
        assert "cluster 'nap' was autostopped after 5 min idle; it is STOPPED" in shown.output
        record = cluster_dir.load()
        assert (record.status, record.status_reason) == ("STOPPED",
                                                         "autostopped after 5 min idle")
        assert [n["State"]["Name"] for n in _instances(ec2)] == ["stopped"]
        # Terraform agrees: the power state is "stopped" in the tfvars and nothing drifts.
        assert json.loads((cluster_dir.path / "terraform.tfvars.json").read_text()
                          )["nodes_running"] is False
        plan = terraform(cluster_dir.path, "plan", *TF, "-detailed-exitcode", check=False)
        assert plan.returncode == 0 and "No changes." in plan.stdout, plan.output
    finally:
        done = runner.invoke(cli.main, ["destroy", "nap", "-y"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
    assert moto.leftovers() == []


@pytest.mark.terraform
def test_status_refresh_cleans_up_an_aws_cluster_that_terminated_itself(
        moto, skyterra_home, monkeypatch, tmp_path):
    """Autodown: the "terminate" behaviour turns the watcher's shutdown into a
    termination (done here through moto's API). status --refresh destroys what is left
    (security group, key pair), forgets the cluster and says why."""
    from click.testing import CliRunner

    from skyterra import autostop, cli

    runner = CliRunner()
    cluster_dir, instance, watcher = _launch_with_autostop(
        runner, moto, skyterra_home, monkeypatch, tmp_path, "gone", "-i", "5")
    ec2 = moto.client("ec2")

    def behaviour() -> str:
        return ec2.describe_instance_attribute(
            InstanceId=instance, Attribute="instanceInitiatedShutdownBehavior"
        )["InstanceInitiatedShutdownBehavior"]["Value"]

    assert behaviour() == "stop"
    # `skyterra autostop gone -i 5 --down` on the running cluster: the module is applied
    # again (the instance now terminates on shutdown), then the watcher is reinstalled.
    turned = runner.invoke(cli.main, ["autostop", "gone", "-i", "5", "--down"],
                           catch_exceptions=False)
    assert turned.exit_code == 0, turned.output
    assert behaviour() == "terminate"
    (group,) = [g["GroupName"] for g in _instances(ec2)[0]["SecurityGroups"]]
    assert group == "skyterra-gone"
    assert watcher[-2:] == [("remove", None), ("install", autostop.Autostop(5, True))]
    ec2.terminate_instances(InstanceIds=[instance])
    shown = runner.invoke(cli.main, ["status", "--refresh"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "cluster 'gone' was autodowned after 5 min idle; it is gone" in shown.output
    assert not cluster_dir.path.exists()
    assert moto.leftovers() == []
    report = json.loads(runner.invoke(cli.main, ["cost-report", "--json"]).output)
    assert (report[0]["status"], report[0]["reason"]) == ("DESTROYED",
                                                          "autodowned after 5 min idle")
