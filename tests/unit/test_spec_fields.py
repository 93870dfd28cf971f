"""The SkyPilot fields added for issue 18, one behaviour per test (the corpus covers
whole files; these pin the edges)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from skyterra.dag import Dag
from skyterra.errors import NotSupportedError, TaskError
from skyterra.resources import (
    Resources,
    parse_disk_size,
    parse_infra,
    parse_memory,
    resources_from_config,
)
from skyterra.task import GitSource, Task, load_yaml_text, parse_resources_section


@pytest.mark.parametrize("value, gigabytes", [
    (256, 256), ("256", 256), ("256GB", 256), ("256 gb", 256), ("1TB", 1024),
    ("1.5TB", 1536), ("20480MB", 20), ("2000MB", 10 - 8), ("64GiB", 64)])
def test_disk_size_units_floor_to_whole_gigabytes(value, gigabytes):
    if gigabytes < 10:
        with pytest.raises(TaskError, match="10 to 65536"):
            parse_disk_size(value)
    else:
        assert parse_disk_size(value) == gigabytes


@pytest.mark.parametrize("value", ["big", "256+", True, "-5GB", 1.5e9, "1PB", "1" + "0" * 400])
def test_disk_size_that_is_not_a_size_is_refused(value):
    with pytest.raises(TaskError, match="disk_size"):
        parse_disk_size(value)


@pytest.mark.parametrize("value, spec", [
    ("64GB", "64"), ("1TB+", "1024+"), ("1024MB", "1"), (32, "32"), ("32+", "32+")])
def test_memory_units_are_gigabytes(value, spec):
    assert parse_memory(value) == spec


def test_infra_wildcards_mean_any():
    assert parse_infra("aws/*/us-east-1a") == ("aws", None, "us-east-1a")
    assert parse_infra("*/us-east-1") == (None, "us-east-1", None)
    assert Resources(infra="gcp/*").cloud == "gcp"


def test_image_id_map_pins_each_choice_to_its_region():
    resources = resources_from_config({"accelerators": "A10G", "image_id": {
        "us-west-2": "ami-2", "eu-west-1": "ami-1"}})
    choices, ordered = resources.choices()
    assert [(r.region, r.image_id) for r in choices] == [("us-west-2", "ami-2"),
                                                         ("eu-west-1", "ami-1")]
    assert not ordered
    assert resources_from_config({"region": "eu-west-1", "image_id": {
        "eu-west-1": "ami-1"}}).image_id == "ami-1"
    with pytest.raises(TaskError, match="names images only for us-west-2"):
        resources_from_config({"region": "eu-west-1", "image_id": {"us-west-2": "ami-2"}})


def test_skypilot_image_tags_mean_the_default_image_and_docker_images_are_kept():
    assert Resources(image_id="skypilot:gpu-ubuntu-2204").image_id is None
    assert Resources(image_id="docker:ubuntu:22.04").image_id == "docker:ubuntu:22.04"
    by_region = Resources(image_id={"us-east-1": "docker:ubuntu:22.04"}).image_id
    assert by_region == {"us-east-1": "docker:ubuntu:22.04"}


def test_tpus_are_refused_by_name():
    with pytest.raises(NotSupportedError, match="TPUs"):
        Resources(accelerators="tpu-v4-8")


def test_a_choice_that_names_a_place_replaces_the_base_place():
    choices = parse_resources_section({"cloud": "aws", "region": "us-east-1",
                                       "accelerators": "L4", "any_of": [
                                           {"infra": "gcp/us-central1"}, {"zone": "us-east-1b"}]})
    assert [(r.cloud, r.region, r.zone, r.accelerator) for r in choices] == [
        ("gcp", "us-central1", None, ("L4", 1)), (None, None, "us-east-1b", ("L4", 1))]


def test_ignored_fields_become_warnings_that_name_them():
    task = Task.from_yaml_config({"api_server_access": True, "run": "x",
                                  "resources": {"ephemeral_storage": 50},
                                  "config": {"kubernetes": {"provision_timeout": 9}}})
    assert task.warnings == [
        "'api_server_access' is ignored: it only matters to a SkyPilot API server.",
        ("config.kubernetes is ignored: it only configures Kubernetes, which skyterra does "
         "not use."),
        "resources.ephemeral_storage is ignored: it only has an effect on Kubernetes pods."]


@pytest.mark.parametrize("config, field", [
    ({"config": {"nvidia_gpus": {"disable_ecc": True}}}, "config.nvidia_gpus"),
    ({"config": {"kubernets": {}}}, "config.kubernets"),
    ({"config": "text"}, "config"),
    ({"experimental": {"other": 1}}, "experimental.other"),
    ({"volumes": {"/mnt": "v"}}, "volumes"),
    ({"pool": {"workers": 2}}, "pool")])
def test_config_and_refused_sections_name_the_field(config, field):
    with pytest.raises(TaskError) as info:
        Task.from_yaml_config({"run": "x", **config})
    assert f"field '{field}'" in str(info.value)


def test_git_workdir_clone_script_quotes_every_value(tmp_path):
    hostile = f"file://{tmp_path}/a b;$(touch {tmp_path}/pwned).git"
    source = GitSource(hostile, "main")
    script = source.clone_script("sky_workdir")
    assert shlex.quote(hostile) in script
    subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, check=False)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("workdir, field", [
    ({"url": "--upload-pack=evil"}, "workdir.url"), ({"ref": "main"}, "workdir.url"),
    ({"url": "https://x/y.git", "ref": "-b"}, "workdir.ref"),
    ({"url": "https://x/y.git", "branch": "main"}, "workdir.branch")])
def test_bad_git_workdirs_are_refused(workdir, field):
    with pytest.raises(TaskError, match=f"field '{field}'"):
        Task(run="x", workdir=workdir)


def test_a_git_workdir_round_trips_through_the_record():
    task = Task(run="x", workdir={"url": "https://x/y.git", "ref": "v1"})
    assert task.workdir is None and task.workdir_git == GitSource("https://x/y.git", "v1")
    again = Task.from_yaml_config(task.to_yaml_config())
    assert again.workdir_git == task.workdir_git


def test_a_multi_document_file_is_a_dag_and_task_from_yaml_says_so(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\n---\nrun: one\n---\n---\nrun: two\n")
    dag = Dag.from_yaml(path)
    assert dag.name == "p" and [t.run for t in dag.tasks] == ["one", "two"]
    with pytest.raises(TaskError, match="3 YAML documents"):
        Task.from_yaml(path)  # header + two tasks (the empty document is dropped)
    assert load_yaml_text("run: x\n", "t") == {"run": "x"}


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("name: p\nexecution: serial\n---\n", "no task after it"),
    ("name: p\nexecution: sideways\n---\nrun: x\n", "serial or parallel"),
    ("name: p\nprimary_tasks: [a]\n---\nrun: x\n", "job group"),
    ("name: p\ndependencies: [a]\n---\nname: a\nrun: x\n", "expected a mapping"),
    ("name: p\ndependencies: {a: [c]}\n---\nname: a\nrun: x\n---\nname: b\nrun: y\n",
     r"'a': \['c'\] names no task of this file \(tasks: a, b\)"),
    ("name: p\ndepends_on: {a: b}\n---\nname: a\nrun: x\n---\nrun: y\n",
     "every task needs a `name:`"),
    (("name: p\nexecution: parallel\ndependencies: {a: b}\n---\nname: a\nrun: x\n---\n"
      "name: b\nrun: y\n"), "a job group .* runs all its tasks at once")])
def test_bad_pipeline_headers(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(TaskError, match=message):
        Dag.from_yaml(path)


def test_header_dependencies_order_the_tasks_ties_in_file_order(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndepends_on:\n  c: [b]\n  b: a\n---\nname: c\nrun: c\n---\n"
                    "name: d\nrun: d\n---\nname: b\nrun: b\n---\nname: a\nrun: a\n")
    assert [t.name for t in Dag.from_yaml(path).tasks] == ["d", "a", "b", "c"]


def test_tasks_with_equal_resources_share_a_cluster():
    one = Task(run="a", resources=Resources(cloud="aws", accelerators="L4"))
    two = Task(run="b", resources=Resources(cloud="aws", accelerators="L4"))
    big = Task(run="c", num_nodes=2, resources=Resources(cloud="aws", accelerators="L4"))
    dag = Dag([one, two, big, one])
    assert dag.cluster_names("c") == ["c", "c", "c-2", "c-3"]


def test_a_file_for_another_cloud_says_how_to_run_it_here():
    with pytest.raises(NotSupportedError, match=r"'kubernetes' is not supported.*pass --cloud "
                       "CLOUD: it replaces the file's cloud"):
        Task.from_yaml_config({"resources": {"cloud": "kubernetes"}, "run": "x"})


@pytest.mark.parametrize("resources, replaced", [
    ({"cloud": "kubernetes", "cpus": 2}, "cloud: kubernetes"),
    ({"infra": "k8s/my-context", "cpus": 2}, "infra: k8s/my-context"),
    ({"cloud": "lambda", "region": "us-east-1", "cpus": 2}, "cloud: lambda, region: us-east-1")])
def test_cloud_override_replaces_a_cloud_we_do_not_reach_and_its_places(resources, replaced):
    task = Task.from_yaml_config({"resources": resources, "run": "x"}, cloud_override="gcp")
    assert [(r.cloud, r.region, r.cpus) for r in task.resources] == [("gcp", None, "2")]
    assert f"resources: --cloud gcp replaces {replaced}." in task.warnings


def test_cloud_override_in_any_of_replaces_only_the_other_clouds_choices():
    task = Task.from_yaml_config({"resources": {"any_of": [
        {"infra": "k8s", "accelerators": "L4"}, {"cloud": "gcp", "region": "us-east4"}]},
        "run": "x"}, cloud_override="gcp")
    assert [(r.cloud, r.region) for r in task.resources] == [
        ("gcp", None), ("gcp", "us-east4")]
    assert task.warnings == ["resources.any_of[0]: --cloud gcp replaces infra: k8s."]


def test_elastic_node_sets_are_refused_by_name():
    with pytest.raises(NotSupportedError, match="DYNAMIC_NODE_SET .* is not supported"):
        Task.from_yaml_config({"resources": {"job_recovery": {
            "strategy": "dynamic_node_set", "min_nodes": 3}}, "run": "x"})


@pytest.mark.parametrize("value, minutes", [("1w", 10080), ("2D", 2880), ("90", 90), (45, 45)])
def test_autostop_durations_take_skypilots_units(value, minutes):
    task = Task.from_yaml_config({"resources": {"autostop": value}, "run": "x"})
    assert task.resources[0].autostop["idle_minutes"] == minutes


@pytest.mark.parametrize("value", ["none", "NONE", {"strategy": "none", "max_restarts_on_errors": 3}])
def test_job_recovery_none_means_not_set(value):
    task = Task.from_yaml_config({"resources": {"job_recovery": value}, "run": "x"})
    assert task.resources[0].job_recovery is None


def test_docker_run_options_are_words_for_the_container_and_round_trip():
    config = {"resources": {"image_id": "docker:ubuntu:22.04"}, "run": "x",
              "config": {"docker": {"run_options": ["--shm-size=16g", "-e 'A=b c'"]}}}
    task = Task.from_yaml_config(config)
    assert task.container_run_options == ("--shm-size=16g", "-e", "A=b c")
    assert task.warnings == []
    again = Task.from_yaml_config(task.to_yaml_config())
    assert again.container_run_options == task.container_run_options


@pytest.mark.parametrize("run_options, message", [
    ("--network bridge", "--network is set by skyterra"),
    (["--name=x"], "--name is set by skyterra"),
    ([3], "a string or a list of strings"),
    ("-e 'unclosed", "cannot split")])
def test_docker_run_options_that_would_break_the_container_are_refused(run_options, message):
    with pytest.raises(TaskError, match=message):
        Task.from_yaml_config({"resources": {"image_id": "docker:ubuntu"}, "run": "x",
                               "config": {"docker": {"run_options": run_options}}})


# --- forms found in the second public sample (bench/RESULTS.md, sample2) ---------------
def test_image_id_docker_key_runs_that_container_in_each_named_region():
    """SkyPilot's `image_id: {<region>: skypilot:<tag>, docker: <image>}`: the container on
    our default machine image, still pinned to the named regions."""
    resources = resources_from_config({"image_id": {
        "us-east-1": "skypilot:cpu-ubuntu-2004", "docker": "ubuntu:22.04"}})
    choices, _ = resources.choices()
    assert [(r.region, r.image_id) for r in choices] == [("us-east-1", "docker:ubuntu:22.04")]
    assert resources_from_config({"image_id": {"docker": "docker:ubuntu:22.04"}}).image_id == (
        "docker:ubuntu:22.04")


def test_image_id_docker_key_next_to_a_custom_machine_image_is_refused():
    with pytest.raises(NotSupportedError, match="and a container") as info:
        resources_from_config({"image_id": {"us-west-2": "ami-0abc", "docker": "ubuntu"}})
    assert info.value.field == "resources.image_id.us-west-2"


@pytest.mark.parametrize("value", [
    "ghcr.io/org/model@sha256:" + "a" * 64,
    {"ref": "ghcr.io/org/model@sha256:" + "a" * 64, "distribution": "direct"},
    "docker:nvcr.io/nvidia/pytorch:24.05-py3"])
def test_container_image_is_image_id_docker(value):
    resources = resources_from_config({"container_image": value})
    reference = value["ref"] if isinstance(value, dict) else value.removeprefix("docker:")
    assert resources.image_id == "docker:" + reference


def test_container_image_by_release_only_is_refused_and_distribution_is_noted():
    with pytest.raises(NotSupportedError, match="ref:"):
        resources_from_config({"container_image": {"release": "prod-2026-07"}})
    warnings: list[str] = []
    parse_resources_section({"container_image": {"ref": "ubuntu:22.04", "release": "r1"}},
                            warnings)
    assert warnings == [("resources.container_image.release is ignored: it only means "
                         "something to SkyPilot's image catalog; the nodes pull `ref` from "
                         "its registry.")]


def test_config_gcp_keys_that_only_tune_provisioning_are_noted_others_refused():
    task = Task.from_yaml_config({"run": "x", "config": {"gcp": {
        "managed_instance_group": {"run_duration": 60}, "enable_gpu_direct": True}}})
    assert [w.split(" is ignored")[0] for w in task.warnings] == [
        "config.gcp.managed_instance_group", "config.gcp.enable_gpu_direct"]
    with pytest.raises(NotSupportedError, match="not applied") as info:
        Task.from_yaml_config({"run": "x", "config": {"gcp": {
            "enable_gpu_direct": True, "use_internal_ips": True}}})
    assert info.value.field == "config.gcp.use_internal_ips"


def test_bucket_tuning_keys_are_noted_once_even_after_env_updates():
    task = Task.from_yaml_config({"run": "x", "envs": {"B": "lab-bucket"}, "file_mounts": {
        "/ckpt": {"name": "${B}", "mode": "MOUNT_CACHED", "type": "DATASET_RO",
                  "config": {"mount": {"read_only": True}}, "force_managed": True}}})
    task.update_envs({"B": "other-bucket"})
    assert sorted(w.split(" ")[0] for w in task.warnings) == [
        "file_mounts./ckpt.config", "file_mounts./ckpt.force_managed",
        "file_mounts./ckpt.type", "file_mounts./ckpt:"]
    assert task.storage_mounts[0].ref.bucket == "other-bucket"


def test_several_accelerators_in_one_string_get_the_list_spelling():
    with pytest.raises(TaskError, match=r"names several accelerators.*\[A100:1, H100:1\]"):
        resources_from_config({"accelerators": "A100:1 A100-80GB:1 H100:1"})
    assert resources_from_config({"accelerators": "A100-80GB:8"}).accelerator == ("A100-80GB", 8)


def test_label_keys_follow_the_named_clouds_tag_rules():
    tags = {"Owner": "alice", "team/project": "vision", "Cost Center": "x"}
    assert resources_from_config({"cloud": "aws", "labels": tags}).labels == tags
    azure_tags = {"Owner": "alice", "Cost Center": "x", "a:b": "c"}
    assert resources_from_config({"cloud": "azure", "labels": azure_tags}).labels == azure_tags
    for cloud, key in (("aws", "AWS:reserved"), ("azure", "a/b"), ("gcp", "Owner"),
                       (None, "Owner")):
        with pytest.raises(TaskError, match="label key") as info:
            resources_from_config({"cloud": cloud, "labels": {key: "v"}})
        assert info.value.field == f"resources.labels.{key}"


def test_a_bucket_name_left_empty_string_is_the_placeholder_a_launch_refuses():
    task = Task.from_yaml_config({"run": "x", "envs": {"B": ""}, "file_mounts": {
        "/out": {"name": "${B}", "mode": "MOUNT"}, "/o2": {"name": "  "}}})
    assert [m.field for m in task.incomplete] == ["file_mounts./out", "file_mounts./o2"]
    task.update_envs({"B": "lab-ckpts"})
    assert [m.ref.bucket for m in task.storage_mounts] == ["lab-ckpts"]


def test_a_one_item_source_list_is_that_source():
    task = Task.from_yaml_config({"run": "x", "file_mounts": {
        "/d": {"name": "lab-bkt", "source": ["./data"], "store": "s3"}}})
    assert task.storage_mounts[0].source == "./data"
    with pytest.raises(NotSupportedError, match="list of local folders"):
        Task.from_yaml_config({"run": "x", "file_mounts": {
            "/d": {"name": "lab-bkt", "source": ["./a", "./b"]}}})


def test_job_recovery_without_a_strategy_survives_the_record_round_trip():
    """The record writes strategy: null; that is "not set", not SkyPilot's `none`."""
    task = Task.from_yaml_config({"resources": {"job_recovery": {
        "max_restarts_on_errors": 2, "recover_on_exit_codes": [33]}}, "run": "x"})
    again = Task.from_yaml_config(task.to_yaml_config())
    assert again.resources[0].job_recovery == {
        "strategy": None, "max_restarts_on_errors": 2, "recover_on_exit_codes": [33]}
