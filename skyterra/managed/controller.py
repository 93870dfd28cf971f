"""The controller of one managed job: bring the cluster up, watch, recover, tear down.

Runs as its own process (`python -m skyterra.managed.controller JOB_ID`),
started detached by `jobs launch` and restarted by `jobs queue` when it died:
everything it knows is in the job's directory (store.py), so a new controller
continues where the last one stopped. Each poll it asks two questions:

1. Do all nodes answer SSH? A node that does not, and that the cloud reports
   gone (Cloud.instances_gone), was preempted: recover. A cloud that cannot
   tell gets a grace period (SKYTERRA_MANAGED_UNREACHABLE_GRACE) first.
2. Has the run ended? Exit 0 on every node: SUCCEEDED. Non-zero: wait a
   moment (a node being taken away kills its processes before it stops
   answering) and look again; nodes still there means the program failed,
   and recovery.on_failed_run decides between restarting and FAILED.

Poll intervals are environment settings so tests can be fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

from skyterra import backend, config, executor, jobs, launcher, planning, provision, state
from skyterra.clouds import get_cloud
from skyterra.cluster import Cluster
from skyterra.errors import ClusterNotFoundError, SkyterraError
from skyterra.managed import board, recovery
from skyterra.managed.store import (
    CANCELLED,
    FAILED,
    RECOVERING,
    RUNNING,
    STARTING,
    SUCCEEDED,
    TERMINAL,
    ControllerLock,
    JobDir,
    ManagedJob,
)
from skyterra.submission import submit
from skyterra.task import Task

POLL_ENV = "SKYTERRA_MANAGED_POLL"                    # seconds between polls (default 10)
SETTLE_ENV = "SKYTERRA_MANAGED_SETTLE"                # wait before blaming the program (5)
GRACE_ENV = "SKYTERRA_MANAGED_UNREACHABLE_GRACE"      # unreachable → lost, clouds that can't tell
RECOVERY_ENV = "SKYTERRA_JOB_RECOVERY_COUNT"          # in the run's environment
WATCH_KEY = "interruption-watch"
MAX_POLL_ERRORS = 5                                   # failed polls in a row → FAILED


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.05, float(os.environ.get(name, default)))
    except ValueError:
        return default


class _Lost(Exception):
    """Nodes were lost (preempted): the job must be recovered."""

    def __init__(self, ranks: list[int], why: str):
        super().__init__(why)
        self.ranks = ranks


class LogPump:
    """Copies each node's run log into run.log (node-prefixed) while the run lasts."""

    def __init__(self, job_dir: JobDir):
        self.job_dir = job_dir
        self.lock = threading.Lock()

    def _sink(self, line: str) -> None:
        with self.lock:
            self.job_dir.append_log(line)

    def start(self, cluster: Cluster, job_key: str, only_new: bool) -> None:
        for node in cluster.nodes:
            threading.Thread(target=self._follow, args=(cluster, node, job_key, only_new),
                             daemon=True).start()

    def _follow(self, cluster, node, job_key: str, only_new: bool) -> None:
        shell = executor.NodeShell(cluster, node)
        try:
            executor.stream_log(shell, job_key, executor.PrefixWriter(node.label, self._sink),
                                follow=True, tail=0 if only_new else None)
        except Exception as error:  # noqa: BLE001 - a lost node ends its stream; the poll decides
            self._sink(f"{node.label} (log stream ended: {type(error).__name__})")
        finally:
            with contextlib.suppress(Exception):
                shell.close()


class Controller:
    def __init__(self, job_dir: JobDir, say: Callable[[str], None] | None = None):
        self.dir = job_dir
        self.say = say or _say
        self.poll = _seconds(POLL_ENV, 10)
        self.settle = _seconds(SETTLE_ENV, 5)
        self.grace = _seconds(GRACE_ENV, 120)
        self.pump = LogPump(job_dir)
        self.unreachable_since: float | None = None
        self.noticed = False

    # --- entry ----------------------------------------------------------------------
    def run(self) -> int:
        lock = ControllerLock(self.dir)
        if not lock.acquire():
            self.say("another controller runs this job; leaving it to that one")
            return 0
        job = self.dir.update(controller_pid=os.getpid())
        try:
            if job.status not in TERMINAL:
                self.task = self._task(job)
                self.policy = recovery.Policy.of(self.task)
                self._drive(job)
        finally:
            lock.release(remove=self.dir.load().status in TERMINAL)
        return 0

    def _task(self, job: ManagedJob) -> Task:
        task = Task.from_yaml_config(job.task, source=f"managed job {job.job_id}",
                                     base_dir=job.base_dir or None)
        secrets = self.dir.load_secrets()
        if secrets:
            task.update_secrets(secrets)
        return task

    def _drive(self, job: ManagedJob) -> None:
        """From whatever state the last controller left, to a terminal one."""
        try:
            if job.status == STARTING or job.cluster_job_id is None:
                self._start()
            elif job.status == RECOVERING:
                self._recover([], "the controller restarted during a recovery")
            else:
                self.say(f"resuming watch of job {job.job_id} on cluster '{job.cluster_name}'")
                self.pump.start(self._cluster(), str(job.cluster_job_id), only_new=True)
            self._watch()
        except SkyterraError as error:
            self._finish(FAILED, failure=str(error))
        except Exception as error:  # the job must not stay RUNNING forever
            self._finish(FAILED, failure=f"controller error: {type(error).__name__}: {error}")
            raise

    # --- cluster ----------------------------------------------------------------------
    def _cluster(self) -> Cluster:
        cluster_dir = state.ClusterDir(self.dir.load().cluster_name)
        return Cluster.from_record(cluster_dir.load(), cluster_dir.known_hosts_path)

    def _env(self, job: ManagedJob) -> dict[str, str]:
        return {"SKYPILOT_TASK_ID": job.task_id, "SKYTERRA_TASK_ID": job.task_id,
                RECOVERY_ENV: str(job.recovery_count),
                "SKYTERRA_MANAGED_JOB_ID": str(job.job_id)}

    def _start(self, candidates: list | None = None) -> None:
        """Bring the cluster up (new, or repair the existing one), run setup, start the run."""
        job = self.dir.load()
        with launcher.bring_up(self.task, job.cluster_name, clouds=job.clouds,
                               candidates=candidates, progress=self.say) as up:
            cluster_job = submit(up.cluster, up.cluster_dir, self.task, self.pump._sink,
                                 run_setup=True, progress=self.say,
                                 env_overrides=self._env(job))
            where = recovery.where(up.candidate)
        self._start_watcher(up.cluster)
        now = time.time()
        job = self.dir.load()
        down = job.down_time + ((now - job.down_since) if job.down_since else 0.0)
        job = self.dir.update(status=RUNNING, cluster_job_id=cluster_job.job_id, where=where,
                              started_at=job.started_at or now, down_time=down,
                              down_since=None)
        self.unreachable_since = None
        self.pump.start(up.cluster, cluster_job.key, only_new=False)
        self.dir.event(RUNNING, f"run started on {len(up.cluster.nodes)} node(s) in {where} "
                       f"(recovery {job.recovery_count})", where=where,
                       recovery_count=job.recovery_count)

    def _start_watcher(self, cluster: Cluster) -> None:
        """The cloud's spot-interruption watcher on every node (none on clouds without one)."""
        script = get_cloud(cluster.cloud).interruption_watcher()
        self.noticed = False
        if not script:
            return

        def start(node):
            shell = executor.NodeShell(cluster, node)
            try:
                shell.run("rm -f .skyterra/interruption")
                executor.start_detached(shell, WATCH_KEY, script, {})
            finally:
                shell.close()
        executor.for_each_node(cluster, start)

    def _check_notice(self, cluster: Cluster) -> None:
        cloud = get_cloud(cluster.cloud)
        if self.noticed or not cloud.interruption_watcher():
            return

        def read(node):
            shell = executor.NodeShell(cluster, node)
            try:
                return shell.run("cat .skyterra/interruption 2>/dev/null").stdout
            finally:
                shell.close()
        for rank, text in executor.for_each_node(cluster, read).succeeded.items():
            notice = cloud.parse_interruption(text or "")
            if notice:
                self.noticed = True
                self.dir.event("NOTICE", f"{cluster.nodes[rank].name}: {notice}", rank=rank)

    def teardown(self) -> None:
        """Destroy the job's cluster and forget it (managed jobs own their cluster)."""
        teardown_cluster(self.dir.load().cluster_name, self.say)

    # --- watching -----------------------------------------------------------------------
    def _watch(self) -> None:
        errors = 0
        while True:
            self.dir.publish_log()
            self._cancel_from_board()
            if self._cancel_requested():
                return self._cancel()
            try:
                outcome = self._poll_once()
                errors = 0
            except _Lost as lost:
                self._recover(lost.ranks, str(lost))
                continue
            except SkyterraError as error:   # a passing SSH hiccup must not end the job
                errors += 1
                self.say(f"poll {errors} of {MAX_POLL_ERRORS} failed: {error}")
                if errors >= MAX_POLL_ERRORS:
                    raise
                self._sleep()
                continue
            if outcome is not None:
                status, codes = outcome
                if status == jobs.SUCCEEDED:
                    return self._finish(SUCCEEDED, exit_code=0)
                if not self._after_failed_run(codes):
                    return
            self._sleep()

    def _sleep(self) -> None:
        deadline = time.monotonic() + self.poll
        while time.monotonic() < deadline and not self._cancel_requested():
            time.sleep(min(0.2, self.poll))

    def _cancel_requested(self) -> bool:
        return (self.dir.path / "cancel").exists()

    def _cancel_from_board(self) -> None:
        """A teammate's `jobs cancel` (board.py): honoured as a local one (once a poll)."""
        shared = self.dir.board
        if shared is not None and board.reported(
                "read cancel requests", lambda: shared.cancel_requested(self.dir.job_id)):
            (self.dir.path / "cancel").touch()

    def _lost_nodes(self, cluster: Cluster) -> list[int]:
        """Ranks lost for good; raises nothing, returns [] while all answer (or grace)."""
        dead = executor.probe(cluster, timeout=5)
        if not dead:
            self.unreachable_since = None
            return []
        ranks = [n.rank for n in dead]
        cluster_dir = state.ClusterDir(cluster.name)
        gone = get_cloud(cluster.cloud).instances_gone(cluster_dir.path, cluster_dir.load())
        if gone is not None:
            return sorted(set(ranks) & set(gone))
        self.unreachable_since = self.unreachable_since or time.time()
        if time.time() - self.unreachable_since >= self.grace:
            return ranks
        return []

    def _poll_once(self) -> tuple[str, dict[int, int]] | None:
        """None while the run goes on; (status, exit codes) once it ended; _Lost."""
        cluster = self._cluster()
        lost = self._lost_nodes(cluster)
        if lost:
            names = ", ".join(cluster.nodes[r].name for r in lost)
            raise _Lost(lost, f"node(s) {names} of '{cluster.name}' are gone (preempted or "
                        "terminated by the cloud)")
        if self.unreachable_since:
            return None   # a node does not answer yet; within the grace period
        self._check_notice(cluster)
        cluster_dir = state.ClusterDir(cluster.name)
        store = jobs.JobStore(cluster_dir.jobs_path)
        run = jobs.refresh(cluster, store, store.get(self.dir.load().cluster_job_id))
        if run.status not in jobs.TERMINAL:
            return None
        if run.status == jobs.SUCCEEDED:
            return run.status, {}
        time.sleep(self.settle)   # a node being taken away kills its processes first
        lost = self._lost_nodes(cluster)
        if lost:
            names = ", ".join(cluster.nodes[r].name for r in lost)
            raise _Lost(lost, f"node(s) {names} of '{cluster.name}' are gone (the run ended "
                        f"with exit code {run.exit_code} as they went)")
        return run.status, {0: run.exit_code if run.exit_code is not None else 1}

    def _after_failed_run(self, codes: dict[int, int]) -> bool:
        """A run that failed on live nodes: restart it (True) or end the job FAILED."""
        job = self.dir.load()
        code = next(iter(codes.values()), 1)
        decision = recovery.on_failed_run(self.policy, codes.values(), job.restarts_on_errors)
        if decision == recovery.FAIL:
            self._finish(FAILED, exit_code=code, failure=self._why_failed(code, job))
            return False
        listed = recovery.listed(self.policy, codes.values())
        job = self.dir.update(status=RECOVERING, down_since=time.time(),
                              restarts_on_errors=job.restarts_on_errors + 1,
                              restarts_on_codes=job.restarts_on_codes + int(listed))
        limit = self.policy.max_restarts_on_errors
        why = (f"exit code {code} is in recover_on_exit_codes" if listed else f"exit code {code}")
        why += (f"; restart {job.restarts_on_errors} of {limit} (max_restarts_on_errors)"
                if limit is not None else f"; restart {job.restarts_on_errors} (no limit: "
                "max_restarts_on_errors is not set)")
        self.dir.event(RECOVERING, f"the run failed ({why}); restarting it", exit_code=code)
        job = self.dir.update(recovery_count=job.recovery_count + 1)
        self._restart_run()
        return True

    def _why_failed(self, code: int, job: ManagedJob) -> str:
        """The one-line reason a failed run was not restarted (recovery's rules)."""
        listed, limit = self.policy.recover_on_exit_codes, self.policy.max_restarts_on_errors
        if listed and code not in listed:
            return (f"the run exited with code {code}, which is not in recover_on_exit_codes "
                    f"{list(listed)} (no restart)")
        if limit:
            return (f"the run exited with code {code} after {job.restarts_on_errors} "
                    f"restart(s) (max_restarts_on_errors: {limit})")
        return (f"the run exited with code {code} (no restarts: max_restarts_on_errors is "
                f"{'0' if limit == 0 else 'not set'})")

    def _restart_run(self) -> None:
        """The same cluster, all nodes alive: re-sync and start the run again (no setup)."""
        job = self.dir.load()
        cluster = self._cluster()
        cluster_dir = state.ClusterDir(cluster.name)
        with cluster_dir.lock("managed job restart"):
            run = submit(cluster, cluster_dir, self.task, self.pump._sink, run_setup=False,
                         progress=self.say, env_overrides=self._env(job))
        now = time.time()
        job = self.dir.update(status=RUNNING, cluster_job_id=run.job_id, down_since=None,
                              down_time=job.down_time + (now - (job.down_since or now)))
        self.pump.start(cluster, run.key, only_new=False)
        self.dir.event(RUNNING, f"run restarted (recovery {job.recovery_count})",
                       recovery_count=job.recovery_count)

    # --- recovery -------------------------------------------------------------------------
    def _recover(self, ranks: list[int], why: str) -> None:
        """Lost nodes: stop what is left of the run, then re-apply or move, per strategy."""
        job = self.dir.load()
        if job.status != RECOVERING or job.down_since is None:
            # Counted now, so that the restarted run sees its own number.
            job = self.dir.update(status=RECOVERING, down_since=time.time(),
                                  recovery_count=job.recovery_count + 1)
        self.dir.event(RECOVERING, f"{why}; recovering ({self.policy.strategy})",
                       lost_ranks=ranks, strategy=self.policy.strategy)
        self._end_old_run(ranks)
        lost_place = self._current_place()
        if self.policy.same_place_first and lost_place is not None:
            try:
                self._start()   # bring_up replaces the dead nodes (-replace)
                return self._recovered()
            except SkyterraError as error:
                self.dir.event("FAILOVER", f"could not recover in {job.where} ({error}); "
                               "trying the other candidates")
        self._move(lost_place)
        self._recovered()

    def _recovered(self) -> None:
        job = self.dir.load()
        self.dir.event("RECOVERED", f"recovery {job.recovery_count} done; total down time "
                       f"{job.down_time:.1f} s", recovery_count=job.recovery_count,
                       down_time=job.down_time)

    def _current_place(self) -> tuple[str, str | None, str | None] | None:
        try:
            record = state.ClusterDir(self.dir.load().cluster_name).load()
        except ClusterNotFoundError:
            return None
        return (record.cloud, record.region, record.zone) if record.cloud else None

    def _end_old_run(self, lost: list[int]) -> None:
        """Stop the run on the nodes that are left and close its record, so the next
        submit does not wait for it."""
        job = self.dir.load()
        cluster_dir = state.ClusterDir(job.cluster_name)
        if job.cluster_job_id is None or not cluster_dir.exists():
            return
        cluster = self._cluster()
        alive = [n for n in cluster.nodes if n.rank not in lost]
        jobs.stop_everywhere(cluster, str(job.cluster_job_id), alive)
        store = jobs.JobStore(cluster_dir.jobs_path)
        with contextlib.suppress(SkyterraError):
            run = store.get(job.cluster_job_id)
            if run.status not in jobs.TERMINAL:
                run.status, run.ended_at = jobs.FAILED, time.time()
                run.failed_node = ", ".join(cluster.nodes[r].name for r in lost)
                store.save(run)

    def _move(self, lost_place: tuple[str, str | None, str | None] | None) -> None:
        """Tear the cluster down and bring a new one up at the next candidate."""
        self.teardown()
        ranked = planning.plan_candidates(self.task, self.dir.load().clouds)
        ordered = recovery.next_candidates(self.policy, ranked, lost_place)
        self.say("candidates: " + ", ".join(recovery.where(c) for c in ordered))
        self._start(candidates=ordered)

    # --- the end ------------------------------------------------------------------------
    def _cancel(self) -> None:
        job = self.dir.load()
        if job.cluster_job_id is not None and state.ClusterDir(job.cluster_name).exists():
            with contextlib.suppress(SkyterraError):
                jobs.stop_everywhere(self._cluster(), str(job.cluster_job_id))
        self._finish(CANCELLED, failure="cancelled by the user")

    def _finish(self, status: str, exit_code: int | None = None, failure: str = "") -> None:
        job = self.dir.load()
        if job.status in TERMINAL:
            return
        try:
            self.teardown()
        except SkyterraError as error:
            failure = (failure + "; " if failure else "") + (
                f"the cluster could not be destroyed ({error}); run `skyterra destroy "
                f"{job.cluster_name}`")
        now = time.time()
        down = job.down_time + ((now - job.down_since) if job.down_since else 0.0)
        job = self.dir.update(status=status, exit_code=exit_code, failure=failure,
                              ended_at=now, down_time=down, down_since=None)
        self.dir.event(status, failure or f"the run succeeded after {job.recovery_count} "
                       f"recovery(ies); total down time {job.down_time:.1f} s",
                       recovery_count=job.recovery_count, down_time=job.down_time)
        self.dir.publish_log()


def teardown_cluster(name: str, progress: Callable[[str], None]) -> None:
    """terraform destroy + forget, as `skyterra destroy` does (no-op when it is gone; only
    forget when a teammate already destroyed it: its state is gone from the shared backend,
    and Terraform would refuse the leftover lock-table digest)."""
    cluster_dir = state.ClusterDir(name)
    if not cluster_dir.path.exists():
        return
    shared = backend.shared_backend(config.load())
    listed = backend.list_cluster_names(shared) if shared else None
    with cluster_dir.lock("managed job teardown"):
        if listed is not None and name not in listed and \
                (cluster_dir.path / backend.BACKEND_VALUES_FILE).exists():
            state.forget(cluster_dir)
            return
        try:
            record = cluster_dir.load()
        except ClusterNotFoundError:
            record = state.ClusterRecord(name=name, cloud=provision.guess_cloud(cluster_dir))
        if record.cloud:
            provision.destroy_cluster(cluster_dir, record, progress)
        state.forget(cluster_dir)


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m skyterra.managed.controller JOB_ID`: run (or resume) that job's controller."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m skyterra.managed.controller JOB_ID", file=sys.stderr)
        return 2
    job_dir = JobDir(int(args[0]), board=board.board())
    if not job_dir.exists():
        print(f"managed job {args[0]} does not exist under {job_dir.path}", file=sys.stderr)
        return 1
    return Controller(job_dir).run()


if __name__ == "__main__":
    sys.exit(main())

