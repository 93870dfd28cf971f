"""The cost ledger (fixed clock), autostop's SkyPilot forms and the max_hourly_cost filter."""

from __future__ import annotations

import json

import pytest

from skyterra import api, autostop, ledger
from skyterra.catalog import Candidate
from skyterra.errors import NotSupportedError, TaskError
from skyterra.optimizer import optimize
from skyterra.task import Task

HOUR = 3600.0


def test_a_destroyed_cluster_costs_its_running_time_at_its_launch_price(skyterra_home):
    ledger.record_event("train", ledger.LAUNCH, at=1000.0, price=4.0,
                        resources={"cloud": "aws", "instance_type": "g6.12xlarge",
                                   "num_nodes": 2})
    ledger.record_event("train", ledger.STOP, at=1000.0 + 2 * HOUR)      # 2 h running
    ledger.record_event("train", ledger.START, at=1000.0 + 10 * HOUR)    # 8 h stopped: free
    ledger.record_event("train", ledger.DESTROY, at=1000.0 + 10.5 * HOUR)
    ledger.record_event("live", ledger.LAUNCH, at=5000.0, price=1.0)
    (train, live) = api.cost_report(now=5000.0 + HOUR)
    assert (train.name, train.status, train.launched_at) == ("train", "DESTROYED", 1000.0)
    assert train.ended_at == 1000.0 + 10.5 * HOUR
    assert train.duration == pytest.approx(2.5 * HOUR)
    assert train.total_cost == pytest.approx(10.0)                     # 2.5 h x $4/h
    assert train.resources["instance_type"] == "g6.12xlarge"
    assert (live.status, live.ended_at, live.total_cost) == ("UP", None, pytest.approx(1.0))


def test_a_name_launched_again_is_a_new_row_and_damaged_lines_are_skipped(skyterra_home):
    ledger.record_event("a", ledger.LAUNCH, at=0.0, price=2.0)
    ledger.record_event("a", ledger.DESTROY, at=HOUR, reason="autodowned after 5 min idle")
    with ledger.ledger_path().open("a") as handle:
        handle.write("{not json\n")
    ledger.record_event("a", ledger.LAUNCH, at=2 * HOUR, price=3.0)
    ledger.record_event("a", ledger.STOP, at=3 * HOUR)
    first, second = ledger.report(now=10 * HOUR)
    assert (first.total_cost, first.reason) == (pytest.approx(2.0),
                                                "autodowned after 5 min idle")
    assert (second.status, second.total_cost) == ("STOPPED", pytest.approx(3.0))
    assert all(json.loads(line) for line in ledger.ledger_path().read_text().splitlines()
               if line.startswith('{"'))


@pytest.mark.parametrize(("value", "expected"), [
    (True, autostop.Autostop(5, False, "jobs_and_ssh")),
    (10, autostop.Autostop(10)),
    ("2h", autostop.Autostop(120)),
    ({"idle_minutes": 1, "down": True}, autostop.Autostop(1, True)),
    ({"wait_for": "none"}, autostop.Autostop(5, False, "none")),
    (False, None),
])
def test_autostop_takes_every_skypilot_form(value, expected):
    assert autostop.parse(value) == expected


@pytest.mark.parametrize(("value", "error"), [
    ({"hook": "git push"}, NotSupportedError), (0, TaskError), ("soon", TaskError),
    ({"down": "yes"}, TaskError), ({"idle": 3}, TaskError), ([5], TaskError),
])
def test_bad_autostop_values_are_refused_naming_the_field(value, error):
    with pytest.raises(error) as raised:
        autostop.parse(value)
    assert "resources.autostop" in str(raised.value)


def test_autostop_survives_the_task_record_round_trip():
    task = Task.from_yaml_config({"run": "true", "resources": {"autostop": "10m"}})
    again = Task.from_yaml_config(task.to_yaml_config())
    assert again.resources[0].autostop == {"idle_minutes": 10, "down": False,
                                           "wait_for": "jobs_and_ssh"}


class _Offers:
    name = "fake"

    def offers(self, resources, num_nodes):
        return [Candidate(cloud="fake", region="r", zone=None, instance_type=t,
                          accelerator=None, accelerator_count=0, vcpus=4, memory_gib=16,
                          price=p, num_nodes=num_nodes) for t, p in (("small", 1.0),
                                                                     ("big", 9.0))]

    def explain(self, resources):
        return "nothing"


def test_max_hourly_cost_drops_dearer_candidates_and_says_when_none_is_left():
    cheap = Task.from_yaml_config({"run": "true", "resources": {"max_hourly_cost": 5}})
    assert [c.instance_type for c in optimize(cheap, [_Offers()])] == ["small"]
    broke = Task.from_yaml_config({"run": "true", "resources": {"max_hourly_cost": 0.5}})
    with pytest.raises(TaskError) as raised:
        optimize(broke, [_Offers()])
    message = str(raised.value)
    assert "max_hourly_cost" in message and "$0.50/h" in message and "$1.00/h" in message


def test_launch_dryrun_on_aws_takes_idle_minutes_and_down_and_renders_terminate(
        skyterra_home, tmp_path):
    """`skyterra launch -i 5 --down --cloud aws --dryrun`: accepted, and the module's
    instances terminate on a guest shutdown (the head's watcher ends with one)."""
    from click.testing import CliRunner

    from skyterra import cli

    task = tmp_path / "task.yaml"
    task.write_text("resources:\n  accelerators: L4:4\nrun: 'true'\n")
    runner = CliRunner()
    result = runner.invoke(cli.main, ["launch", str(task), "--cloud", "aws", "-c", "idle5",
                                      "-i", "5", "--down", "--dryrun"])
    assert result.exit_code == 0, result.output
    module = skyterra_home / "dryrun" / "idle5"
    tfvars = json.loads((module / "terraform.tfvars.json").read_text())
    assert tfvars["shutdown_behavior"] == "terminate"
    assert "instance_initiated_shutdown_behavior = var.shutdown_behavior" in \
        (module / "main.tf").read_text()
    plain = runner.invoke(cli.main, ["launch", str(task), "--cloud", "aws", "-c", "idle6",
                                     "-i", "5", "--dryrun"])
    assert plain.exit_code == 0, plain.output
    again = json.loads((skyterra_home / "dryrun" / "idle6" /
                        "terraform.tfvars.json").read_text())
    assert again["shutdown_behavior"] == "stop"
    assert not (skyterra_home / "clusters" / "idle5").exists()


def test_autostop_that_would_stop_spot_nodes_on_aws_is_refused_in_the_dry_run(skyterra_home):
    task = Task.from_yaml_config({"run": "true", "resources": {
        "accelerators": "L4:4", "use_spot": True, "autostop": 10}})
    with pytest.raises(NotSupportedError) as raised:
        api.launch_cluster(task, "nope", clouds=["aws"], dryrun_only=True)
    assert "cannot stop spot instances" in str(raised.value)
    assert "resources.autostop" in str(raised.value)
    task = Task.from_yaml_config({"run": "true", "resources": {
        "accelerators": "L4:4", "use_spot": True, "autostop": {"idle_minutes": 10,
                                                               "down": True}}})
    assert api.launch_cluster(task, "spotdown", clouds=["aws"], dryrun_only=True).candidate


def test_skyterra_autostop_on_an_aws_cluster_is_accepted_by_the_cli(skyterra_home,
                                                                     monkeypatch):
    """`skyterra autostop NAME -i 5 --down` parses and reaches the power layer with the
    setting (the cluster itself is applied on moto in tests/e2e/test_aws_moto.py)."""
    from click.testing import CliRunner

    from skyterra import cli, power

    seen = []
    monkeypatch.setattr(power, "set_autostop", lambda name, setting: seen.append(
        (name, setting)))
    result = CliRunner().invoke(cli.main, ["autostop", "gpu-aws", "-i", "5", "--down"])
    assert result.exit_code == 0, result.output
    assert seen == [("gpu-aws", autostop.Autostop(5, True, "jobs_and_ssh"))]


class _Reply:
    def __init__(self, status_code: int, body: dict | None = None):
        self.status_code, self._body = status_code, body or {}

    def json(self) -> dict:
        return self._body


def test_gcp_compute_api_answers_become_running_stopped_or_gone():
    """The compute API cannot exist here: its instances.get answers are given."""
    from skyterra.clouds.gcp import instance_power

    answers = {"idle-0": _Reply(200, {"status": "TERMINATED"}),
               "idle-1": _Reply(404), "idle-2": _Reply(200, {"status": "RUNNING"})}
    asked = []

    def get(url):
        asked.append(url)
        return answers[url.rsplit("/", 1)[1]]

    names = {0: "idle-0", 1: "idle-1", 2: "idle-2"}
    assert instance_power(get, "proj", "us-central1-a", names) == \
        {0: "stopped", 1: "gone", 2: "running"}
    assert asked[0] == ("https://compute.googleapis.com/compute/v1/projects/proj/zones/"
                        "us-central1-a/instances/idle-0")
    assert instance_power(lambda url: _Reply(403), "proj", "z", names) is None


def test_azure_instance_views_become_running_stopped_or_gone():
    """ARM cannot exist here: its instanceView answers are given."""
    from skyterra.clouds.azure import vm_power

    def view(code):
        return _Reply(200, {"statuses": [{"code": "ProvisioningState/succeeded"},
                                         {"code": f"PowerState/{code}"}]})

    answers = {"idle-0": view("deallocated"), "idle-1": _Reply(404), "idle-2": view("running")}
    seen = []

    def get(url):
        seen.append(url)
        return answers[url.split("/virtualMachines/")[1].split("/")[0]]

    group = "/subscriptions/sub/resourceGroups/skyterra-idle/providers/Microsoft.Compute"
    ids = {k: f"{group}/virtualMachines/idle-{k}" for k in range(3)}
    assert vm_power(get, ids) == {0: "stopped", 1: "gone", 2: "running"}
    assert seen[0] == ("https://management.azure.com/subscriptions/sub/resourceGroups/"
                       "skyterra-idle/providers/Microsoft.Compute/virtualMachines/idle-0/"
                       "instanceView?api-version=2024-07-01")
    assert vm_power(lambda url: _Reply(500), ids) is None
