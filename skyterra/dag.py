"""A pipeline or a job group: several tasks in one YAML file.

SkyPilot's multi-document task files: the documents are separated by `---`;
the first may be a header with only `name:` (the pipeline's name) and the rest
are tasks, run in order, each after the previous one succeeded (or in the order a
header's `dependencies:` gives, one at a time). A header with
`execution: parallel` makes a SkyPilot job group: the tasks run at the same time,
each on its own cluster (skyterra/jobgroup.py).

Where each task of a pipeline runs: consecutive tasks that ask for the same resources
and node count share one cluster (the setup of the next task runs there too);
a task that asks for something else gets its own cluster, named after the
pipeline's with `-2`, `-3`… Clusters are kept, like after `skyterra launch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import jobgroup, paths, spec
from skyterra.errors import PipelineError, SkyterraError, TaskError
from skyterra.task import Task, load_yaml_documents, read_task_text

Output = Callable[[str], None]


@dataclasses.dataclass
class Dag:
    """Tasks run in order (SkyPilot's chain DAG)."""

    tasks: list[Task]
    name: str | None = None
    source: str | None = None
    group: jobgroup.GroupSpec | None = None   # execution: parallel (a job group)

    @classmethod
    def from_yaml(cls, path: str | Path, env_overrides: dict[str, str] | None = None,
                  cloud_override: str | None = None) -> Dag:
        """Any task file: one document is a pipeline of one task. `cloud_override`: see
        Task.from_yaml_config."""
        path = Path(path)
        source = str(path)
        documents = load_yaml_documents(read_task_text(path), source)
        header = documents[0] if documents and isinstance(documents[0], dict) else {}
        name, documents = _header(documents, source)
        tasks = []
        for index, document in enumerate(documents):
            where = f"{source} (task {index + 1} of {len(documents)})" if len(documents) > 1 \
                else source
            tasks.append(Task.from_yaml_config(document, source=where,
                                               base_dir=path.resolve().parent,
                                               env_overrides=env_overrides,
                                               cloud_override=cloud_override))
        group = None
        if name is not None and header.get("execution") == "parallel":
            group = jobgroup.parse_header(header, [t.name for t in tasks], source)
        else:
            tasks = _in_dependency_order(tasks, header, source)
        return cls(tasks, name, source, group)

    def __len__(self) -> int:
        return len(self.tasks)

    def groups(self) -> list[list[int]]:
        """Indexes of tasks that share a cluster: runs of equal resources and node count."""
        groups: list[list[int]] = []
        for index, task in enumerate(self.tasks):
            if groups and _same_shape(self.tasks[groups[-1][0]], task):
                groups[-1].append(index)
            else:
                groups.append([index])
        return groups

    def cluster_names(self, base: str) -> list[str]:
        """The cluster each task runs on: `base` for the first group, `base-2`… after;
        in a job group, `base-<task name>` each."""
        if self.group is not None:
            return jobgroup.cluster_names(self.group, [t.name for t in self.tasks], base)
        names = [""] * len(self.tasks)
        for number, group in enumerate(self.groups(), 1):
            for index in group:
                names[index] = base if number == 1 else f"{base}-{number}"
        return names


def _header(documents: list[Any], source: str) -> tuple[str | None, list[Any]]:
    """Split off a pipeline header (a first document with only header keys)."""
    if not documents:
        raise TaskError("the file is empty; a task needs at least a `run:` command.",
                        source=source)
    first = documents[0]
    if not isinstance(first, dict) or not set(first) <= set(spec.HEADER_KEYS) or (
            len(documents) == 1 and set(first) <= {"name"}):
        return None, documents  # a one-document file with only `name:` is a task
    execution = first.get("execution", "serial")
    if execution not in ("serial", "parallel"):
        raise TaskError(f"execution must be serial or parallel, got {execution!r}.",
                        source=source, field="execution")
    for key in ("primary_tasks", "termination_delay", "inter_connection"):
        if key in first and execution == "serial":
            raise TaskError(f"{key} belongs to a job group (execution: parallel); remove it.",
                            source=source, field=key)
    for key in ("dependencies", "depends_on"):
        if key in first and execution == "parallel":
            raise TaskError(f"{key} orders the tasks of a pipeline, but a job group "
                            "(execution: parallel) runs all its tasks at once; remove one "
                            "of them.", source=source, field=key)
    name = first.get("name")
    if name is not None and not isinstance(name, str):
        raise TaskError(f"expected a string, got {name!r}.", source=source, field="name")
    if execution == "parallel" and name is None:
        raise TaskError("a job group (execution: parallel) needs `name:` in its header.",
                        source=source, field="name")
    if len(documents) == 1:
        raise TaskError("the file has a pipeline header but no task after it.", source=source)
    return name, documents[1:]


def _in_dependency_order(tasks: list[Task], header: dict, source: str) -> list[Task]:
    """A header's `dependencies: {task: [tasks it needs]}` (SkyPilot's DAG form; also
    spelled `depends_on`) orders the tasks: each runs after everything it needs, one
    at a time, ties in file order. Without it the file order is the chain."""
    key = next((k for k in ("dependencies", "depends_on") if k in header), None)
    if key is None:
        return tasks
    needs = _dependency_map(header[key], [t.name for t in tasks], source, key)
    done: list[Task] = []
    while len(done) < len(tasks):
        finished = {t.name for t in done}
        ready = [t for t in tasks if t.name not in finished
                 and finished.issuperset(needs.get(t.name, ()))]
        if not ready:
            stuck = sorted(t.name for t in tasks if t.name not in finished)
            raise TaskError(f"the dependencies form a cycle among {', '.join(stuck)}; "
                            "a task cannot wait for itself.", source=source, field=key)
        done.append(ready[0])
    return done


def _dependency_map(value: Any, names: list[str | None], source: str,
                    key: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise TaskError("expected a mapping of task name: [names of the tasks it needs].",
                        source=source, field=key)
    if None in names or len(set(names)) != len(names):
        raise TaskError(f"with `{key}`, every task needs a `name:` of its own.",
                        source=source, field=key)
    needs = {}
    for task, upstream in value.items():
        upstream = [] if upstream is None else [upstream] if isinstance(upstream, str) \
            else upstream
        unknown = [n for n in [task, *upstream] if n not in names]
        if not isinstance(upstream, list) or unknown:
            raise TaskError(f"{task!r}: {upstream!r} names no task of this file (tasks: "
                            f"{', '.join(map(str, names))}).", source=source,
                            field=f"{key}.{task}")
        needs[task] = upstream
    return needs


def _same_shape(a: Task, b: Task) -> bool:
    return a.num_nodes == b.num_nodes and a.resources == b.resources and \
        a.resources_ordered == b.resources_ordered


def _pipeline_name(dag: Dag, cluster_name: str | None) -> str:
    if cluster_name:
        return cluster_name
    if dag.group is not None:
        return dag.group.name
    from skyterra.planning import default_cluster_name

    return default_cluster_name()


def dryrun(dag: Dag, cluster_name: str | None = None, clouds: list[str] | None = None,
           out_dir: Path | None = None) -> list[Any]:
    """Every task's dry run; each task of a pipeline renders into its own folder
    (<out_dir or ~/.skyterra/dryrun/NAME>/<n>-<task name>)."""
    from skyterra.planning import dryrun as dryrun_task

    base = _pipeline_name(dag, cluster_name)
    if len(dag) == 1:
        return [dryrun_task(dag.tasks[0], base, clouds, out_dir)]
    root = Path(out_dir) if out_dir else paths.home() / "dryrun" / base
    return [dryrun_task(task, name, clouds, root / f"{index + 1}-{task.name or 'task'}")
            for index, (task, name) in enumerate(zip(dag.tasks, dag.cluster_names(base)))]


def launch(dag: Dag, launch_one: Callable[[Task, str], Any], cluster_name: str | None = None,
           *, progress: Output) -> list[Any]:
    """Run the tasks in order; a failed task stops the chain with a PipelineError.

    `launch_one(task, cluster_name)` launches one task and waits for its job (the SDK's
    launch_cluster); it returns a LaunchResult whose exit_code says how the job ended.
    """
    base = _pipeline_name(dag, cluster_name)
    names = dag.cluster_names(base)
    results = []
    for index, task in enumerate(dag.tasks):
        label = f"task {index + 1}/{len(dag)}" + (f" '{task.name}'" if task.name else "")
        progress(f"pipeline {dag.name or base}: {label} on cluster '{names[index]}'")
        try:
            result = launch_one(task, names[index])
        except SkyterraError as error:
            raise PipelineError(f"{label} could not start: {error} {_rest(dag, index)}") \
                from None
        results.append(result)
        if result.exit_code:
            raise PipelineError(
                f"{label} failed (exit code {result.exit_code}) on cluster "
                f"'{names[index]}'. {_rest(dag, index)} The cluster(s) are kept: see the "
                f"logs with `skyterra logs {names[index]} {result.job_id}`; destroy with "
                f"`skyterra destroy {' '.join(sorted(set(names[:index + 1])))}`.")
    return results


def _rest(dag: Dag, index: int) -> str:
    left = dag.tasks[index + 1:]
    if not left:
        return "It was the last task."
    shown = ", ".join(t.name or f"task {index + 2 + i}" for i, t in enumerate(left))
    return f"The pipeline stopped; not run: {shown}."
