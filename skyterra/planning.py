"""Deciding where a task would run, and rendering it, without creating anything.

The half of a launch that needs no SSH, no Terraform run and no job machinery:
cluster names, the clouds to consider, the ranked candidates and `dryrun`.
Kept apart from launcher.py so that `skyterra launch --dryrun` imports only
what it uses (no executor, jobs or Terraform adapter) and starts fast.
"""

from __future__ import annotations

import dataclasses
import getpass
import re
import secrets as _secrets
from collections.abc import Callable
from pathlib import Path

from skyterra import config, deployment, state
from skyterra.catalog import Candidate
from skyterra.clouds import all_clouds, get_cloud
from skyterra.errors import TaskError
from skyterra.optimizer import optimize
from skyterra.renderer import render
from skyterra.task import Task

Output = Callable[[str], None]
# The public key a dry run renders with (nothing is created, so no key is made).
DRYRUN_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDRYRUNLRVlSRU5ERVJFRE9OTFlGT1JEUllSVU4 "
                     "skyterra-dryrun")


@dataclasses.dataclass
class LaunchResult:
    """What a launch did: the cluster, the job it started, where it went and why."""

    cluster_name: str
    job_id: int | None
    candidate: Candidate | None
    candidates: list[Candidate]
    exit_code: int | None = None
    rendered_dir: Path | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def default_cluster_name() -> str:
    """SkyPilot's shape, sky-<4 hex>-<user>: valid on every cloud."""
    user = re.sub(r"[^a-z0-9]", "", getpass.getuser().lower())[:10] or "user"
    return f"sky-{_secrets.token_hex(2)}-{user}"


def clouds_for(task: Task, clouds: list[str] | None, dry: bool = False) -> list[str]:
    """Clouds to consider: explicit ones, the task's own, the configured ones, else those
    with credentials (the local cloud only when asked for). A dry run creates nothing, so
    with no credentials at all it considers every cloud (`dryrun` says so in its notes)."""
    if clouds:
        return clouds
    named = sorted({r.cloud for r in task.resources if r.cloud})
    if named:
        return named
    enabled = config.enabled_clouds()
    if enabled:
        return enabled
    auto = [c for c in all_clouds() if c.auto_enabled]
    found = [c.name for c in auto
             if (c.has_local_credentials() if dry else c.check_credentials().ok)]
    if not found and dry:
        return [c.name for c in auto]
    if not found:
        raise TaskError("no cloud has credentials here (`skyterra check` says why). Use "
                        "`--cloud local` to run on this machine, or set up AWS, GCP or Azure "
                        "credentials.", field="resources.cloud")
    return found


def plan_candidates(task: Task, clouds: list[str] | None = None,
                    dry: bool = False) -> list[Candidate]:
    return optimize(task, [get_cloud(name) for name in clouds_for(task, clouds, dry)])


def dryrun(task: Task, cluster_name: str | None = None, clouds: list[str] | None = None,
           out_dir: Path | None = None) -> LaunchResult:
    """Everything a launch checks before it creates anything, and the module it would
    apply; no network, no key, nothing created. The SSH ingress is left to the module's
    variable ("your address, detected at launch")."""
    name = state.check_cluster_name(default_cluster_name() if cluster_name is None else
                                    cluster_name)
    blockers = launch_blockers(task)
    if any(r.autostop for r in task.resources):  # as a launch would: before anything
        clouds = clouds_with_autostop(task, clouds, dry=True)
    candidates = plan_candidates(task, clouds, dry=True)
    best = candidates[0]
    directory = Path(out_dir) if out_dir else state.ensure_home().parent / "dryrun" / name
    directory.mkdir(parents=True, exist_ok=True)
    chosen = deployment.build(task, best, name=name, directory=directory,
                              public_key=f"{DRYRUN_PUBLIC_KEY}-{name}",
                              private_key_path=directory / "ssh" / "id_ed25519")
    render(chosen)
    notes = [*task.warnings, *chosen.cloud.warnings(chosen), *blockers,
             *store_notes(task, chosen.cloud.name)]
    if not chosen.cloud.has_local_credentials():
        notes.append(f"no {chosen.cloud.name} credentials here: the dry run chose among all "
                     "clouds; a launch needs credentials (`skyterra check` says which).")
    if chosen.cloud.needs_ssh_cidrs and chosen.ssh_cidrs is None:
        notes.append("SSH ingress: your address, detected at launch (set ssh_cidrs in the "
                     "skyterra config to choose).")
    return LaunchResult(name, None, best, candidates, rendered_dir=directory, notes=notes)


def launch_blockers(task: Task) -> list[str]:
    """What a launch checks in the task before it creates anything, as a dry run sees it.

    Local files are part of the task: a missing workdir, file_mounts source or bucket
    `source:` is refused here as at launch (issue 11: a dry run catches what a launch
    would). Values of required envs/secrets (`KEY: null`) are the user's to give at launch
    time (`--env KEY=...`, like credentials), so a dry run plans without them and lists
    each as a note with the error the launch would stop with."""
    task.check_local_paths()
    return [f"a launch refuses until this is fixed: {error.message}"
            for error in task.missing_required_envs()]


def store_notes(task: Task, cloud: str) -> list[str]:
    """Buckets without `store:` land on the store of the chosen cloud (SkyPilot's rule)."""
    from skyterra.clouds.stores import store_of_cloud
    from skyterra.storage import STORE_OF_CLOUD

    store = store_of_cloud(cloud)
    return [f"{m.field}: no store given, so bucket {m.ref.bucket!r} is on {store or 'none'} "
            f"(the store of {cloud})." for m in task.storage_mounts
            if m.ref.store == STORE_OF_CLOUD]


def clouds_with_autostop(task: Task, clouds: list[str] | None,
                         dry: bool = False) -> list[str]:
    """A task that asks for autostop goes only where the watcher can be installed, checked
    before anything is created (not after the nodes are up)."""
    from skyterra.errors import NotSupportedError

    wanted = clouds_for(task, clouds, dry)
    usable = [name for name in wanted if get_cloud(name).supports_autostop]
    if not usable:
        raise NotSupportedError(f"autostop is not available on {', '.join(wanted)} yet. "
                                "Remove resources.autostop / -i, and stop the cluster "
                                "yourself with `skyterra stop NAME`.",
                                source=task.source, field="resources.autostop")
    return usable
