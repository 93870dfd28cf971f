"""The `skyterra` command: parse flags, call skyterra.api, print with rich.

Thin on purpose: everything a command does is available from Python too.
Heavy imports (fabric, boto3, rich tables) happen inside commands so that
`skyterra --help` starts fast. Errors print as one paragraph without a
traceback (--debug shows it) and exit with the error's code (2 for input).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
import time
from pathlib import Path

import click

from skyterra.clouds import names as _cloud_names

_DEBUG = False
_CLOUD_HELP = (f"cloud[/region[/zone]]: {', '.join(_cloud_names())}. Replaces the task's "
               "cloud (also one skyterra does not reach, e.g. kubernetes).")


def _console():
    """Rich console; piped output gets a wide page instead of rich's 80 columns.

    markup=False: table cells hold user strings (task names), shown as they are;
    a name like "[/]" would otherwise be parsed as rich markup and crash.
    """
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, markup=False,
                   width=None if sys.stdout.isatty() else 160)


def _echo(line: str) -> None:
    click.echo(line)


def _progress(line: str) -> None:
    click.echo(click.style("» ", fg="cyan") + line, err=True)


def handles_errors(command):
    """Turn SkyterraError (and Ctrl-C) into a message and an exit code."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from skyterra.errors import SkyterraError

        try:
            return command(*args, **kwargs)
        except SkyterraError as error:
            if _DEBUG:
                raise
            click.echo(click.style("Error: ", fg="red", bold=True) + str(error), err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)
        except OSError as error:
            if _DEBUG or error.errno not in _DISK_ERRORS:
                raise
            where = f" {error.filename}" if error.filename else ""
            click.echo(click.style("Error: ", fg="red", bold=True) +
                       f"cannot write{where}: {error.strerror}. Free disk space or fix the "
                       "permissions (SKYTERRA_HOME chooses where skyterra keeps its files), "
                       "then run the command again; `skyterra status` shows what exists.",
                       err=True)
            sys.exit(2)
    return wrapper


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class _Group(click.Group):
    """Usage errors (bad flags) exit 2 with click's message, as they should."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="skyterra")
def main(debug: bool) -> None:
    """Launch GPU training clusters from SkyPilot task YAML, with Terraform doing the work."""
    global _DEBUG
    _DEBUG = debug


def _parse_env(pairs: tuple[str, ...], flag: str) -> dict[str, str]:
    from skyterra.errors import TaskError

    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key.strip():
            raise TaskError(f"{flag} {pair!r}: the variable name is empty; write {flag} "
                            "KEY=VALUE.", field=flag)
        if not sep:
            if key not in os.environ:
                raise TaskError(f"{flag} {key}: no such variable in your environment; "
                                f"write {flag} {key}=VALUE.", field=flag)
            value = os.environ[key]
        result[key] = value
    return result


def _env_file(path: str | None) -> dict[str, str]:
    from skyterra.errors import TaskError

    if not path:
        return {}
    values = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise TaskError(f"cannot read ({error.strerror}).", source=path,
                        field="--env-file") from None
    except UnicodeDecodeError:
        raise TaskError("is not UTF-8 text; save the env file as UTF-8.", source=path,
                        field="--env-file") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise TaskError(f"line {number}: expected KEY=VALUE.", source=path, field="--env-file")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _load_task(path: str, envs: tuple[str, ...], env_file: str | None,
               secrets: tuple[str, ...] = (), num_nodes: int | None = None,
               cloud: str | None = None, gpus: str | None = None):
    """YAML + overrides: --env beats --env-file beats the YAML."""
    from skyterra.task import Task

    return _override(Task.from_yaml(path, cloud_override=_cloud_name(cloud)), envs, env_file,
                     secrets, num_nodes, cloud, gpus)


def _load_dag(path: str, envs: tuple[str, ...], env_file: str | None,
              secrets: tuple[str, ...] = (), num_nodes: int | None = None,
              cloud: str | None = None, gpus: str | None = None):
    """A task file of one or more tasks (a pipeline), each with the command-line overrides."""
    from skyterra.dag import Dag

    dag = Dag.from_yaml(path, cloud_override=_cloud_name(cloud))
    for task in dag.tasks:
        _override(task, envs, env_file, secrets, num_nodes, cloud, gpus)
    return dag


def _cloud_name(cloud: str | None) -> str | None:
    """The cloud part of --cloud/--infra (checked again, with the rest, by _override)."""
    from skyterra.errors import SkyterraError
    from skyterra.resources import parse_infra

    try:
        return parse_infra(cloud, "--cloud")[0] if cloud else None
    except SkyterraError:
        return None


def _override(task, envs: tuple[str, ...], env_file: str | None, secrets: tuple[str, ...],
              num_nodes: int | None, cloud: str | None, gpus: str | None):
    from skyterra.resources import parse_infra

    overrides = {**_env_file(env_file), **_parse_env(envs, "--env")}
    if overrides:
        task.update_envs(overrides)
    if secrets:
        task.update_secrets(_parse_env(secrets, "--secret"))
    if num_nodes is not None:
        from skyterra.errors import TaskError
        from skyterra.task import MAX_NODES

        if num_nodes < 1 or num_nodes > MAX_NODES:
            raise TaskError(f"--num-nodes must be from 1 to {MAX_NODES}, got {num_nodes}.",
                            field="--num-nodes")
        task.num_nodes = num_nodes
    if cloud is not None:  # `--cloud ''` is an error, not "any cloud"
        name, region, zone = parse_infra(cloud, "--cloud")
        if name is None:
            from skyterra.errors import TaskError

            raise TaskError("--cloud needs a cloud name (e.g. aws, aws/us-east-1); leave the "
                            "flag out to consider every cloud.", field="--cloud")
        changes = {"cloud": name}
        if region:
            changes["region"] = region
        if zone:
            changes["zone"] = zone
        task.set_resources_override(**changes)
    if gpus is not None:
        from skyterra.resources import parse_accelerator_choices

        parse_accelerator_choices(gpus, "--gpus")  # errors name the flag, not the YAML field
        task.set_resources_override(accelerators=gpus)
        task.set_resources([r for r in task.resources])
    return task  # required envs: a launch checks them, a dry run lists them as notes


def _candidates_table(candidates, limit: int = 5):
    """The optimizer's candidate rows as a rich table; the first row is the choice."""
    from rich.table import Table

    from skyterra.optimizer import format_candidates_table

    columns, rows = format_candidates_table(candidates, limit)
    table = Table(title="Candidates (cheapest first; failover walks this list)")
    for column in ("", *columns):
        table.add_column(column)
    for index, row in enumerate(rows):
        table.add_row("✔" if index == 0 else "", *row)
    return table


def _candidate_json(c) -> dict:
    import dataclasses

    return {**dataclasses.asdict(c), "cluster_price": c.cluster_price}


@main.command()
@click.argument("task_yaml", type=click.Path(dir_okay=False))
@click.option("-c", "--cluster", "cluster_name", help="Cluster name (default: generated).")
@click.option("--cloud", "--infra", "cloud", help=_CLOUD_HELP)
@click.option("--num-nodes", type=int, help="Override num_nodes.")
@click.option("--gpus", help="Override accelerators, e.g. L4:4.")
@click.option("--env", "envs", multiple=True, help="KEY=VALUE, or KEY to copy from here.")
@click.option("--env-file", type=click.Path(dir_okay=False), help="A dotenv file.")
@click.option("--secret", "secrets", multiple=True, help="KEY=VALUE secret (never printed).")
@click.option("-d", "--detach-run", is_flag=True, help="Return once the job has started.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dryrun", is_flag=True, help="Choose and render, create nothing.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="With --dryrun: where "
              "to render the module.")
@click.option("--json", "as_json", is_flag=True, help="With --dryrun: machine-readable output.")
@click.option("--provision-only", is_flag=True, hidden=True,
              help="Stop after the nodes exist (tests against emulators).")
@click.option("-v", "--verbose", is_flag=True, help="Show Terraform's and setup's output as "
              "it comes (a terminal otherwise shows one live line per phase).")
@click.option("-i", "--idle-minutes-to-autostop", "idle_minutes", type=int,
              help="Stop the cluster after this many idle minutes (overrides the YAML).")
@click.option("--down", is_flag=True, help="With autostop: terminate instead of stop.")
@click.option("--max-hourly-cost", type=float, help="Refuse machines dearer than this $/h "
              "per node.")
@handles_errors
def launch(task_yaml, cluster_name, cloud, num_nodes, gpus, envs, env_file, secrets,
           detach_run, yes, dryrun, out_dir, as_json, provision_only, verbose, idle_minutes,
           down, max_hourly_cost):
    """Launch TASK_YAML on a new cluster (or reuse the cluster -c NAME)."""
    dag = _load_dag(task_yaml, envs, env_file, secrets, num_nodes, cloud, gpus)
    if max_hourly_cost is not None:
        for each in dag.tasks:
            each.set_resources_override(max_hourly_cost=max_hourly_cost)
    clouds = [dag.tasks[0].resources[0].cloud] if cloud else None
    if len(dag) > 1:
        _launch_pipeline(dag, cluster_name, clouds, dryrun, out_dir, as_json)
        return
    task = dag.tasks[0]
    if dryrun:
        from skyterra import autostop, planning  # not api: no SSH, jobs or Terraform

        setting = autostop.for_launch(task.resources[0].autostop, idle_minutes, down)
        if setting is not None:  # the module a launch with these flags would apply
            task.set_resources_override(autostop=setting.to_record())
        result = planning.dryrun(task, cluster_name, clouds, Path(out_dir) if out_dir else None)
        if as_json:
            click.echo(json.dumps(_dryrun_json(result), indent=2))
            return
        _console().print(_candidates_table(result.candidates))
        for note in result.notes:
            click.echo(f"note: {note}")
        click.echo(f"Rendered the Terraform module for {result.candidate.describe()} into "
                   f"{result.rendered_dir} (dry run: nothing was created).")
        return
    candidates = None
    from skyterra import api

    if not yes and sys.stdin.isatty():
        candidates = api.plan_candidates(task, clouds)
        _console().print(_candidates_table(candidates))
        click.confirm(f"Launch {task.num_nodes} node(s) of {candidates[0].describe()}?",
                      abort=True, default=True)
    result = _launch_with_progress(api, task, cluster_name, clouds, detach_run,
                                   provision_only, verbose, candidates,
                                   idle_minutes_to_autostop=idle_minutes, down=down)
    if result.job_id is not None and detach_run:
        click.echo(f"Job {result.job_id} is running on cluster '{result.cluster_name}'. "
                   f"Follow it: skyterra logs {result.cluster_name} {result.job_id}")
    if result.exit_code:
        click.echo(f"Job {result.job_id} failed (exit code {result.exit_code}). The cluster "
                   f"is kept: skyterra destroy {result.cluster_name}", err=True)
        sys.exit(result.exit_code if result.exit_code < 256 else 1)


def _dryrun_json(result) -> dict:
    return {"cluster_name": result.cluster_name, "rendered_dir": str(result.rendered_dir),
            "notes": result.notes,
            "candidates": [_candidate_json(c) for c in result.candidates[:10]]}


def _launch_pipeline(dag, cluster_name, clouds, dryrun: bool, out_dir, as_json: bool) -> None:
    """A multi-task file: dry-run every task, or run them one after another."""
    from skyterra import api

    if dryrun:
        results = api.dryrun_dag(dag, cluster_name, clouds, Path(out_dir) if out_dir else None)
        if as_json:
            click.echo(json.dumps({"pipeline": dag.name, "tasks": [
                {"name": t.name, **_dryrun_json(r)} for t, r in zip(dag.tasks, results)]},
                indent=2))
            return
        for number, (task, result) in enumerate(zip(dag.tasks, results), 1):
            click.echo(f"task {number}/{len(dag)} {task.name or ''}: cluster "
                       f"'{result.cluster_name}', {result.candidate.describe()}")
            for note in result.notes:
                click.echo(f"  note: {note}")
            click.echo(f"  rendered into {result.rendered_dir}")
        click.echo("Dry run: nothing was created.")
        return
    if dag.group is not None:
        runs = api.launch_group(dag, cluster_name, clouds=clouds, out=_echo,
                                progress=_progress)
        for run in runs:
            click.echo(f"  {run.name}: {run.status} (cluster '{run.cluster}', log {run.log})")
        click.echo(f"Job group {dag.group.name} finished: {len(runs)} task(s); every cluster "
                   "of the group was destroyed.")
        return
    results = api.launch_dag(dag, cluster_name, clouds=clouds, out=_echo, progress=_progress)
    names = sorted({r.cluster_name for r in results})
    click.echo(f"Pipeline {dag.name or ''} finished: {len(results)} task(s) succeeded. "
               f"Cluster(s) kept: {', '.join(names)} (skyterra destroy {' '.join(names)}).")


def _launch_with_progress(api, task, cluster_name, clouds, detach_run, provision_only,
                          verbose, candidates=None, **autostop):
    """Launch with a live view on a terminal; on failure, print what it hid, in full."""
    from skyterra import progress
    from skyterra.errors import SkyterraError

    reporter = progress.for_terminal(_progress, verbose=verbose)
    try:
        return api.launch_cluster(task, cluster_name, clouds=clouds, detach_run=detach_run,
                                  provision_only=provision_only, candidates=candidates,
                                  out=_echo, progress=reporter, **autostop)
    except (SkyterraError, KeyboardInterrupt) as error:
        dump = getattr(reporter, "dump", None)
        if dump is not None and isinstance(error, SkyterraError):
            dump()
        raise
    finally:
        reporter.close()


@main.command(name="exec")
@click.argument("cluster_name")
@click.argument("task_yaml", type=click.Path(dir_okay=False))
@click.option("--env", "envs", multiple=True, help="KEY=VALUE, or KEY to copy from here.")
@click.option("--env-file", type=click.Path(dir_okay=False))
@click.option("--secret", "secrets", multiple=True)
@click.option("-d", "--detach-run", is_flag=True)
@handles_errors
def exec_(cluster_name, task_yaml, envs, env_file, secrets, detach_run):
    """Run TASK_YAML on an existing cluster: re-sync workdir, run only (no setup)."""
    from skyterra import api

    task = _load_task(task_yaml, envs, env_file, secrets)
    result = api.exec(task, cluster_name, detach_run=detach_run, out=_echo,
                      progress=_progress)
    if result.exit_code:
        sys.exit(result.exit_code if result.exit_code < 256 else 1)


def _age(since: float | None) -> str:
    if not since:
        return "-"
    seconds = int(time.time() - since)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


@main.command()
@click.argument("clusters", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@click.option("-r", "--refresh", is_flag=True, help="Accepted for SkyPilot compatibility: "
              "status always reconciles what autostop did (on a cloud it asks the cloud "
              "about clusters with autostop).")
@handles_errors
def status(clusters, as_json, refresh):
    """List clusters: nodes, IPs, cloud, $/h, up-time."""
    import dataclasses

    from rich.table import Table

    from skyterra import api

    notes: list[str] = []
    records = api.status(list(clusters) or None, notes=notes, progress=_progress)
    for note in notes:
        click.echo(note, err=as_json)
    if as_json:
        click.echo(json.dumps([{k: v for k, v in dataclasses.asdict(r).items()
                                if k not in ("task", "node_env")} for r in records], indent=2))
        return
    if not records:
        click.echo("No clusters. Launch one: skyterra launch TASK.yaml")
        return
    table = Table()
    for column in ("name", "status", "cloud", "where", "resources", "nodes", "head IP",
                   "$/h", "up", "autostop"):
        table.add_column(column)
    for r in records:
        gpus = f" {r.accelerator}:{r.accelerator_count}" if r.accelerator else ""
        shown = f"{r.status} ({r.status_reason})" if r.status_reason else r.status
        table.add_row(r.name, shown, r.cloud or "-", r.zone or r.region or "-",
                      f"{r.instance_type}{gpus}", str(r.num_nodes),
                      r.nodes[0]["ip"] if r.nodes else "-", f"{r.price:.2f}",
                      _age(r.launched_at), _autostop_text(r.autostop))
    _console().print(table)


@main.command(name="destroy")
@click.argument("clusters", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True)
@click.option("--forget", is_flag=True, help="For attached clusters: drop skyterra's record.")
@handles_errors
def destroy(clusters, yes, forget):
    """Destroy clusters (terraform destroy) and forget them."""
    from skyterra import api, progress

    for name in clusters:
        if not yes and sys.stdin.isatty():
            click.confirm(f"Destroy cluster '{name}'?", abort=True, default=True)
        reporter = progress.for_terminal(_progress)
        try:
            outcome = api.down(name, progress=reporter, purge=forget)
        except Exception:
            dump = getattr(reporter, "dump", None)
            if dump is not None:
                dump()
            raise
        finally:
            reporter.close()
        if outcome == "forgotten":
            click.echo(f"Cluster '{name}' forgotten; its nodes belong to your pipeline and "
                       "were not touched.")
        elif outcome:
            click.echo(f"Cluster '{name}' destroyed.")
        else:
            click.echo(f"Cluster '{name}' does not exist (already destroyed?). Nothing to do.")


main.add_command(destroy, name="down")


def _autostop_text(setting: dict) -> str:
    if not setting:
        return "-"
    return f"{setting['idle_minutes']}m{' (down)' if setting.get('down') else ''}"


@main.command()
@click.argument("clusters", nargs=-1, required=True)
@handles_errors
def stop(clusters):
    """Stop clusters: disks and state kept, compute no longer paid (`start` resumes)."""
    from skyterra import api

    for name in clusters:
        outcome = api.stop(name, progress=_progress)
        click.echo(f"Cluster '{name}' {outcome}. Start it again: skyterra start {name}")


@main.command()
@click.argument("clusters", nargs=-1, required=True)
@handles_errors
def start(clusters):
    """Start stopped clusters again (same disks; new IPs are read back)."""
    from skyterra import api

    for name in clusters:
        record = api.start(name, progress=_progress)
        click.echo(f"Cluster '{name}' is UP again: {record.num_nodes} node(s), head "
                   f"{record.nodes[0]['ip']}.")


@main.command()
@click.argument("cluster_name")
@click.option("-i", "--idle-minutes", type=int, help="Idle minutes before it stops (5).")
@click.option("--down", is_flag=True, help="Terminate instead of stop.")
@click.option("--wait-for", type=click.Choice(["jobs_and_ssh", "jobs", "none"]),
              default="jobs_and_ssh", show_default=True, help="What counts as busy.")
@click.option("--cancel", is_flag=True, help="Turn autostop off.")
@handles_errors
def autostop(cluster_name, idle_minutes, down, wait_for, cancel):
    """Stop (or --down: terminate) CLUSTER_NAME after it has been idle for a while."""
    from skyterra import api

    api.autostop_cluster(cluster_name, idle_minutes, down=down, wait_for=wait_for,
                         cancel=cancel)
    if cancel:
        click.echo(f"Autostop of cluster '{cluster_name}' cancelled.")
    else:
        verb = "torn down" if down else "stopped"
        click.echo(f"Cluster '{cluster_name}' will be {verb} after "
                   f"{5 if idle_minutes is None else idle_minutes} idle minute(s).")


@main.command(name="cost-report")
@click.option("--json", "as_json", is_flag=True)
@handles_errors
def cost_report(as_json):
    """What every cluster of this skyterra home cost: price, up-time, total (destroyed too)."""
    import dataclasses

    from rich.table import Table

    from skyterra import api

    rows = api.cost_report()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo("No clusters launched from this skyterra home yet.")
        return
    table = Table()
    for column in ("name", "status", "resources", "launched", "up-time", "$/h", "cost $"):
        table.add_column(column)
    for r in rows:
        res = r.resources
        gpus = f" {res.get('accelerator')}:{res.get('accelerator_count')}" \
            if res.get("accelerator") else ""
        table.add_row(r.name, r.status + (f" ({r.reason})" if r.reason else ""),
                      f"{res.get('num_nodes', 1)}x {res.get('instance_type', '?')}{gpus} "
                      f"{res.get('cloud', '')}",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(r.launched_at)),
                      _duration(r.duration), f"{r.price:.2f}", f"{r.total_cost:.2f}")
    _console().print(table)
    click.echo(f"Total: ${sum(r.total_cost for r in rows):.2f}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


@main.command()
@click.argument("cluster_name")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-refresh", is_flag=True, help="Do not ask the nodes.")
@handles_errors
def queue(cluster_name, as_json, no_refresh):
    """Jobs of a cluster."""
    from rich.table import Table

    from skyterra import api, jobs

    rows = api.queue(cluster_name, refresh=not no_refresh)
    if as_json:
        click.echo(json.dumps([jobs.describe(j) for j in rows], indent=2))
        return
    table = Table(title=f"Jobs on {cluster_name}")
    for column in ("id", "name", "status", "submitted", "duration", "exit", "failed node"):
        table.add_column(column)
    for job in rows:
        info = jobs.describe(job)
        table.add_row(str(job.job_id), job.name or "-", job.status, _age(job.submitted_at) +
                      " ago", f"{info['duration']:.0f}s" if info["duration"] else "-",
                      "-" if job.exit_code is None else str(job.exit_code),
                      job.failed_node or "-")
    _console().print(table)


@main.command()
@click.argument("cluster_name")
@click.argument("job_id", type=int, required=False)
@click.option("--no-follow", is_flag=True)
@click.option("--tail", type=int, help="Only the last N lines of each node.")
@click.option("--status", "status_only", is_flag=True, help="Exit with the job's status code "
              "(0 succeeded, 100 failed, 101 not finished, 103 cancelled).")
@click.option("--provision", is_flag=True, help="Show the log of the cluster's last launch "
              "(Terraform's events and output, setup's output) instead of a job's.")
@handles_errors
def logs(cluster_name, job_id, no_follow, tail, status_only, provision):
    """Stream a job's logs (default: the latest job)."""
    from skyterra import api

    if provision:
        text = api.provision_log(cluster_name)
        lines = text.splitlines()
        click.echo("\n".join(lines[-tail:] if tail else lines))
        return

    if status_only:
        job = api.job_status(cluster_name, job_id)
        click.echo(f"Job {job.job_id}: {job.status}")
        sys.exit(api.job_exit_code(job))
    try:
        code = api.tail_logs(cluster_name, job_id, follow=not no_follow, tail=tail, out=_echo)
    except api.DetachedInterrupt as interrupt:
        click.echo(str(interrupt), err=True)
        sys.exit(0)
    sys.exit(code if not no_follow else 0)


@main.command()
@click.argument("cluster_name")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True)
@handles_errors
def cancel(cluster_name, job_ids, all_):
    """Cancel jobs (default: the latest unfinished job)."""
    from skyterra import api

    done = api.cancel(cluster_name, list(job_ids), all=all_)
    click.echo(f"Cancelled job(s) {', '.join(map(str, done))}." if done else
               "No unfinished job to cancel.")


@main.command()
@handles_errors
def check():
    """Which clouds have credentials (never prints secrets)."""
    from skyterra.clouds import get_cloud, names

    for name in names():
        try:
            report = get_cloud(name).check_credentials()
        except ImportError as error:
            click.echo(f"  {name:6} ✗ module missing ({error})")
            continue
        mark = click.style("✔", fg="green") if report.ok else click.style("✗", fg="red")
        hint = f" — {report.hint}" if report.hint and not report.ok else ""
        click.echo(f"  {name:6} {mark} {report.detail}{hint}")


@main.group()
def storage():
    """Buckets skyterra created or used (SkyPilot's `sky storage`)."""


@storage.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handles_errors
def storage_ls(as_json):
    """List the buckets skyterra knows."""
    import json

    from skyterra import api, bucketstate

    records = api.storage_ls()
    if as_json:
        click.echo(json.dumps([bucketstate.describe(r) for r in records], indent=2))
        return
    if not records:
        click.echo("No buckets.")
        return
    for r in records:
        owner = "skyterra" if r.created_by_skyterra else "external"
        keep = "persistent" if r.persistent else "deleted with its cluster"
        click.echo(f"  {r.name:30} {r.url():55} {owner:9} {keep:25} "
                   f"{','.join(r.clusters) or '-'}")


@storage.command(name="delete")
@click.argument("names", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@handles_errors
def storage_delete(names, yes):
    """Delete buckets skyterra created (terraform destroy of each one's own module).
    A bucket skyterra did not create is refused, never deleted."""
    from skyterra import api

    if not yes:
        click.confirm(f"Delete bucket(s) {', '.join(names)} and everything in them?",
                      abort=True)
    for name in names:
        api.storage_delete(name, progress=lambda line: None)
        click.echo(f"Deleted bucket {name}.")


@main.command(name="ssh-setup")
@handles_errors
def ssh_setup():
    """Add one Include line to ~/.ssh/config so `ssh CLUSTER` works."""
    from skyterra import ssh_config

    added = ssh_config.install_include()
    click.echo(("Added" if added else "Already present:") + f" {ssh_config.include_line()}")


@main.command(name="show-gpus")
@click.argument("accelerator", required=False)
@click.option("--cloud", help=f"One of: {', '.join(_cloud_names())}.")
@click.option("--region", help="Only this region.")
@handles_errors
def show_gpus(accelerator, cloud, region):
    """Accelerators and the instance types that carry them, with prices (offline)."""
    from rich.table import Table

    from skyterra.optimizer import show_gpus_rows

    columns, rows = show_gpus_rows(accelerator, cloud, region)
    if not rows:
        click.echo("No matching accelerators in the catalogs.")
        return
    table = Table()
    for column in columns:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    _console().print(table)


@main.command()
@click.argument("task_yaml", type=click.Path(dir_okay=False))
@click.option("--cloud", "--infra", "cloud", required=True,
              help=_CLOUD_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the module into (created if missing).")
@click.option("-c", "--cluster", "cluster_name", help="Cluster name (default: from the task).")
@click.option("--num-nodes", type=int, help="Override num_nodes.")
@click.option("--gpus", help="Override accelerators, e.g. L4:4.")
@click.option("--env", "envs", multiple=True, help="KEY=VALUE, or KEY to copy from here.")
@click.option("--env-file", type=click.Path(dir_okay=False), help="A dotenv file.")
@click.option("--no-provider", is_flag=True, help="A pure child module: no provider "
              "configuration (for count/for_each in your root).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def render(task_yaml, cloud, out_dir, cluster_name, num_nodes, gpus, envs, env_file,
           no_provider, as_json):
    """Write a standalone Terraform module for TASK_YAML that a pipeline can apply."""
    from skyterra import pipeline  # not api: rendering needs no SSH, jobs or Terraform run

    task = _load_task(task_yaml, envs, env_file, (), num_nodes, cloud, gpus)
    result = pipeline.render_standalone(task, Path(out_dir), cloud=task.resources[0].cloud,
                                        cluster_name=cluster_name, provider=not no_provider)
    if as_json:
        click.echo(json.dumps({"cluster_name": result.cluster_name,
                               "out_dir": str(result.out_dir),
                               "ssh_key": str(result.ssh_key),
                               "candidate": _candidate_json(result.candidate),
                               "files": [str(p) for p in result.files]}, indent=2))
        return
    init = ("terraform init -backend-config=backend.tfbackend"
            if (result.out_dir / "backend.tfbackend").exists() else "terraform init")
    click.echo(f"Rendered the module for {task.num_nodes} x {result.candidate.describe()} "
               f"into {result.out_dir} (see its README.md).\n"
               f"  cd {out_dir} && {init} && terraform apply\n"
               f"  terraform output -json > outputs.json\n"
               f"  skyterra attach {result.cluster_name} --from-outputs outputs.json")


@main.command()
@click.argument("cluster_name")
@click.option("--from-outputs", "outputs_file", type=click.Path(dir_okay=False),
              help="`terraform output -json` of the pipeline's module.")
@click.option("--tf-dir", type=click.Path(file_okay=False),
              help="A Terraform directory to run `terraform output -json` in.")
@click.option("--ssh-key", type=click.Path(dir_okay=False),
              help="Private key for the nodes (default: the ssh_private_key_path output).")
@click.option("--task", "task_yaml", type=click.Path(dir_okay=False),
              help="The task the nodes are for (GPUs per node, shown in status).")
@handles_errors
def attach(cluster_name, outputs_file, tf_dir, ssh_key, task_yaml):
    """Register nodes a pipeline created; then exec/logs/queue/cancel work on them."""
    from skyterra import api
    from skyterra.errors import ConfigError

    if bool(outputs_file) == bool(tf_dir):
        raise ConfigError("give exactly one of --from-outputs outputs.json or --tf-dir DIR.")
    record = api.attach(cluster_name, outputs_file, tf_dir=tf_dir, ssh_key=ssh_key,
                        task=task_yaml, progress=_progress)
    click.echo(f"Attached cluster '{record.name}' ({record.num_nodes} node(s), head "
               f"{record.nodes[0]['ip']}). Run a task: skyterra exec {record.name} TASK.yaml\n"
               "Its nodes belong to your pipeline: destroy them there; `skyterra destroy "
               f"{record.name} --forget` drops skyterra's record.")


@main.command()
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; other than loopback needs the access token.")
@click.option("--new-token", is_flag=True, help="Make a new access token, print it once, keep "
              "it (0600) in SKYTERRA_HOME.")
@click.option("--require-token", is_flag=True, help="Ask for the token on loopback too "
              "(machines shared with other users).")
@handles_errors
def dashboard(port, host, new_token, require_token):
    """A local web page: clusters, jobs, live logs, cost; cancel and destroy from it."""
    try:
        import starlette  # noqa: F401 - only to give a clear error when the extra is missing
        import uvicorn  # noqa: F401

        from skyterra.dashboard import server
    except ImportError as error:
        from skyterra.errors import MissingToolError

        raise MissingToolError(f"the dashboard needs the `dashboard` extra ({error.name} is "
                               "missing): pip install 'skyterra[dashboard]'.") from None
    server.serve(host, port, new_token=new_token, require_token=require_token, say=_echo)


# --- managed jobs ---------------------------------------------------------------------
@main.group(cls=_Group)
def jobs():
    """Managed jobs: recovered after preemption or node loss, their cluster torn down at the end."""


@jobs.command(name="launch")
@click.argument("task_yaml", type=click.Path(dir_okay=False))
@click.option("-n", "--name", help="Job name (default: the task's).")
@click.option("--cloud", "--infra", "cloud", help=_CLOUD_HELP)
@click.option("--num-nodes", type=int, help="Override num_nodes.")
@click.option("--gpus", help="Override accelerators, e.g. L4:4.")
@click.option("--env", "envs", multiple=True, help="KEY=VALUE, or KEY to copy from here.")
@click.option("--env-file", type=click.Path(dir_okay=False), help="A dotenv file.")
@click.option("--secret", "secrets", multiple=True, help="KEY=VALUE secret (never printed).")
@click.option("--controller", "controller", help="Run the controller on a node of this cloud "
              "(default: a detached process of this machine).")
@click.option("--keep-controller", is_flag=True, help="Keep the --controller node after the "
              "job ends (default: destroyed).")
@click.option("-d", "--detach", is_flag=True, help="Return once the job is submitted.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (accepted).")
@handles_errors
def jobs_launch(task_yaml, name, cloud, num_nodes, gpus, envs, env_file, secrets, controller,
                keep_controller, detach, yes):
    """Launch TASK_YAML as a managed job and (unless -d) follow its log."""
    from skyterra import api

    task = _load_task(task_yaml, envs, env_file, secrets, num_nodes, cloud, gpus)
    clouds = [task.resources[0].cloud] if cloud else None
    job_id = api.jobs_launch(task, name, clouds=clouds, controller=controller,
                             keep_controller=keep_controller, progress=_progress)
    click.echo(f"Managed job {job_id} submitted. Status: skyterra jobs queue; log: skyterra "
               f"jobs logs {job_id}; cancel: skyterra jobs cancel {job_id}")
    if not detach:
        try:
            code = api.jobs_logs(job_id, follow=True, out=_echo)
        except KeyboardInterrupt:
            click.echo(f"\nStopped following; managed job {job_id} keeps running.", err=True)
            sys.exit(0)
        sys.exit(code)


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


@jobs.command(name="queue")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-refresh", is_flag=True, help="Do not restart dead controllers.")
@handles_errors
def jobs_queue(as_json, no_refresh):
    """Managed jobs: status, recoveries, down time (restarts a controller that died)."""
    from rich.table import Table

    from skyterra import api

    rows = api.jobs_queue(refresh=not no_refresh)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No managed jobs. Launch one: skyterra jobs launch TASK.yaml")
        return
    table = Table(title="Managed jobs")
    for column in ("id", "name", "status", "submitted", "duration", "recoveries", "down",
                   "where", "cluster", "details"):
        table.add_column(column)
    for job in rows:
        table.add_row(str(job["job_id"]), job["name"] or "-", job["status"],
                      _age(job["submitted_at"]) + " ago", _duration(job["duration"]),
                      str(job["recovery_count"]), f"{job['down_time']:.0f}s",
                      job["where"] or "-", job["cluster_name"], job["failure"] or "-")
    _console().print(table)


@jobs.command(name="logs")
@click.argument("job_id", type=int, required=False)
@click.option("--no-follow", is_flag=True)
@click.option("--controller", is_flag=True, help="The controller's own log.")
@handles_errors
def jobs_logs(job_id, no_follow, controller):
    """A managed job's log: every attempt, with a line per recovery (default: the latest)."""
    from skyterra import api

    try:
        code = api.jobs_logs(job_id, follow=not no_follow, out=_echo, controller=controller)
    except KeyboardInterrupt:
        click.echo("\nStopped following; the job keeps running.", err=True)
        sys.exit(0)
    sys.exit(code if not no_follow else 0)


@jobs.command(name="cancel")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True)
@handles_errors
def jobs_cancel(job_ids, all_):
    """Cancel managed jobs (default: the latest unfinished one); their clusters go too."""
    from skyterra import api

    asked = api.jobs_cancel(list(job_ids), all=all_)
    click.echo(f"Cancelling managed job(s) {', '.join(map(str, asked))}; their controllers "
               "stop the runs and destroy the clusters." if asked else
               "No unfinished managed job to cancel.")


if __name__ == "__main__":
    main()
