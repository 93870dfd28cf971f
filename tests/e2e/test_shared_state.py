"""A team's shared backend (S3 + DynamoDB on moto): a cluster launched from one skyterra
home is listed, used and destroyed from another, and the state lock refuses a second apply.
"""

from __future__ import annotations

import json

import pytest

from tests import moto_server as moto_fixtures
from tests.e2e.helpers import skyterra, write_task
from tests.leaks import leftover_processes
from tests.moto_server import s3_state_backend, two_machines_sharing

moto_endpoint = moto_fixtures.moto_endpoint

pytestmark = [pytest.mark.e2e, pytest.mark.moto]



def test_cluster_is_shared_through_the_s3_backend(tmp_path, moto_endpoint, monkeypatch):
    clients, backend = s3_state_backend(moto_endpoint)
    homes = {machine: {"SKYTERRA_HOME": str(home)}
             for machine, home in two_machines_sharing(tmp_path, backend, monkeypatch).items()}
    task = write_task(tmp_path, "num_nodes: 2\nrun: echo \"hello from $SKYPILOT_NODE_RANK\"\n")

    launched = skyterra("launch", str(task), "--cloud", "local", "-c", "team", "-y",
                        env=homes["a"])
    try:
        assert "hello from 1" in launched.stdout
        stored = clients["s3"].list_objects_v2(Bucket="team-state")["Contents"]
        assert [o["Key"] for o in stored] == ["skyterra/team/terraform.tfstate"]
        assert not (tmp_path / "machine-a" / "clusters" / "team" / "terraform.tfstate").exists()

        seen = json.loads(skyterra("status", "--json", env=homes["b"]).stdout)
        assert [(c["name"], c["status"], len(c["nodes"])) for c in seen] == [("team", "UP", 2)]
        used = skyterra("exec", "team", str(task), env=homes["b"])
        assert "(worker1, rank=1) hello from 1" in used.stdout
        pinned = {m: (tmp_path / f"machine-{m}" / "clusters" / "team" / "ssh" / "known_hosts")
                  .read_text() for m in ("a", "b")}
        assert pinned["a"].count("ssh-ed25519") == 2 and pinned["b"] == pinned["a"]

        relaunched = skyterra("launch", str(task), "-c", "team", "-y", env=homes["a"])
        assert "0 to add, 0 to change, 0 to destroy" in relaunched.stderr

        lock_id = "team-state/skyterra/team/terraform.tfstate"
        clients["dynamodb"].put_item(TableName="locks", Item={
            "LockID": {"S": lock_id},
            "Info": {"S": json.dumps({"ID": "held", "Operation": "OperationTypeApply",
                                      "Who": "machine-a", "Version": "1.11.4",
                                      "Created": "2026-11-25T00:00:00Z", "Path": lock_id})}})
        refused = skyterra("launch", str(task), "-c", "team", "-y", env=homes["b"],
                           check=False)
        clients["dynamodb"].delete_item(TableName="locks", Key={"LockID": {"S": lock_id}})
        assert refused.returncode == 1
        assert "busy" in refused.stderr and "state lock" in refused.stderr
        assert "Traceback" not in refused.stderr
        again = json.loads(skyterra("status", "--json", env=homes["b"]).stdout)
        assert again[0]["status"] == "UP" and len(again[0]["nodes"]) == 2
    finally:
        destroyed = skyterra("destroy", "team", "-y", env=homes["b"], check=False)
    assert destroyed.returncode == 0, destroyed.stderr
    assert leftover_processes(str(tmp_path)) == []
    assert clients["s3"].list_objects_v2(Bucket="team-state").get("Contents", []) == []
    # machine A learns that the cluster is gone
    assert json.loads(skyterra("status", "--json", env=homes["a"]).stdout) == []
