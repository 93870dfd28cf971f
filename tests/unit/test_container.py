"""image_id: docker:<image> without nodes: the reference check, what the clouds render,
and the node-side scripts (which the local e2e test runs for real)."""

from __future__ import annotations

import pytest

from skyterra import container
from skyterra.catalog import Candidate
from skyterra.clouds import gcp as gcp_mod
from skyterra.errors import TaskError
from skyterra.resources import machine_image, parse_container_image, registry_of
from skyterra.task import Task
from tests.deployments import deployment_for

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc8Wx0p3yQm0kS8sQ9G4m6n0Yq3cU2u0a3mHq7x1Zx9 t"


@pytest.mark.parametrize("image_id, reference", [
    ("docker:ubuntu:22.04", "ubuntu:22.04"),
    ("docker:nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io/nvidia/pytorch:24.05-py3"),
    ("docker:localhost:5000/team/img", "localhost:5000/team/img"),
    (" docker:user/repo@sha256:" + "a" * 64, "user/repo@sha256:" + "a" * 64),
])
def test_valid_references_parse(image_id, reference):
    assert parse_container_image(image_id) == reference


@pytest.mark.parametrize("image_id", [
    "docker:", "docker:Ubuntu:22.04", "docker:ubuntu:22.04; rm -rf /", "docker:a b",
    "docker:ubuntu:$(id)", "docker:repo@sha256:short",
])
def test_a_malformed_reference_is_one_clear_task_error(image_id):
    with pytest.raises(TaskError) as raised:
        Task.from_yaml_config({"run": "true", "resources": {"image_id": image_id}})
    text = str(raised.value)
    assert "resources.image_id" in text and "not a valid container image reference" in text


def test_registry_and_machine_image():
    assert registry_of("nvcr.io/nvidia/pytorch:1") == "nvcr.io"
    assert registry_of("user/repo") == ""
    assert registry_of("ubuntu") == ""
    assert machine_image("docker:ubuntu") is None
    assert machine_image("ami-0123456789abcdef0") == "ami-0123456789abcdef0"


def _gcp_deployment(image_id: str | None):
    resources = {"accelerators": "L4:1", **({"image_id": image_id} if image_id else {})}
    task = Task.from_yaml_config({"run": "true", "resources": resources})
    candidate = Candidate(cloud="gcp", region="us-central1", zone="us-central1-a",
                          instance_type="g2-standard-8", accelerator="L4", accelerator_count=1,
                          vcpus=8, memory_gib=32, price=1.0)
    return deployment_for(task, candidate, public_key=KEY + "\n",
                          options={"ssh_cidrs": ["203.0.113.7/32"]})


def test_gcp_boot_script_installs_the_runtime_only_with_a_container():
    plain = _gcp_deployment(None)
    boxed = _gcp_deployment("docker:nvcr.io/nvidia/pytorch:24.05-py3")
    assert plain.cloud.tfvars(plain)["startup_script"] == gcp_mod.NODE_SETUP_SCRIPT
    script = boxed.cloud.tfvars(boxed)["startup_script"]
    assert script.startswith(gcp_mod.NODE_SETUP_SCRIPT.rstrip("\n"))
    assert "nvidia-container-toolkit" in script and "systemctl enable --now docker" in script
    assert boxed.cloud.tfvars(boxed)["image"] == gcp_mod.DEFAULT_GPU_IMAGE
    assert container.spec_for(boxed) == container.ContainerSpec(
        "nvcr.io/nvidia/pytorch:24.05-py3", "docker")


def test_the_password_travels_on_stdin_never_in_the_command():
    spec = container.ContainerSpec("registry.example.com/team/img:1")
    login = {"SKYPILOT_DOCKER_USERNAME": "me", "SKYPILOT_DOCKER_PASSWORD": "s3cret-pw",
             "SKYPILOT_DOCKER_SERVER": "registry.example.com"}
    command = container.start_command(spec, ["/data"], login)
    assert "s3cret-pw" not in command
    assert "--password-stdin" in command and "logout" in command
    assert "for m in /data; do" in command


def test_the_job_wrapper_names_variables_never_values():
    script = container.wrap("echo $SECRET", ["SECRET", "SKYPILOT_NODE_RANK"])
    assert "-e SECRET" in script and "-e SKYPILOT_NODE_RANK" in script and "-e HOME" in script
    assert "echo $SECRET" not in script      # the user script travels base64-encoded
    assert "trap 'stop; wait" in script


def test_a_spec_survives_the_record():
    spec = container.ContainerSpec("localhost/x:1", "podman", ("/var/tmp/store",))
    assert container.ContainerSpec.from_record(spec.to_record()) == spec
    assert container.ContainerSpec.from_record({}) is None


@pytest.mark.parametrize("code, words", [
    (container.NO_RUNTIME, "no working container runtime (docker)"),
    (container.NO_IMAGE, "could not pull the container image 'ubuntu:22.04'"),
    (container.NO_LOGIN, "could not log in to the registry"),
    (container.NO_START, "could not start a container from image 'ubuntu:22.04'"),
])
def test_each_failed_step_names_node_image_and_keeps_the_cluster(code, words, tmp_path):
    from skyterra.cluster import Cluster, Node

    nodes = [Node(0, "10.0.0.1", "10.0.0.1"), Node(1, "10.0.0.2", "10.0.0.2")]
    cluster = Cluster("c1", nodes, "ubuntu", tmp_path / "key")
    error = container.start_error(cluster, nodes[1], container.ContainerSpec("ubuntu:22.04"),
                                  code, "some\nruntime output\n")
    text = str(error)
    assert words in text and "worker1 (10.0.0.2) of cluster 'c1'" in text
    assert "ubuntu:22.04" in text and "skyterra destroy c1" in text


def test_azure_boot_script_installs_the_runtime_only_with_a_container():
    from skyterra.clouds import azure as azure_mod

    candidate = Candidate(cloud="azure", region="eastus", zone="1",
                          instance_type="Standard_NC24ads_A100_v4", accelerator="A100-80GB",
                          accelerator_count=1, vcpus=24, memory_gib=220, price=3.7)

    def deploy(image_id):
        resources = {"accelerators": "A100-80GB:1", **({"image_id": image_id} if image_id else {})}
        task = Task.from_yaml_config({"run": "true", "resources": resources})
        return deployment_for(task, candidate, public_key=KEY, options={
            "ssh_cidrs": ["203.0.113.7/32"],
            "azure_subscription_id": "00000000-0000-0000-0000-000000000000"})
    plain, boxed = deploy(None), deploy("docker:nvcr.io/nvidia/pytorch:24.05-py3")
    assert plain.cloud.tfvars(plain)["custom_data"] == azure_mod.NODE_SETUP_SCRIPT
    script = boxed.cloud.tfvars(boxed)["custom_data"]
    assert script.startswith(azure_mod.NODE_SETUP_SCRIPT.rstrip("\n"))
    assert "nvidia-container-toolkit" in script and "systemctl enable --now docker" in script


def test_aws_user_data_gets_the_runtime_only_with_a_container():
    candidate = Candidate(cloud="aws", region="us-east-1", zone="us-east-1a",
                          instance_type="g6.12xlarge", accelerator="L4", accelerator_count=4,
                          vcpus=48, memory_gib=192, price=4.6)

    def deploy(image_id):
        resources = {"accelerators": "L4:4", **({"image_id": image_id} if image_id else {})}
        task = Task.from_yaml_config({"run": "true", "resources": resources})
        return deployment_for(task, candidate, public_key=KEY,
                              options={"ssh_cidrs": ["203.0.113.7/32"]})
    plain, boxed = deploy(None), deploy("docker:ubuntu:22.04")
    assert "container_setup_script" not in plain.cloud.tfvars(plain)
    assert plain.cloud.template_context(plain)["container"] is False
    values = boxed.cloud.tfvars(boxed)
    assert boxed.cloud.template_context(boxed)["container"] is True
    assert values["metadata_hop_limit"] == 2
    assert "nvidia-container-toolkit" in values["container_setup_script"]
