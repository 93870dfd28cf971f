"""What a managed job does when its run ends or a node is lost (SkyPilot's job_recovery).

Pure decisions, no I/O, so each rule has a unit test:
- a lost node (preemption, the instance gone) is always recovered;
- a run that exits with a code in `recover_on_exit_codes` is always restarted,
  and such restarts do not count against `max_restarts_on_errors`;
- any other non-zero exit is restarted while fewer than `max_restarts_on_errors`
  restarts were made (default 0: FAILED at once);
- where to go: FAILOVER tries the same place first (the lost nodes are
  replaced in the same module), then the other candidates; EAGER_NEXT_REGION
  (SkyPilot's default) moves to another region first, the place that lost
  the node last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from skyterra.catalog import Candidate
from skyterra.resources import RECOVERY_STRATEGIES
from skyterra.task import Task

DEFAULT_STRATEGY = RECOVERY_STRATEGIES[0]   # EAGER_NEXT_REGION, as in SkyPilot
RESTART, RECOVER_CODE, FAIL = "restart", "recover_code", "fail"


@dataclasses.dataclass(frozen=True)
class Policy:
    strategy: str = DEFAULT_STRATEGY
    max_restarts_on_errors: int = 0
    recover_on_exit_codes: tuple[int, ...] = ()

    @classmethod
    def of(cls, task: Task) -> Policy:
        """The first resources choice that sets job_recovery decides (SkyPilot keeps one)."""
        for resources in task.resources:
            spec = resources.job_recovery
            if spec:
                return cls(spec.get("strategy") or DEFAULT_STRATEGY,
                           int(spec.get("max_restarts_on_errors") or 0),
                           tuple(spec.get("recover_on_exit_codes") or ()))
        return cls()

    @property
    def same_place_first(self) -> bool:
        return self.strategy == "FAILOVER"


def on_failed_run(policy: Policy, codes: Iterable[int], restarts_on_errors: int) -> str:
    """A run that exited non-zero on a live cluster: RECOVER_CODE, RESTART or FAIL."""
    failing = [code for code in codes if code != 0]
    if any(code in policy.recover_on_exit_codes for code in failing):
        return RECOVER_CODE
    if restarts_on_errors < policy.max_restarts_on_errors:
        return RESTART
    return FAIL


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
