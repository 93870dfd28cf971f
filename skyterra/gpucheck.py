"""The GPU check between setup and run: every node shows the GPUs the task asked for.

A multi-node job on a node with a missing GPU, or one whose GPU fell off the
bus (NVIDIA Xid 79) or hit an uncorrectable ECC error (Xid 48), does not fail
fast: NCCL hangs until a timeout, or the run dies minutes later on one rank.
So after setup, before the run starts, every node runs `nvidia-smi` (in
parallel, over SSH) and reads the kernel log for Xid errors; a node that
reports another GPU count than the task's accelerators, an `nvidia-smi` that
fails, or a hardware Xid fails the launch naming that node. Nodes without
accelerators skip the check. On the local cloud `nvidia-smi` and `dmesg` are
simulated (templates/local/bin/), so the check itself is exercised by tests.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from skyterra import executor
from skyterra.cluster import Cluster, Node
from skyterra.errors import CommandFailedError

# Xid codes that applications cause (bad kernels, illegal addresses, a killed
# context): they say nothing about the hardware and stay in the kernel log, so
# they must not fail every later launch. Every other Xid is treated as a fault.
# (NVIDIA's "Xid Errors" table: 13 graphics engine exception, 31 MMU fault,
# 43 channel stopped, 45 preemptive cleanup.)
APPLICATION_XIDS = frozenset({13, 31, 43, 45})

# One line per finding, parsed below. `nvidia-smi -L` prints one "GPU n: ..." line
# per device; the kernel log is read with whatever the node allows (dmesg, sudo
# dmesg, journalctl) and a node whose log cannot be read is not blamed.
CHECK_SCRIPT = r"""
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvidia-smi-missing"
  exit 0
fi
if listing=$(nvidia-smi -L 2>&1); then
  echo "gpus $(printf '%s\n' "$listing" | grep -c '^GPU [0-9]')"
else
  echo "nvidia-smi-failed $(printf '%s' "$listing" | head -n 2 | tr '\n' ' ')"
fi
{ dmesg 2>/dev/null || sudo -n dmesg 2>/dev/null || journalctl -k -b --no-pager 2>/dev/null; } \
  | grep -E 'NVRM: Xid' | tail -n 20 | sed 's/^/xid-line /'
exit 0
"""
_XID = re.compile(r"NVRM: Xid \(([^)]*)\): (\d+)")


@dataclasses.dataclass(frozen=True)
class GPUReport:
    """What one node said: its GPU count (None: nvidia-smi missing or failing) and faults."""

    gpus: int | None
    problem: str = ""              # why gpus is None
    xids: tuple[str, ...] = ()     # hardware Xid lines of the kernel log


def parse(output: str) -> GPUReport:
    """The check script's output → GPUReport."""
    gpus, problem, xids = None, "", []
    for line in output.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "gpus" and rest.strip().isdigit():
            gpus = int(rest)
        elif word == "nvidia-smi-missing":
            problem = "nvidia-smi is not installed (no NVIDIA driver on the image?)"
        elif word == "nvidia-smi-failed":
            problem = f"nvidia-smi failed: {rest.strip() or 'no output'}"
        elif word == "xid-line":
            match = _XID.search(rest)
            if match and int(match.group(2)) not in APPLICATION_XIDS:
                xids.append(rest.strip())
    return GPUReport(gpus, problem, tuple(xids))


def verdict(report: GPUReport, expected: int) -> str:
    """'' when the node is fit to run, else what is wrong with it."""
    if report.gpus is None:
        return report.problem or "nvidia-smi reported nothing"
    if report.gpus != expected:
        return f"nvidia-smi shows {report.gpus} GPU(s), the task asks for {expected} per node"
    if report.xids:
        return f"the kernel log reports an NVIDIA Xid error: {report.xids[-1]}"
    return ""


def _check_node(cluster: Cluster, node: Node) -> GPUReport:
    shell = executor.NodeShell(cluster, node)
    try:
        # The node's own login environment (PATH) decides which nvidia-smi runs.
        result = shell.run(f"bash -c {shlex.quote(CHECK_SCRIPT)}", timeout=120)
        return parse(result.stdout or "")
    finally:
        shell.close()


def check(cluster: Cluster, progress: executor.Sink | None = None) -> dict[int, GPUReport]:
    """Run the check on every node at once; raise naming the first unfit node.

    Returns the reports by rank ({} when the task has no accelerators).
    """
    expected = cluster.num_gpus_per_node
    if expected <= 0:
        return {}
    if progress:
        progress(f"checking the GPUs of {len(cluster.nodes)} node(s) (nvidia-smi)")
    results = executor.for_each_node(cluster, lambda node: _check_node(cluster, node))
    results.raise_first("run the GPU check (nvidia-smi)")
    reports = {rank: report for rank, report in sorted(results.succeeded.items())}
    for rank, report in reports.items():
        problem = verdict(report, expected)
        if problem:
            node = cluster.nodes[rank]
            alias = cluster.name if node.rank == 0 else f"{cluster.name}-{node.name}"
            raise CommandFailedError(
                f"GPU check failed on {node.name} ({node.ip}) of cluster '{cluster.name}': "
                f"{problem}. The run was not started. The cluster is kept: look at the node "
                f"with `ssh {alias}` or `skyterra status {cluster.name}`, "
                f"then `skyterra launch` again to retry, or `skyterra destroy {cluster.name}` "
                "to remove it.", node=node.name)
    return reports
