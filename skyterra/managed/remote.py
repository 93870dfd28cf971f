"""A controller on a node of its own: `skyterra jobs launch --controller CLOUD`.

The launching machine brings up a 1-node cluster on CLOUD through the ordinary
launch path (the cheapest on-demand CPU node of the catalog with 2+ vCPUs and
4+ GiB; with a shared Terraform backend its state is in that backend), ships
the job there (its task with the workdir and file_mounts copied next to it,
secrets in an owner-only file, the backend setting, skyterra's own source when
it runs from a checkout) and runs bootstrap.py's setup (install skyterra, hand
over the backend) and run (`python -m skyterra.managed.remote serve ID`) as
that cluster's job. The controller node keeps the job's state in its own
~/.skyterra, writes it to the shared backend too (board.py), and launches,
watches and recovers the job's cluster from there; the launching process may
go away.

This machine keeps a local copy of the record: `refresh` asks the controller
node (over SSH) for the job's record, events and new log lines, restarting a
controller that died there; once the job has ended, the controller cluster
is destroyed, unless the job was launched with keep_controller (SkyPilot keeps
its one long-lived controller for all jobs; ours is one VM per job, which
would only cost money once its job is over).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from skyterra import config, executor, launcher, state
from skyterra.cluster import Cluster
from skyterra.errors import SkyterraError
from skyterra.managed import board, bootstrap
from skyterra.managed.daemon import ensure_controller
from skyterra.managed.store import (
    STARTING,
    TERMINAL,
    JobDir,
    ManagedJob,
    cluster_name_for,
    new_job_dir,
)
from skyterra.resources import Resources
from skyterra.submission import submit
from skyterra.task import CLUSTER_KEY_SOURCE, Task

Output = Callable[[str], None]
PASSED_ENV = ("SKYTERRA_MANAGED_POLL", "SKYTERRA_MANAGED_SETTLE",
              "SKYTERRA_MANAGED_UNREACHABLE_GRACE", "SKYTERRA_SSH_TIMEOUT")


def _stage(task: Task, job: ManagedJob, secrets: dict[str, str], directory: Path) -> None:
    """The controller's workdir: job.json, secrets.json, the task's workdir and mounts,
    with the task's paths rewritten relative to it (it becomes ~/sky_workdir there)."""
    config = dict(job.task)
    if task.workdir is not None:
        shutil.copytree(task.workdir, directory / "workdir", symlinks=True)
        config["workdir"] = "workdir"
    # SkyPilot's cluster key stays a reference: the job's cluster supplies its own key.
    mounts = {remote: CLUSTER_KEY_SOURCE for remote in task.mounts_cluster_key()}
    copied = {r: p for r, p in task.resolved_file_mounts().items() if r not in mounts}
    for index, (remote, local) in enumerate(sorted(copied.items())):
        target = directory / "mounts" / str(index)
        target.parent.mkdir(parents=True, exist_ok=True)
        if local.is_dir():
            shutil.copytree(local, target, symlinks=True)
        else:
            shutil.copy2(local, target)
        mounts[remote] = f"mounts/{index}"
    if mounts:
        config["file_mounts"] = mounts
    staged = ManagedJob.from_json({**job.__dict__, "task": config, "controller": "",
                                   "hosted_on": job.controller})
    (directory / "job.json").write_text(json.dumps(staged.__dict__, sort_keys=True))
    fd = os.open(directory / "secrets.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(secrets, handle)


CONTROLLER_CPUS, CONTROLLER_MEMORY = "2+", "4+"   # the catalog's cheapest such (c6a.large)


def controller_task(staging: Path, job: ManagedJob, cloud: str, requirement: str) -> Task:
    """The controller node's own task: a small on-demand CPU node, bootstrap.py's scripts,
    and the credentials the controller needs to launch the job's cluster (as secrets)."""
    from skyterra.clouds import get_cloud, names

    envs = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    secrets: dict[str, str] = {}
    for name in names():
        secrets.update(get_cloud(name).controller_credentials())
    return Task(name="skyterra-jobs-controller", workdir=str(staging), envs=envs,
                secrets={k: v for k, v in secrets.items() if k not in envs},
                setup=bootstrap.setup_script(requirement), run=bootstrap.run_script(job.job_id),
                resources=Resources(cloud=cloud, cpus=CONTROLLER_CPUS, memory=CONTROLLER_MEMORY,
                                    use_spot=False))


def launch(task: Task, *, name: str | None, clouds: list[str] | None, cloud: str,
           keep_controller: bool = False, progress: Output = print) -> int:
    """Record the job here, bring its controller node up on `cloud`, start it there."""
    task.check_required_envs()
    task.check_local_paths()
    if name is not None:
        task.name = Task(name=name).name
    job_dir = new_job_dir(board=board.board())
    job = ManagedJob(job_id=job_dir.job_id, name=task.name or "", task=task.to_yaml_config(),
                     base_dir="", clouds=clouds,
                     cluster_name=cluster_name_for(task.name, job_dir.job_id),
                     keep_controller=keep_controller)
    job.task_id = (f"sky-managed-{time.strftime('%Y-%m-%d-%H-%M-%S')}_{job.cluster_name}_"
                   f"{job.job_id}")
    job.controller = f"sky-jobs-controller-{job.job_id}-{job.cluster_name.rsplit('-', 1)[1]}"
    job_dir.save(job)
    job_dir.event(STARTING, f"managed job {job.job_id} submitted; its controller runs on "
                  f"cluster {job.controller} ({cloud})")
    secrets = {k: v for k, v in task.secrets.items() if v is not None}
    with tempfile.TemporaryDirectory(prefix="skyterra-controller-") as staging:
        _stage(task, job, secrets, Path(staging))
        requirement = bootstrap.stage_install(Path(staging))
        bootstrap.stage_config(Path(staging), config.load())
        controller = controller_task(Path(staging), job, cloud, requirement)
        try:
            with launcher.bring_up(controller, job.controller, clouds=[cloud],
                                   progress=progress) as up:
                submit(up.cluster, up.cluster_dir, controller, progress, run_setup=True,
                       progress=progress)
        except SkyterraError as error:
            job_dir.update(status="FAILED", failure=f"the controller could not start: {error}",
                           ended_at=time.time())
            raise
    progress(f"managed job {job.job_id} submitted: its controller runs on cluster "
             f"{job.controller}")
    return job.job_id


# --- on the controller node ----------------------------------------------------------------
def serve(job_id: int) -> int:
    """Create the job from ~/sky_workdir (first time) and run its controller in the foreground."""
    from skyterra.managed.controller import Controller

    job_dir = JobDir(job_id, board=board.board())
    if not job_dir.exists():
        staged = Path.cwd()
        job = ManagedJob.from_json(json.loads((staged / "job.json").read_text()))
        job.base_dir = str(staged)
        job_dir.save(job)
        job_dir.save_secrets(json.loads((staged / "secrets.json").read_text()))
        (staged / "secrets.json").unlink()
        job_dir.event("CONTROLLER", f"controller node {os.uname().nodename} took the job")
    return Controller(job_dir).run()


def show(job_id: int, log_offset: int) -> int:
    """Print {record, events, log} for the client; restart a controller that died here."""
    job_dir = JobDir(job_id)
    if not job_dir.exists():
        print(json.dumps({"record": None}))
        return 0
    ensure_controller(job_dir)
    log = b""
    if job_dir.run_log.exists():
        with open(job_dir.run_log, "rb") as handle:
            handle.seek(log_offset)
            log = handle.read()
    events = job_dir.events_path.read_text() if job_dir.events_path.exists() else ""
    print(json.dumps({"record": json.loads(job_dir.record_path.read_text()), "events": events,
                      "log": log.decode(errors="replace")}))
    return 0


# --- on the client ---------------------------------------------------------------------
def _controller_cluster(job: ManagedJob) -> Cluster | None:
    cluster_dir = state.ClusterDir(job.controller)
    if not cluster_dir.exists():
        return None
    record = cluster_dir.load()
    if not record.nodes:
        return None
    return Cluster.from_record(record, cluster_dir.known_hosts_path)


def _on_controller(job: ManagedJob, command: str) -> str | None:
    cluster = _controller_cluster(job)
    if cluster is None:
        return None
    shell = executor.NodeShell(cluster, cluster.head)
    try:
        result = shell.run(command)
    except Exception:  # noqa: BLE001 - an unreachable controller: keep the last copy
        return None
    finally:
        shell.close()
    return result.stdout if result.ok else None


def refresh(job_dir: JobDir) -> None:
    """Mirror the remote record, events and new log lines (from the shared backend when the
    controller node no longer answers); destroy the controller cluster once the job has
    ended. Nothing for a job whose controller is a local process."""
    job = job_dir.load()
    if not job.controller:
        return
    if job.status not in TERMINAL:
        offset_file = job_dir.path / "remote_log_offset"   # bytes of the remote log copied
        offset = int(offset_file.read_text()) if offset_file.exists() else 0
        reply = _on_controller(job, bootstrap.remote_command(f"show {job.job_id} {offset}"))
        data = json.loads(reply) if reply else {}
        if data.get("record"):
            record = ManagedJob.from_json({**data["record"], "controller": job.controller,
                                           "base_dir": job.base_dir})
            job_dir.save(record)
            job_dir.events_path.write_text(data.get("events", ""))
            chunk = data.get("log", "")
            with open(job_dir.run_log, "a") as handle:
                handle.write(chunk)
            offset_file.write_text(str(offset + len(chunk.encode())))
            job = record
        elif reply is None:
            job = _from_board(job_dir, job)
    if job.status in TERMINAL and not job.keep_controller and \
            state.ClusterDir(job.controller).exists():
        from skyterra.managed.controller import teardown_cluster

        teardown_cluster(job.controller, lambda line: None)


def _from_board(job_dir: JobDir, job: ManagedJob) -> ManagedJob:
    """The controller node does not answer (gone, perhaps torn down by a teammate once the
    job ended): take the record, events and log the node last wrote to the shared backend."""
    shared = board.board()
    data = shared and board.reported("read the job", lambda: shared.record(job.job_id))
    if not data:
        return job
    record = ManagedJob.from_json({**data, "controller": job.controller,
                                   "base_dir": job.base_dir})
    job_dir.save(record)
    events = board.reported("read the job's events", lambda: shared.events(job.job_id))
    if events:
        job_dir.events_path.write_text("".join(json.dumps(e, sort_keys=True) + "\n"
                                               for e in events))
    log = board.reported("read the job's log", lambda: shared.log(job.job_id)) or ""
    if len(log.encode()) > (job_dir.run_log.stat().st_size if job_dir.run_log.exists() else 0):
        job_dir.run_log.write_text(log)
    return record


def end_controller_elsewhere(job: ManagedJob, states: set[str]) -> None:
    """A teammate's job ended on a controller node: destroy that node's cluster from here
    (it is in the shared backend: `states`, the cluster names with a state there), unless
    the job keeps it. No-op when it is gone."""
    from skyterra.managed.controller import teardown_cluster
    from skyterra.sharing import fetch_shared

    if job.status not in TERMINAL or job.keep_controller or job.hosted_on not in states:
        return
    with contextlib.suppress(SkyterraError):
        fetch_shared(job.hosted_on)
        if state.ClusterDir(job.hosted_on).exists():
            teardown_cluster(job.hosted_on, lambda line: None)


def cancel(job_dir: JobDir) -> None:
    job = job_dir.load()
    if job.controller:
        _on_controller(job, f'touch "$HOME/{bootstrap.REMOTE_HOME}/managed/{job.job_id}/cancel"')


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "serve" and args[1].isdigit():
        return serve(int(args[1]))
    if len(args) == 3 and args[0] == "show" and args[1].isdigit() and args[2].isdigit():
        return show(int(args[1]), int(args[2]))
    print("usage: python -m skyterra.managed.remote serve JOB_ID | show JOB_ID LOG_OFFSET",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
