"""Choices the executor makes without reaching a node: first-hand host keys, the relay threshold."""

from __future__ import annotations

from pathlib import Path

from skyterra import executor
from skyterra.cluster import Cluster, Node


def _cluster(tmp_path: Path, port: int) -> Cluster:
    nodes = [Node(rank, f"127.9.9.{rank + 2}", f"127.9.9.{rank + 2}") for rank in range(3)]
    return Cluster("c", nodes, "root", tmp_path / "id", port, tmp_path / "known_hosts")


def test_given_lines_for_the_nodes_own_names_are_pinned_and_the_rest_scanned(tmp_path,
                                                                             monkeypatch):
    cluster = _cluster(tmp_path, 2222)
    scanned = []
    monkeypatch.setattr(executor, "_keyscan",
                        lambda c, node, timeout: scanned.append(node.rank) or
                        f"[{node.ip}]:2222 ssh-ed25519 SCANNED\n")
    known = {0: "[127.9.9.2]:2222 ssh-ed25519 AAAA",
             1: "127.9.9.3 ssh-ed25519 WRONGNAME"}   # not the node's name on port 2222
    executor.pin_host_keys(cluster, known=known)
    assert scanned == [1, 2]
    lines = cluster.known_hosts.read_text().splitlines()
    assert lines[0] == "[127.9.9.2]:2222 ssh-ed25519 AAAA"
    assert lines[1:] == ["[127.9.9.3]:2222 ssh-ed25519 SCANNED",
                         "[127.9.9.4]:2222 ssh-ed25519 SCANNED"]


def test_the_relay_threshold_is_the_clouds_unless_the_setting_says(monkeypatch, tmp_path):
    cluster = _cluster(tmp_path, 22)
    monkeypatch.delenv(executor.RELAY_ENV, raising=False)
    for cloud, expected in (("local", None), ("aws", 32), ("", 32)):
        cluster.cloud = cloud
        assert executor.relay_threshold(cluster) == expected
    monkeypatch.setenv(executor.RELAY_ENV, "5")
    assert executor.relay_threshold(cluster) == 5
    monkeypatch.setenv(executor.RELAY_ENV, "off")
    assert executor.relay_threshold(cluster) is None
