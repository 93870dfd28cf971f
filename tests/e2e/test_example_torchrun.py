"""End-to-end check of examples/mingpt WITHOUT skyterra: plain torchrun, two "nodes".

Two torchrun agents (node_rank 0 and 1, 2 processes each, world size 4) rendezvous on
127.0.0.2 -- Linux routes all of 127/8 to lo, the same trick the local cloud uses for
its nodes. If this test fails, the example is broken; if it passes but a skyterra
launch of examples/mingpt/train.yaml fails, look at the launcher.

torchrun starts every worker in its own session, so killing torchrun's process group
is not enough to clean up: on failure or timeout we collect the whole process tree
first, ask torchrun to stop (SIGTERM, which it forwards), then SIGKILL what is left.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mingpt"
MASTER_ADDR = "127.0.0.2"
TIMEOUT_S = 240
# Variables skyterra's local cloud sets on every node; the script must not depend on them.
LOCAL_CLOUD_ENV = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _loopback_alias_usable() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((MASTER_ADDR, 0))
        return True
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """All live descendants of pid, from /proc (children first found, then theirs)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(procs: list[subprocess.Popen]) -> None:
    """Stop torchrun agents and every worker they started; never leaves orphans behind."""
    live = [p for p in procs if p.poll() is None]
    tree = {pid for p in live for pid in _descendants(p.pid)}
    for p in live:
        try:
            os.killpg(p.pid, signal.SIGTERM)  # torchrun forwards SIGTERM to its workers
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for pid in tree | {p.pid for p in live}:
        for kill in (os.killpg, os.kill):  # workers lead their own process groups
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _run_two_nodes(tmp_path: Path, env: dict[str, str]) -> tuple[list[int], str, str]:
    port = _free_port()
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        # Start node 1 first: it must wait for the head's store, like a slow head node.
        for node_rank in (1, 0):
            log = tmp_path / f"node{node_rank}.log"
            logs.append(log)
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",  # == torchrun, same interpreter
                "--nnodes=2",
                "--nproc_per_node=2",
                f"--master_addr={MASTER_ADDR}",
                f"--master_port={port}",
                f"--node_rank={node_rank}",
                "main.py",
            ]
            with open(log, "wb") as out:
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=EXAMPLE,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + TIMEOUT_S
        for p in procs:
            p.wait(timeout=max(1, deadline - time.monotonic()))
        codes = [p.returncode for p in procs]
    except subprocess.TimeoutExpired:
        _kill_tree(procs)
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S}s\n" + _dump(logs))
    finally:
        _kill_tree(procs)  # no-op when everything already exited
    return codes, (tmp_path / "node0.log").read_text(), _dump(logs)


def _dump(logs: list[Path]) -> str:
    return "\n".join(
        f"===== {p.name} =====\n{p.read_text(errors='replace')}" for p in logs if p.exists()
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs 127/8 routed to lo")
@pytest.mark.parametrize("with_local_cloud_env", [False, True], ids=["bare-env", "local-cloud-env"])
def test_mingpt_two_nodes_two_procs(tmp_path: Path, with_local_cloud_env: bool) -> None:
    pytest.importorskip("torch")
    if not _loopback_alias_usable():
        pytest.skip(f"cannot bind {MASTER_ADDR}")

    env = {k: v for k, v in os.environ.items() if k not in LOCAL_CLOUD_ENV}
    if with_local_cloud_env:
        env.update(LOCAL_CLOUD_ENV)
    env.update({"MAX_STEPS": "60", "LOG_EVERY": "20", "SAMPLE_LEN": "60"})

    started = time.monotonic()
    codes, head, everything = _run_two_nodes(tmp_path, env)
    wall = time.monotonic() - started
    print(f"two-node torchrun run took {wall:.1f}s")

    assert codes == [0, 0], f"exit codes (node1, node0) = {codes}\n{everything}"
    assert re.search(r"^world_size=4$", head, re.MULTILINE), everything
    losses = [float(x) for x in re.findall(r"^step \d+ loss (\d+\.\d+)$", head, re.MULTILINE)]
    final = re.search(r"^final loss (\d+\.\d+)$", head, re.MULTILINE)
    assert losses and final, everything
    assert losses[0] > 3.5, f"initial loss should be near ln(vocab)~4.3: {losses}"
    assert float(final.group(1)) < 0.75 * losses[0], f"loss did not go down: {losses}\n{head}"
    assert "sample:" in head, everything


def test_committed_training_text_is_reproducible() -> None:
    """input.txt is exactly what make_data.py writes (no hand edits, no drift)."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        import make_data
    finally:
        sys.path.remove(str(EXAMPLE))
    committed = (EXAMPLE / "input.txt").read_text(encoding="ascii")
    assert make_data.build() == committed
    assert 50_000 <= len(committed) <= 200_000
