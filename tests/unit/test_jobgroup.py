"""Job group headers (execution: parallel): checked before anything runs, and the group's
bookkeeping (cancel on failure, auxiliaries after the primaries) with a fake SDK."""

from __future__ import annotations

import threading

import pytest

from skyterra import jobgroup
from skyterra.dag import Dag
from skyterra.errors import SkyterraError, TaskError
from skyterra.task import Task

HEADER = "name: grp\nexecution: parallel\n"


def _dag(tmp_path, text):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return Dag.from_yaml(path)


def test_a_job_group_file_gives_each_task_its_own_cluster(tmp_path):
    dag = _dag(tmp_path, HEADER + "primary_tasks: [train]\ntermination_delay: {default: 30s, "
               "eval: 2m}\n---\nname: train\nrun: a\n---\nname: eval_x\nrun: b\n")
    assert dag.group.primary_tasks == ("train",)
    assert dag.group.delay_for("eval_x") == 30 and dag.group.delay_for("eval") == 120
    assert dag.cluster_names("grp") == ["grp-train", "grp-eval-x"]


@pytest.mark.parametrize("text, message", [
    ("execution: parallel\n---\nname: a\nrun: x\n", "needs `name:`"),
    (HEADER + "---\nname: a\nrun: x\n---\nname: a\nrun: y\n", "named 'a'"),
    (HEADER + "---\nname: a\nrun: x\n---\nrun: y\n", "task 2 of the job group"),
    (HEADER + "primary_tasks: [b]\n---\nname: a\nrun: x\n", "primary task 'b'"),
    (HEADER + "termination_delay: soon\n---\nname: a\nrun: x\n", "30s, 5m or 1h"),
    (HEADER + "inter_connection: maybe\n---\nname: a\nrun: x\n", "true or false"),
    ("name: bad name\nexecution: parallel\n---\nname: a\nrun: x\n", "letters, digits"),
])
def test_bad_job_group_headers_are_clear_errors(tmp_path, text, message):
    with pytest.raises(TaskError, match=message) as info:
        _dag(tmp_path, text)
    assert "\n" not in str(info.value)


class FakeOps:
    """Jobs that end when told to: `ends[name]` is the status follow() returns."""

    def __init__(self, ends, fail_start=()):
        self.ends, self.fail_start = ends, fail_start
        self.cancelled, self.downed = [], []
        self.release = {name: threading.Event() for name in ends}

    def provision(self, task, cluster, progress):
        pass

    def head_ip(self, cluster):
        return "127.0.0.2"

    def start(self, task, cluster, out, progress):
        if task.name in self.fail_start:
            raise SkyterraError("no capacity")
        return 1

    def follow(self, cluster, job_id, out):
        name = cluster.removeprefix("grp-")
        if self.ends[name] == "WAIT":
            self.release[name].wait(10)
            return "CANCELLED"
        return self.ends[name]

    def cancel(self, cluster, job_id):
        self.cancelled.append(cluster)
        self.release[cluster.removeprefix("grp-")].set()

    def down(self, cluster, progress):
        self.downed.append(cluster)


def _run(spec, ops, names):
    tasks = [Task(name=n, run="x") for n in names]
    return jobgroup.run(spec, tasks, ops, out=lambda line: None, progress=lambda line: None)


def test_a_failed_task_cancels_the_running_ones_and_everything_is_destroyed(skyterra_home):
    ops = FakeOps({"a": "FAILED", "b": "WAIT"})
    with pytest.raises(jobgroup.GroupError, match="task 'a' failed .*Cancelled: b") as info:
        _run(jobgroup.GroupSpec("grp"), ops, ["a", "b"])
    assert "\n" not in str(info.value)
    assert ops.cancelled == ["grp-b"] and sorted(ops.downed) == ["grp-a", "grp-b"]


def test_a_task_that_cannot_start_fails_the_group(skyterra_home):
    ops = FakeOps({"a": "SUCCEEDED", "b": "SUCCEEDED"}, fail_start=("b",))
    with pytest.raises(jobgroup.GroupError, match="task 'b' failed \\(no capacity\\)"):
        _run(jobgroup.GroupSpec("grp"), ops, ["a", "b"])
    assert sorted(ops.downed) == ["grp-a", "grp-b"]


def test_auxiliaries_are_cancelled_once_the_primaries_are_done(skyterra_home):
    ops = FakeOps({"main": "SUCCEEDED", "aux": "WAIT"})
    runs = _run(jobgroup.GroupSpec("grp", ("main",)), ops, ["main", "aux"])
    assert {r.name: r.status for r in runs} == {"main": "SUCCEEDED", "aux": "CANCELLED"}
    assert ops.cancelled == ["grp-aux"]
