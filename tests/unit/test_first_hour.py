"""What a new user meets first: a dry run checks what a launch checks, an override never
drops a field silently, and task names follow SkyPilot's rule."""

from __future__ import annotations

import pytest

from skyterra import api
from skyterra.errors import TaskError
from skyterra.task import Task


def _task(tmp_path, **extra):
    return Task.from_yaml_config({"name": "t", "run": "true", **extra}, base_dir=tmp_path)


def test_dryrun_refuses_a_missing_workdir(skyterra_home, tmp_path):
    with pytest.raises(TaskError, match="workdir .* is not a directory"):
        api.dryrun(_task(tmp_path, workdir="no-such-dir"), "dry", ["local"])


def test_dryrun_refuses_a_missing_file_mount_source(skyterra_home, tmp_path):
    with pytest.raises(TaskError, match="does not exist") as refused:
        api.dryrun(_task(tmp_path, file_mounts={"/data": "missing.txt"}), "dry", ["local"])
    assert "file_mounts./data" in str(refused.value)


def test_dryrun_refuses_a_missing_bucket_source(skyterra_home, tmp_path):
    task = _task(tmp_path, file_mounts={"/data": {"name": "bk-src", "store": "s3",
                                                  "source": "no-such-folder"}})
    with pytest.raises(TaskError, match="not a local directory"):
        api.dryrun(task, "dry", ["local"])


def test_dryrun_notes_a_required_env_left_null_and_launch_refuses_it(skyterra_home, tmp_path):
    task = _task(tmp_path, envs={"TOKEN": None}, secrets={"KEY": None})
    notes = api.dryrun(task, "dry", ["local"]).notes
    assert any("env TOKEN is required" in n for n in notes), notes
    assert any("secret KEY is required" in n for n in notes), notes
    with pytest.raises(TaskError, match="env TOKEN is required"):
        api.launch_cluster(task, "dry", clouds=["local"])


@pytest.mark.parametrize("field,value", [("region", "us-east-1"), ("zone", "us-east-1a"),
                                         ("instance_type", "m5.large"),
                                         ("image_id", "ami-0123456789abcdef0")])
def test_another_cloud_does_not_inherit_a_cloud_specific_field(tmp_path, field, value):
    task = _task(tmp_path, resources={"cloud": "aws", field: value})
    with pytest.raises(TaskError) as info:
        task.set_resources_override(cloud="local")
    message = str(info.value)
    assert f"resources.{field}" in message and value in message and "aws" in message


def test_an_override_that_gives_the_field_too_is_fine(tmp_path):
    task = _task(tmp_path, resources={"cloud": "aws", "region": "us-east-1"})
    task.set_resources_override(cloud="gcp", region="us-central1")
    assert (task.resources[0].cloud, task.resources[0].region) == ("gcp", "us-central1")


def test_the_local_cloud_explains_fields_it_cannot_honour(skyterra_home, tmp_path):
    with pytest.raises(TaskError) as info:
        api.dryrun(_task(tmp_path, resources={"instance_type": "m5.large"}), "dry", ["local"])
    assert "no instance_type: m5.large" in str(info.value)
    assert "no catalog" not in str(info.value)


@pytest.mark.parametrize("name", ["minGPT-ddp", "train", "a.b_c", "x--y", "job1"])
def test_skypilot_task_names_are_accepted(name):
    assert Task(name=name, run="true").name == name


@pytest.mark.parametrize("name", ["my job", "a;b", "${HOME}", "'q'", "-lead", "trail-",
                                  "a---b", "é"])
def test_invalid_task_names_are_refused(name):
    with pytest.raises(TaskError, match="task name .* is not valid") as info:
        Task(name=name, run="true")
    assert "field 'name'" in str(info.value)
