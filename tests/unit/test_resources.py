"""Resources: every SkyPilot spelling of a node's requirements, and the errors for bad ones.

In-process and fast; the end-to-end "bad YAML through the real CLI" cases are
in test_task.py, the random ones in test_bad_input.py.
"""

from __future__ import annotations

import pytest
import yaml

from skyterra.errors import NotSupportedError, TaskError
from skyterra.resources import (
    Resources,
    cpus_memory_bounds,
    parse_accelerator,
    parse_accelerator_choices,
    parse_cpus_memory,
    parse_infra,
    parse_ports,
    resources_from_config,
)
from skyterra.task import Task, parse_resources_section


def accels(task: Task) -> list[dict]:
    return [dict(r.accelerators) if r.accelerators else {} for r in task.resources]


def from_yaml(text: str) -> Task:
    return Task.from_yaml_config(yaml.safe_load(text), source="t.yaml")


# --- accelerators: every SkyPilot form ---------------------------------------------------
@pytest.mark.parametrize("spec, expected", [
    ("L4:4", ("L4", 4)),
    ("H100", ("H100", 1)),
    ("l4:2", ("L4", 2)),                  # case-insensitive, canonical spelling out
    ("a100-80gb:8", ("A100-80GB", 8)),
    (" L4 : 4 ", ("L4", 4)),
    ({"A100": 8}, ("A100", 8)),
    ({"A100": "8"}, ("A100", 8)),
    ({"A100": None}, ("A100", 1)),
    ({"L4:4": None}, ("L4", 4)),         # YAML `{L4:4}` (no space) parses like this
    ("L4:4.0", ("L4", 4)),
])
def test_parse_accelerator_forms(spec, expected):
    assert parse_accelerator(spec) == expected


@pytest.mark.parametrize("yaml_value, expected, ordered", [
    ("L4:4", [{"L4": 4}], False),
    ("H100", [{"H100": 1}], False),
    ("{A100: 8}", [{"A100": 8}], False),
    ("{L4:4}", [{"L4": 4}], False),
    ("['L4:4', 'A100:8', H100]", [{"L4": 4}, {"A100": 8}, {"H100": 1}], True),   # ordered
    ("[H100, 'L4:4']", [{"H100": 1}, {"L4": 4}], True),                         # order kept
    ("{A100: 8, H100: 8}", [{"A100": 8}, {"H100": 8}], False),                 # set (any)
    ("{A100:8, H100:8}", [{"A100": 8}, {"H100": 8}], False),                   # flow, no space
    ("!!set {A100:8, H100:8}", [{"A100": 8}, {"H100": 8}], False),
])
def test_accelerator_yaml_forms(yaml_value, expected, ordered):
    task = from_yaml(f"resources:\n  accelerators: {yaml_value}\nrun: echo\n")
    assert accels(task) == expected
    assert task.resources_ordered is ordered


def test_accelerator_set_from_python_is_any_order():
    task = Task(run="x", resources=Resources(accelerators={"A100:8", "H100:8"}))
    assert sorted(map(str, accels(task))) == sorted(["{'A100': 8}", "{'H100': 8}"])
    assert task.resources_ordered is False


def test_accelerator_list_from_python_is_ordered():
    task = Task(run="x", resources=Resources(accelerators=["H100:8", "A100:8"]))
    assert accels(task) == [{"H100": 8}, {"A100": 8}]
    assert task.resources_ordered is True


def test_single_accelerator_property_and_gpus_per_node():
    r = Resources(accelerators="L4:4")
    assert r.accelerator == ("L4", 4)
    assert Task(run="x", resources=r).num_gpus_per_node == 4
    assert Task(run="x").num_gpus_per_node == 0


@pytest.mark.parametrize("spec, words", [
    ("L4:x", ["'x'", "not a number", "L4:4"]),
    ("L4:0", ["1 to 64"]),
    ("L4:-1", ["1 to 64"]),
    ("L4:65", ["1 to 64"]),
    ("L4:1.5", ["whole number"]),
    ("L4:1e400", ["1 to 64"]),
    ("L4:nan", ["1 to 64"]),
    ("L4:4:4", ["not a number"]),
    ("FOO:4", ["unknown accelerator 'FOO'", "Known accelerators"]),
    ("H10:8", ["Did you mean 'H100'"]),
    ("", ["unknown accelerator"]),
    (5, ["expected an accelerator like 'L4:4'"]),
    ([], ["empty"]),
    (set(), ["empty"]),
    ({}, ["exactly one entry"]),
    ({"L4": True}, ["not a number"]),
    ({"L4": [4]}, ["not a number"]),
    ({"L4": float("inf")}, ["1 to 64"]),
    (["L4:4", "BAD:2"], ["resources.accelerators[1]", "unknown accelerator 'BAD'"]),
    ([["L4:4"]], ["resources.accelerators[0]"]),
])
def test_bad_accelerators(spec, words):
    with pytest.raises(TaskError) as info:
        Resources(accelerators=spec)
    message = str(info.value)
    assert "resources.accelerators" in message
    for word in words:
        assert word in message, message


# --- cpus / memory -------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("4", "4"), ("4+", "4+"), (4, "4"), (8.5, "8.5"), ("16 +", "16+"), (" 2 ", "2"),
    (None, None), ("4.0+", "4+"),
])
def test_cpus_memory_forms(value, expected):
    assert parse_cpus_memory(value, "resources.cpus") == expected


def test_cpus_memory_bounds():
    assert cpus_memory_bounds("4+") == (4.0, True)
    assert cpus_memory_bounds("4") == (4.0, False)
    assert cpus_memory_bounds(None) == (0.0, True)


@pytest.mark.parametrize("key", ["cpus", "memory"])
@pytest.mark.parametrize("value", ["lots", -4, 0, "0+", "4++", "+4", True, [4], {"a": 1},
                                   float("nan"), float("inf"), "1e5", 10**9])
def test_bad_cpus_memory(key, value):
    with pytest.raises(TaskError) as info:
        Resources(**{key: value})
    assert f"resources.{key}" in str(info.value)
    assert "4+" in str(info.value)          # the message shows the right form


# --- infra / cloud / region ----------------------------------------------------------------
@pytest.mark.parametrize("infra, expected", [
    ("aws", ("aws", None, None)),
    ("aws/us-east-1", ("aws", "us-east-1", None)),
    ("aws/us-east-1/us-east-1a", ("aws", "us-east-1", "us-east-1a")),
    ("GCP/us-central1", ("gcp", "us-central1", None)),
    ("local", ("local", None, None)),
])
def test_infra_forms(infra, expected):
    assert parse_infra(infra) == expected
    r = Resources(infra=infra)
    assert (r.cloud, r.region, r.zone) == expected
    assert r.infra is None


def test_infra_and_cloud_region_keys_are_the_same_thing():
    a = resources_from_config({"infra": "aws/us-east-1/us-east-1a"})
    b = resources_from_config({"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"})
    assert a == b


@pytest.mark.parametrize("config, field, words", [
    ({"infra": "aws//x"}, "resources.infra", ["cloud[/region[/zone]]"]),
    ({"infra": "aws/a/b/c"}, "resources.infra", ["cloud[/region[/zone]]"]),
    ({"infra": ""}, "resources.infra", ["cloud[/region[/zone]]"]),
    ({"infra": 5}, "resources.infra", ["cloud[/region[/zone]]"]),
    ({"infra": "awz/us-east-1"}, "resources.infra", ["Did you mean 'aws'"]),
    ({"cloud": "awz"}, "resources.cloud", ["Did you mean 'aws'", "aws, gcp, azure, local"]),
    ({"cloud": "kubernetes"}, "resources.cloud", ["not supported"]),
    ({"cloud": ["aws"]}, "resources.cloud", ["unknown cloud"]),
    ({"cloud": "local", "infra": "aws"}, "resources.infra", ["infra says 'aws'"]),
    ({"region": 5}, "resources.region", ["non-empty string"]),
    ({"zone": ""}, "resources.zone", ["non-empty string"]),
    ({"instance_type": ["a"]}, "resources.instance_type", ["non-empty string"]),
    ({"image_id": {}}, "resources.image_id", ["non-empty string"]),
])
def test_bad_infra_cloud(config, field, words):
    with pytest.raises(TaskError) as info:
        resources_from_config(config)
    assert f"field '{field}'" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_kubernetes_is_not_supported_error():
    with pytest.raises(NotSupportedError):
        resources_from_config({"cloud": "kubernetes"})


# --- the other keys ------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (8080, ("8080",)), ("8000-8010", ("8000-8010",)), ([22, "9000-9001"], ("22", "9000-9001")),
    ("443", ("443",)),
])
def test_ports(value, expected):
    assert parse_ports(value) == expected


@pytest.mark.parametrize("config, field, words", [
    ({"ports": 70000}, "resources.ports", ["1-65535"]),
    ({"ports": 0}, "resources.ports", ["1-65535"]),
    ({"ports": "9000-8000"}, "resources.ports", ["reversed"]),
    ({"ports": "http"}, "resources.ports", ["8080"]),
    ({"ports": [True]}, "resources.ports", ["8080"]),
    ({"labels": {"Bad Key!": "x"}}, "resources.labels.Bad Key!", ["lowercase"]),
    ({"labels": {"ok": "x" * 64}}, "resources.labels.ok", ["63"]),
    ({"labels": {"ok": [1]}}, "resources.labels.ok", ["string"]),
    ({"labels": {"team\n": "x"}}, "resources.labels", ["lowercase"]),
    ({"labels": ["a"]}, "resources.labels", ["mapping"]),
    ({"use_spot": "yes please"}, "resources.use_spot", ["true or false"]),
    ({"use_spot": None}, "resources.use_spot", ["true or false"]),
    ({"disk_size": "big"}, "resources.disk_size", ["GB"]),
    ({"disk_size": 5}, "resources.disk_size", ["10 to 65536"]),
    ({"disk_size": True}, "resources.disk_size", ["GB"]),
    ({"disk_size": 10**30}, "resources.disk_size", ["GB"]),
    ({"disk_tier": "fast"}, "resources.disk_tier", ["low, medium, high"]),
    ({"disk_tier": "hihg"}, "resources.disk_tier", ["Did you mean 'high'"]),
    ({"acelerators": "L4"}, "resources.acelerators", ["Did you mean 'accelerators'"]),
    ({"cpu": 4}, "resources.cpu", ["Did you mean 'cpus'"]),
    ({"job_recovery": "x"}, "resources.job_recovery.strategy", ["FAILOVER"]),
    ({"job_recovery": "failovr"}, "resources.job_recovery.strategy", ["Did you mean 'FAILOVER'"]),
    ({"job_recovery": 3}, "resources.job_recovery", ["strategy"]),
    ({"job_recovery": {"max_restarts": 3}}, "resources.job_recovery.max_restarts",
     ["Did you mean 'max_restarts_on_errors'"]),
    ({"job_recovery": {"max_restarts_on_errors": -1}},
     "resources.job_recovery.max_restarts_on_errors", [">= 0"]),
    ({"job_recovery": {"recover_on_exit_codes": [33, 256]}},
     "resources.job_recovery.recover_on_exit_codes", ["0 to 255"]),
    ({"job_recovery": "FAILOVER", "spot_recovery": "FAILOVER"}, "resources.spot_recovery",
     ["not both"]),
    ({"autostop": {"hook": "git push"}}, "resources.autostop.hook", ["not supported"]),
    ({"autostop": {"wait_for": "ssh"}}, "resources.autostop.wait_for", ["jobs_and_ssh"]),
    ({"autostop": "soon"}, "resources.autostop", ["10m"]),
    ({"max_hourly_cost": -1}, "resources.max_hourly_cost", ["positive"]),
])
def test_bad_resource_keys(config, field, words):
    with pytest.raises(TaskError) as info:
        resources_from_config(config)
    message = str(info.value)
    assert f"field '{field}" in message, message
    for word in words:
        assert word in message, message


def test_job_recovery_takes_skypilots_forms():
    full = resources_from_config({"job_recovery": {"strategy": "failover",
                                                   "max_restarts_on_errors": 2,
                                                   "recover_on_exit_codes": 33}})
    assert full.job_recovery == {"strategy": "FAILOVER", "max_restarts_on_errors": 2,
                                 "recover_on_exit_codes": [33]}
    plain = resources_from_config({"spot_recovery": "EAGER_NEXT_REGION"})
    assert plain.job_recovery == {"strategy": "EAGER_NEXT_REGION",
                                  "max_restarts_on_errors": None, "recover_on_exit_codes": []}
    assert resources_from_config({}).job_recovery is None
    again = resources_from_config(full.to_yaml_config())
    assert again.job_recovery == full.job_recovery


def test_ports_are_normalized():
    assert parse_ports([" 80 ", "80\n", "8000-8000"]) == ("80", "80", "8000")


def test_valid_labels_disk_spot():
    r = resources_from_config({"labels": {"team": "ml", "run-id": 7}, "disk_size": 256,
                               "disk_tier": "high", "use_spot": True, "image_id": "ami-1",
                               "instance_type": "g6.12xlarge"})
    assert r.labels == {"team": "ml", "run-id": "7"}
    assert (r.disk_size, r.disk_tier, r.use_spot) == (256, "high", True)


# --- any_of / ordered ----------------------------------------------------------------------
def test_any_of_is_a_set_and_inherits_the_base_keys():
    task = from_yaml("resources:\n  cpus: 4+\n  any_of:\n    - accelerators: L4:4\n"
                     "    - accelerators: A100:8\n      cloud: gcp\nrun: x\n")
    assert task.resources_ordered is False
    assert accels(task) == [{"L4": 4}, {"A100": 8}]
    assert [r.cpus for r in task.resources] == ["4+", "4+"]
    assert task.resources[1].cloud == "gcp"


def test_ordered_is_a_list():
    task = from_yaml("resources:\n  ordered:\n    - infra: aws/us-east-1\n"
                     "    - infra: gcp/us-central1\n  accelerators: H100:8\nrun: x\n")
    assert task.resources_ordered is True
    assert [(r.cloud, r.region) for r in task.resources] == [("aws", "us-east-1"),
                                                             ("gcp", "us-central1")]


@pytest.mark.parametrize("config, field", [
    ({"any_of": [{"cloud": "aws"}], "ordered": [{"cloud": "gcp"}]}, "resources"),
    ({"any_of": []}, "resources.any_of"),
    ({"any_of": "aws"}, "resources.any_of"),
    ({"ordered": ["aws"]}, "resources.ordered[0]"),
    ({"any_of": [{"cloud": "aws"}, {"acelerators": "L4"}]}, "resources.any_of[1].acelerators"),
    ({"ordered": [{"cpus": "lots"}]}, "resources.ordered[0].cpus"),
    ({"any_of": [{"any_of": [{"cpus": 2}]}]}, "resources.any_of[0].any_of"),
    ({"cloud": "awz", "ordered": [{"cpus": 2}]}, "resources.ordered[0].cloud"),
])
def test_bad_any_of_ordered(config, field):
    with pytest.raises(TaskError) as info:
        parse_resources_section(config)
    assert f"field '{field}'" in str(info.value), str(info.value)


def test_resources_from_python_equal_yaml():
    a = Resources(cloud="aws", accelerators="L4:4", cpus="4+", memory=32, ports=8080)
    b = resources_from_config({"cloud": "aws", "accelerators": {"L4": 4}, "cpus": "4+",
                               "memory": "32", "ports": [8080]})
    assert a == b
    assert Resources(**{k: v for k, v in b.to_yaml_config().items()}) == b


def test_cli_style_override_keeps_validation():
    r = Resources(accelerators="L4:4")
    assert r.copy(cloud="local").cloud == "local"
    with pytest.raises(TaskError, match="resources.cloud"):
        r.copy(cloud="awz")


def test_accelerator_choices_field_paths():
    with pytest.raises(TaskError, match=r"resources\.any_of\[0\]\.accelerators\[1\]"):
        parse_resources_section({"any_of": [{"accelerators": ["L4:4", "X:1"]}]})
    assert parse_accelerator_choices(["L4:4", {"H100": 2}]) == ([("L4", 4), ("H100", 2)], True)
