"""Job records: how a job's end is recorded when two commands look at it at once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from skyterra import jobs
from skyterra.cluster import Cluster, Node

CLUSTER = Cluster(name="c", nodes=[Node(0, "127.0.0.2", "127.0.0.2"),
                                   Node(1, "127.0.0.3", "127.0.0.3")],
                  ssh_user="u", ssh_key=Path("/nonexistent/key"))


def test_a_refresh_that_read_the_job_before_a_cancel_keeps_it_cancelled(tmp_path):
    store = jobs.JobStore(tmp_path)
    job = store.new("train", 2)
    job.status = jobs.RUNNING
    store.save(job)
    stale = store.get(job.job_id)               # a `queue` refresh reads the job ...
    cancelling = dataclasses.replace(stale, cancel_requested=True)
    store.save(cancelling)                       # ... a cancel starts stopping the nodes ...
    done = jobs.finish(store, stale, {1: 137, 0: 143}, CLUSTER)  # ... the refresh sees them die
    assert done.status == jobs.CANCELLED and store.get(job.job_id).status == jobs.CANCELLED


def test_a_job_already_ended_by_another_command_is_not_rewritten(tmp_path):
    store = jobs.JobStore(tmp_path)
    job = store.new("train", 2)
    ended = dataclasses.replace(job, status=jobs.CANCELLED, ended_at=1.0)
    store.save(ended)
    done = jobs.finish(store, job, {0: 1, 1: 0}, CLUSTER)
    assert (done.status, done.failed_node) == (jobs.CANCELLED, "")


def test_a_failed_rank_is_blamed_when_nobody_cancelled(tmp_path):
    store = jobs.JobStore(tmp_path)
    job = store.new("train", 2)
    done = jobs.finish(store, job, {1: 3, 0: 143}, CLUSTER)
    assert (done.status, done.failed_node, done.exit_code) == (jobs.FAILED, "worker1", 3)
