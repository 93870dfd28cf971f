"""Cluster from Terraform outputs: the hand-over point between any module and the executor."""

from __future__ import annotations

import json

import pytest

from skyterra import Cluster
from skyterra.errors import ConfigError

RAW = {"node_ips": {"value": ["198.51.100.7", "198.51.100.8"], "type": ["list", "string"]},
       "node_private_ips": {"value": ["10.0.0.7", "10.0.0.8"]},
       "instance_ids": {"value": ["i-1", "i-2"]}, "ssh_user": {"value": "ubuntu"},
       "ssh_port": {"value": 2222}, "ssh_private_key_path": {"value": "/keys/id"}}


def test_raw_output_json_values_and_a_saved_file_give_the_same_cluster(tmp_path):
    saved = tmp_path / "outputs.json"
    saved.write_text(json.dumps(RAW))
    values = {k: v["value"] for k, v in RAW.items()}
    clusters = [Cluster.from_terraform_outputs("c", source) for source in (RAW, values, saved)]
    assert all(c == clusters[0] for c in clusters)
    head, worker = clusters[0].nodes
    assert (head.label, head.ip, head.private_ip) == ("(head, rank=0)", "198.51.100.7", "10.0.0.7")
    assert (worker.label, worker.instance_id) == ("(worker1, rank=1)", "i-2")
    assert clusters[0].private_ips == ["10.0.0.7", "10.0.0.8"]
    assert (clusters[0].ssh_user, clusters[0].ssh_port, str(clusters[0].ssh_key)) == (
        "ubuntu", 2222, "/keys/id")


@pytest.mark.parametrize("broken, message", [
    ({"ssh_user": {"value": "u"}}, "node_ips"),
    ({"node_ips": {"value": []}, "ssh_user": {"value": "u"}}, "node_ips"),
    ({"node_ips": {"value": ["1.2.3.4"]}}, "ssh_user"),
    ({"node_ips": {"value": ["1.2.3.4"]}, "ssh_user": {"value": "u"},
      "node_private_ips": {"value": ["a", "b"]}}, "different lengths"),
])
def test_unusable_outputs_say_which_output_is_missing(broken, message):
    with pytest.raises(ConfigError, match=message):
        Cluster.from_terraform_outputs("c", broken, ssh_key="/k")


def test_a_file_that_is_not_outputs_is_a_clear_error(tmp_path):
    bad = tmp_path / "outputs.json"
    bad.write_text("not json")
    with pytest.raises(ConfigError, match="terraform output -json"):
        Cluster.from_terraform_outputs("c", bad, ssh_key="/k")
