"""Fan-out through the head gives the callers what direct fan-out gives them.

A 3-node local cluster with the relay threshold lowered to 1 (SKYTERRA_RELAY_THRESHOLD,
set per test): every round over more than one node goes through the head's relay agent.
The same actions run with the relay off must give the same NodeResults: exit codes,
output, a failing command on one worker, an unreachable worker named in its error.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from skyterra import api, connection, executor
from skyterra.errors import NodeUnreachableError
from tests.e2e.helpers import kill_node, skyterra, write_task

pytestmark = pytest.mark.e2e

COMMAND = ("echo out-$SKYTERRA_NODE_NAME; echo err-$SKYTERRA_NODE_NAME >&2; "
           "read -r line; echo got-$line; case $SKYTERRA_NODE_NAME in *-worker2) exit 7;; esac")


def _round(cluster, streamed: bool = False) -> tuple[dict, dict, dict[int, list[str]]]:
    """One for_each_node round: every node runs COMMAND with its rank on stdin."""
    lines: dict[int, list[str]] = {}

    def action(node):
        shell = executor.NodeShell(cluster, node)
        if not streamed:
            result = shell.run(COMMAND, in_stream=f"rank{node.rank}\n")
            return result.return_code, result.stdout, result.stderr
        lines[node.rank] = []
        writer = executor.PrefixWriter(node.label, lines[node.rank].append)
        return shell.run(COMMAND, in_stream=f"rank{node.rank}\n", out=writer).return_code

    results = executor.for_each_node(cluster, action)
    return results.succeeded, results.failed, lines


def _client_sockets(cluster) -> list[str]:
    ssh_dir = connection.cluster_ssh_dir(cluster.known_hosts, cluster.ssh_key)
    directory = connection.socket_dir(ssh_dir)
    return sorted(p.name for p in directory.iterdir() if p.is_socket()) \
        if directory.is_dir() else []


def test_the_relay_gives_the_same_results_as_direct_fan_out(skyterra_home, tmp_path,
                                                            monkeypatch):
    task = write_task(tmp_path, "num_nodes: 3\nrun: echo rank $SKYPILOT_NODE_RANK\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "relay3", "-y", "-d")
    try:
        _dir, _record, cluster = api.get_cluster("relay3")
        monkeypatch.setenv(executor.RELAY_ENV, "off")
        direct = _round(cluster)
        direct_streamed = _round(cluster, streamed=True)
        assert direct[0][2] == (7, "out-relay3-worker2\ngot-rank2\n", "err-relay3-worker2\n")

        monkeypatch.setenv(executor.RELAY_ENV, "1")
        first = _round(cluster)  # authorizes the relay key on the workers (directly, once)
        executor.close_connections(cluster)
        relayed = _round(cluster)
        # Only the head was reached from here; it reached the workers itself.
        assert len(_client_sockets(cluster)) == 1
        assert first == relayed
        relayed_streamed = _round(cluster, streamed=True)
        assert relayed == direct
        # ssh carries stdout and stderr apart: their interleaving is not defined, either way
        assert relayed_streamed[:2] == direct_streamed[:2]
        assert {r: sorted(v) for r, v in relayed_streamed[2].items()} == {
            r: sorted(v) for r, v in direct_streamed[2].items()}
        assert sorted(relayed_streamed[2][1]) == ["(worker1, rank=1) err-relay3-worker1",
                                                  "(worker1, rank=1) got-rank1",
                                                  "(worker1, rank=1) out-relay3-worker1"]

        # A worker that does not trust the relay key (a cloud node, say) is authorized
        # once, directly, and its command sent again: the same results.
        worker1 = skyterra_home / "clusters" / "relay3" / "nodes" / "relay3-1"
        keys = (worker1 / "authorized_keys").read_text().splitlines()
        (worker1 / "authorized_keys").write_text(
            "".join(f"{k}\n" for k in keys if "skyterra-relay-" not in k))
        head = executor.NodeShell(cluster, cluster.head)  # end the head's own connections
        head.run("for s in /tmp/skyterra-relay-*/*; do ssh -o ControlPath=$s -O exit x; done")
        assert _round(cluster) == direct
        assert "skyterra-relay-" in (worker1 / "home" / ".ssh" / "authorized_keys").read_text()

        # The relay key works from the head's address only.
        relay_key = cluster.ssh_key.parent / "relay_ed25519"
        refused = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(relay_key), "-o", "IdentitiesOnly=yes",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
             "UserKnownHostsFile=/dev/null", "-o", "ControlMaster=no", "-o", "ControlPath=none",
             "-b", "127.0.0.1", "-p", str(cluster.ssh_port),
             f"{cluster.ssh_user}@{cluster.nodes[2].ip}", "true"],
            capture_output=True, text=True, timeout=30, check=False)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr
    finally:
        skyterra("destroy", "relay3", "-y")


def test_a_failing_rank_and_an_unreachable_worker_through_the_relay(skyterra_home, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv(executor.RELAY_ENV, "1")
    task = write_task(tmp_path, "num_nodes: 3\nrun: |\n  echo rank $SKYPILOT_NODE_RANK\n"
                      "  [ $SKYPILOT_NODE_RANK = 2 ] && exit 5\n  sleep 30\n")
    skyterra("launch", str(task), "--cloud", "local", "-c", "relayfail", "-y", "-d")
    try:
        # exec streams every rank through the head; worker2 fails, the others are stopped
        result = skyterra("exec", "relayfail", str(task), check=False, timeout=60)
        assert result.returncode != 0, result.stdout
        assert "(worker2, rank=2) rank 2" in result.stdout
        assert "(worker1, rank=1) rank 1" in result.stdout
        job = json.loads(skyterra("queue", "relayfail", "--json").stdout)[-1]
        assert (job["status"], job["failed_node"], job["exit_code"]) == ("FAILED", "worker2", 5)

        # worker1 goes dark: the relay names it, the others still answer
        _dir, _record, cluster = api.get_cluster("relayfail")
        kill_node(skyterra_home / "clusters" / "relayfail" / "nodes" / "relayfail-1")
        results = executor.for_each_node(
            cluster, lambda node: executor.NodeShell(cluster, node).run("echo up").stdout)
        assert results.succeeded == {0: "up\n", 2: "up\n"}
        error = results.failed[1]
        assert isinstance(error, NodeUnreachableError)
        assert "worker1 (" in str(error) and "from the head" in str(error)

        result = skyterra("exec", "relayfail", str(task), check=False, timeout=60)
        assert result.returncode != 0
        assert "worker1 (" in result.stderr and "Traceback" not in result.stderr
    finally:
        skyterra("destroy", "relayfail", "-y")


def test_the_agent_reports_each_node_as_it_finishes_with_its_tail_and_timeouts(tmp_path):
    """The agent alone (its head-local path: no ssh): stdin, exit codes, stderr, a
    timeout, and a node that finishes first is reported first."""
    import sys

    from skyterra import relay

    nodes = [{"rank": 0, "host": "", "cmd": "sleep 3; echo slow", "stdin": None,
              "timeout": None},
             {"rank": 1, "host": "", "cmd": "read -r x; echo got-$x; echo bad >&2; exit 3",
              "stdin": "hello\n", "timeout": None},
             {"rank": 2, "host": "", "cmd": "sleep 30", "stdin": None, "timeout": 0.5}]
    request = relay.request("v", 22, "127.0.0.1", nodes, parallel=4, stream=False)
    request = request.replace('"/tmp/skyterra-relay-v"', f'"{tmp_path}/cm"')
    done = subprocess.run([sys.executable, str(executor.Path(relay.__file__).parent /
                                               "relay_agent.py")],
                          input=request, capture_output=True, text=True, timeout=30,
                          cwd=tmp_path, check=True)
    events = [relay.parse(line) for line in done.stdout.splitlines()]
    assert [e["r"] for e in events] == [1, 2, 0]
    assert events[0] == {"r": 1, "rc": 3, "so": "got-hello\n", "se": "bad\n"}
    assert events[1]["rc"] is None
    assert events[2] == {"r": 0, "rc": 0, "so": "slow\n", "se": ""}
