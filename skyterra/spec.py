"""Which SkyPilot task fields skyterra honours, ignores with a warning, or refuses.

SkyPilot task files carry fields for backends skyterra does not drive (Kubernetes
pods, SkyPilot's API server and managed-jobs controller). Where a field cannot
change what runs on our VMs it is accepted with a warning that names it; where
it would change the result and we cannot honour it, it is refused with a
one-paragraph message. Nothing is dropped silently.
"""

from __future__ import annotations

import shlex
from typing import Any

from skyterra import clouds
from skyterra.errors import NotSupportedError, TaskError, did_you_mean

# Task keys that skyterra accepts and uses.
USED_TASK_KEYS = ("name", "workdir", "num_nodes", "resources", "envs", "secrets",
                  "file_mounts", "setup", "run", "config", "experimental")
# Task keys accepted with a warning: they only mean something to SkyPilot's own services.
IGNORED_TASK_KEYS = {
    "api_server_access": "only matters to a SkyPilot API server",
    "inputs": "only feeds SkyPilot's data-egress cost estimate",
    "outputs": "only feeds SkyPilot's data-egress cost estimate",
}
REFUSED_TASK_KEYS = {
    "volumes": "volumes (cloud persistent disks or Kubernetes PVCs mounted into the task) "
               "are not supported by skyterra: use file_mounts to copy local data to the "
               "nodes, or keep the data in a bucket and fetch it in setup.",
    "service": "service (SkyServe replicas and a load balancer) is not supported: skyterra "
               "runs training jobs on one cluster; remove the service section.",
    "pool": "pool (a pool of SkyPilot workers) is not supported: skyterra runs one cluster "
            "per task; remove the pool section.",
    "event_callback": "event_callback is not supported; run the command at the end of "
                      "`run` instead.",
}
TASK_KEYS = USED_TASK_KEYS + tuple(IGNORED_TASK_KEYS) + tuple(REFUSED_TASK_KEYS)

# The first document of a multi-document file: a pipeline (or job group) header.
HEADER_KEYS = ("name", "execution", "primary_tasks", "termination_delay",
               "inter_connection", "dependencies", "depends_on")

# config: sections that only configure backends or services skyterra does not use.
IGNORED_CONFIG_KEYS = {
    "kubernetes": "Kubernetes", "ssh": "SSH node pools", "slurm": "Slurm",
    "jobs": "the managed-jobs controller",
    "serve": "SkyServe", "api_server": "the API server", "oci": "OCI", "nebius": "Nebius",
    "lambda": "Lambda", "runpod": "RunPod", "vast": "Vast", "ibm": "IBM", "rbac": "the API "
    "server", "workspaces": "the API server", "admin_policy": "the API server",
    "logs": "SkyPilot's log store", "daemons": "the API server", "db": "the API server",
}
# config.<cloud> sections (VPC, IAM profile, service account, internal IPs…) would change
# our VMs; skyterra takes those settings from its own config (`provision:` keys).
REFUSED_CONFIG_KEYS = {
    **{name: f"config.{name} is not applied by skyterra: network, identity and image "
             "settings of a cloud come from the `provision:` keys of the skyterra config "
             "(see README, 'Configuration'); set them there and remove this section."
       for name in clouds.names()},
    "nvidia_gpus": "config.nvidia_gpus (e.g. disable_ecc) is not applied by skyterra; run "
                   "the change in setup (`sudo nvidia-smi -e 0` needs a reboot) or remove it.",
    "allowed_clouds": "config.allowed_clouds is not read from a task; pass --cloud, or set "
                      "`clouds:` in the skyterra config.",
    "provision": "config.provision is not applied by skyterra; remove it.",
    "hooks": "config.hooks (scripts run when the cluster stops, is preempted or is torn "
             "down) is not supported by skyterra; put what must happen at the end of the "
             "job at the end of `run`, and keep checkpoints in a bucket mount.",
}


def ignored_task_keys(config: dict) -> list[str]:
    return [f"'{key}' is ignored: it {why}." for key, why in IGNORED_TASK_KEYS.items()
            if key in config]


def check_task_keys(config: dict, source: str | None) -> None:
    """Unknown keys get a did-you-mean; refused ones their one-paragraph reason."""
    for key, value in config.items():
        if key not in TASK_KEYS:
            raise TaskError(f"unknown key '{key}'.{did_you_mean(str(key), TASK_KEYS)}",
                            source=source, field=str(key))
        if key in REFUSED_TASK_KEYS and value is not None:
            raise NotSupportedError(REFUSED_TASK_KEYS[key], source=source, field=str(key))


def config_warnings(config: dict, source: str | None) -> list[str]:
    """`config:` (and the older `experimental.config_overrides`) → warnings; raises for
    sections that would change our VMs but are not applied."""
    sections: dict[str, Any] = {}
    for outer in ("config", "experimental"):
        value = config.get(outer)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise TaskError(f"expected a mapping, got {type(value).__name__}.", source=source,
                            field=outer)
        if outer == "experimental":
            unknown = set(value) - {"config_overrides"}
            if unknown:
                raise TaskError(f"unknown key '{min(unknown)}'; SkyPilot's experimental "
                                "section only has config_overrides.", source=source,
                                field=f"experimental.{min(unknown)}")
            value = value.get("config_overrides") or {}
            if not isinstance(value, dict):
                raise TaskError("expected a mapping.", source=source,
                                field="experimental.config_overrides")
        for key, section in value.items():
            sections[f"{outer}.{key}" if outer == "config" else
                     f"experimental.config_overrides.{key}"] = (key, section)
    warnings = []
    known = tuple(IGNORED_CONFIG_KEYS) + tuple(REFUSED_CONFIG_KEYS) + ("docker",)
    for field, (key, section) in sorted(sections.items()):
        if section is None or key == "docker":   # docker: container_run_options
            continue
        if key in clouds.names() and isinstance(section, dict):
            warnings += _cloud_config_warnings(key, section, field, source)
            continue
        if key in REFUSED_CONFIG_KEYS:
            raise NotSupportedError(REFUSED_CONFIG_KEYS[key], source=source, field=field)
        if key not in IGNORED_CONFIG_KEYS:
            raise TaskError(f"unknown config section '{key}'.{did_you_mean(str(key), known)}",
                            source=source, field=field)
        warnings.append(f"{field} is ignored: it only configures {IGNORED_CONFIG_KEYS[key]}, "
                        "which skyterra does not use.")
    return warnings


def _cloud_config_warnings(cloud: str, section: dict, field: str,
                           source: str | None) -> list[str]:
    """config.<cloud>: keys the cloud says only tune SkyPilot's provisioning → warnings;
    any other key would change our VMs unseen → the section's refusal, naming that key."""
    ignored = clouds.get_cloud(cloud).task_config_ignored
    for key, value in section.items():
        if key not in ignored and value is not None:
            raise NotSupportedError(REFUSED_CONFIG_KEYS[cloud], source=source,
                                    field=f"{field}.{key}")
    return [f"{field}.{key} is ignored: {ignored[key]}." for key in section
            if section[key] is not None]


# docker run options skyterra sets itself on the task's container (container.py): a
# task's own would break how jobs reach it.
_OWN_RUN_OPTIONS = ("--name", "--network", "--net", "--pid", "--entrypoint", "-d",
                    "--detach", "--rm", "-i", "-t", "-it", "--interactive", "--tty")


def container_run_options(config: dict, source: str | None) -> tuple[str, ...]:
    """`config.docker.run_options` (a string or a list of them, as in SkyPilot) → the
    words added to the task container's `docker/podman run` (container.py quotes each)."""
    options: list[str] = []
    for field, section in (("config.docker", (config.get("config") or {}).get("docker")),
                           ("experimental.config_overrides.docker",
                            ((config.get("experimental") or {}).get("config_overrides")
                             or {}).get("docker"))):
        if section is None:
            continue
        if not isinstance(section, dict) or set(section) - {"run_options"}:
            raise TaskError("expected a mapping with run_options (a string or a list of "
                            "docker run options).", source=source, field=field)
        value = section.get("run_options") or []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TaskError(f"expected a string or a list of strings, got {value!r}.",
                            source=source, field=f"{field}.run_options")
        for item in items:
            try:
                words = shlex.split(item)
            except ValueError as error:
                raise TaskError(f"cannot split {item!r} into words ({error}).", source=source,
                                field=f"{field}.run_options") from None
            own = [w.split("=", 1)[0] for w in words if w.split("=", 1)[0] in _OWN_RUN_OPTIONS]
            if own:
                raise NotSupportedError(f"{own[0]} is set by skyterra on the task's container "
                                        "(jobs run in it with the host's network and "
                                        "processes); remove it.", source=source,
                                        field=f"{field}.run_options")
            options.extend(words)
    return tuple(options)
