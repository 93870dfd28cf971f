"""What a managed job does when its run ends or a node is lost (SkyPilot's job_recovery).

Pure decisions, no I/O, so each rule has a unit test.

A lost node (preemption, the instance gone) is always recovered; it is not an
error of the program and counts only in the recovery count.

A run that exits non-zero on a live cluster (on_failed_run), with N =
`max_restarts_on_errors` and L = `recover_on_exit_codes`:

- L given, the exit code is in L: the run is restarted, and the restart is
  counted; with N set, after N such restarts the next one is FAILED; with N not
  set, listed codes restart without limit (SkyPilot: a listed code "always
  triggers recovery");
- L given, any other non-zero exit: FAILED at once (the list says which
  failures are worth a restart; N bounds those);
- no L: N covers every non-zero exit (SkyPilot's meaning of
  max_restarts_on_errors): restarted while fewer than N restarts were made,
  then FAILED; N not set means 0, FAILED at once.

Where SkyPilot differs: with both set, SkyPilot restarts a non-listed code too
while N allows it (either setting may restart). skyterra follows its issue's
rule instead: a list narrows the restarts to the listed codes.

Where to go after a lost node: FAILOVER tries the same place first (the lost
nodes are replaced in the same module), then the other candidates;
EAGER_NEXT_REGION (SkyPilot's default) moves to another region first, the
place that lost the node last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from skyterra.catalog import Candidate
from skyterra.resources import RECOVERY_STRATEGIES
from skyterra.task import Task

DEFAULT_STRATEGY = RECOVERY_STRATEGIES[0]   # EAGER_NEXT_REGION, as in SkyPilot
RESTART, FAIL = "restart", "fail"


@dataclasses.dataclass(frozen=True)
class Policy:
    strategy: str = DEFAULT_STRATEGY
    max_restarts_on_errors: int | None = None    # None: not set
    recover_on_exit_codes: tuple[int, ...] = ()

    @classmethod
    def of(cls, task: Task) -> Policy:
        """The first resources choice that sets job_recovery decides (SkyPilot keeps one)."""
        for resources in task.resources:
            spec = resources.job_recovery
            if spec:
                limit = spec.get("max_restarts_on_errors")
                return cls(spec.get("strategy") or DEFAULT_STRATEGY,
                           None if limit is None else int(limit),
                           tuple(spec.get("recover_on_exit_codes") or ()))
        return cls()

    @property
    def same_place_first(self) -> bool:
        return self.strategy == "FAILOVER"


def on_failed_run(policy: Policy, codes: Iterable[int], restarts_on_errors: int) -> str:
    """A run that exited non-zero on a live cluster: RESTART or FAIL (rules: module doc).

    `restarts_on_errors` is how many restarts after a failed run were made so far.
    """
    failing = [code for code in codes if code != 0]
    limit = policy.max_restarts_on_errors
    if policy.recover_on_exit_codes:
        if not any(code in policy.recover_on_exit_codes for code in failing):
            return FAIL
        return RESTART if limit is None or restarts_on_errors < limit else FAIL
    return RESTART if restarts_on_errors < (limit or 0) else FAIL


def listed(policy: Policy, codes: Iterable[int]) -> bool:
    """Did the run exit with a code of recover_on_exit_codes (on some node)?"""
    return any(code in policy.recover_on_exit_codes for code in codes if code != 0)


def _place(candidate: Candidate) -> tuple[str, str | None, str | None]:
    return candidate.cloud, candidate.region, candidate.zone


def next_candidates(policy: Policy, ranked: list[Candidate],
                    lost: tuple[str, str | None, str | None] | None) -> list[Candidate]:
    """Candidates for a fresh cluster after the one at `lost` (cloud, region, zone) failed.

    FAILOVER: the same region first (other zones, then the same zone), then
    the rest in rank order. EAGER_NEXT_REGION: other regions first, then the
    same region's other zones, the lost place last. Ranks are kept within a group.
    """
    if lost is None:
        return list(ranked)
    cloud, region, zone = lost

    def group(candidate: Candidate) -> int:
        same_region = (candidate.cloud, candidate.region) == (cloud, region)
        same_zone = same_region and candidate.zone == zone
        if policy.same_place_first:
            return 0 if same_region and not same_zone else 1 if same_zone else 2
        return 2 if same_zone else 1 if same_region else 0

    return sorted(ranked, key=group)   # sorted() is stable: rank order within a group


def where(candidate: Candidate) -> str:
    return "/".join(part for part in _place(candidate) if part)
