"""Deployments for tests that render a module directly (no cluster dir, no launch).

`deployment_for` builds through the same `skyterra.deployment.build` a launch
uses, from a config mapping given here instead of ~/.skyterra/config.yaml.
`options` takes the `provision:` keys of the skyterra config plus two
shortcuts: `ssh_cidrs` (the config's top-level key) and `aws_endpoint_url`
(the config's `aws.endpoint_url`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from skyterra import deployment
from skyterra.catalog import Candidate
from skyterra.task import Task

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAA skyterra"


def matching_resources(task: Task, candidate: Candidate):
    """The task's Resources a hand-made candidate stands for (the optimizer sets it)."""
    for resources in task.resources:
        accel = resources.accelerator
        if ((accel[0] if accel else None) == candidate.accelerator
                and resources.cloud in (None, candidate.cloud)
                and resources.instance_type in (None, candidate.instance_type)):
            return resources
    return task.resources[0]


def settings_from(options: dict[str, Any]) -> dict[str, Any]:
    options = dict(options)
    settings: dict[str, Any] = {}
    if "ssh_cidrs" in options:
        settings["ssh_cidrs"] = options.pop("ssh_cidrs")
    if "aws_endpoint_url" in options:
        settings["aws"] = {"endpoint_url": options.pop("aws_endpoint_url")}
    settings["provision"] = options
    return settings


def deployment_for(task: Task, candidate: Candidate, *, directory: Path = Path("/nonexistent/c"),
                   name: str = "mingpt", public_key: str = KEY,
                   private_key_path: Path = Path("/nonexistent/c/key"),
                   options: dict[str, Any] | None = None, stored: dict[str, Any] | None = None,
                   root: bool = True) -> deployment.Deployment:
    candidate = dataclasses.replace(candidate, num_nodes=task.num_nodes,
                                    resources=candidate.resources
                                    or matching_resources(task, candidate))
    return deployment.build(task, candidate, name=name, directory=directory,
                            public_key=public_key, private_key_path=private_key_path,
                            stored=stored, settings=settings_from(options or {}), root=root)
