"""The shared copy of managed-job records (managed/board.py) on a path backend and on S3
(moto in process): ids claimed once, records and events copied by the owner only."""

from __future__ import annotations

import json

import pytest

from skyterra.managed import board
from skyterra.managed.store import JobDir, ManagedJob, new_job_dir


def _boards(tmp_path, monkeypatch):
    yield board.Board({"type": "local", "path": str(tmp_path / "team")})
    import boto3
    from moto import mock_aws

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="team-state")
        yield board.Board({"type": "s3", "bucket": "team-state", "region": "us-east-1"})


@pytest.fixture(params=["path", "s3"])
def shared(request, tmp_path, monkeypatch):
    boards = _boards(tmp_path, monkeypatch)
    chosen = next(boards)
    if request.param == "s3":
        chosen = next(boards)
    yield chosen
    boards.close()


def test_an_id_is_claimed_once(shared):
    assert shared.claim(3) and not shared.claim(3)
    assert shared.job_ids() == [3]


def test_new_job_dirs_take_ids_after_the_teams(shared, tmp_path):
    shared.claim(7)
    first = new_job_dir(tmp_path / "mine", shared)
    other_machine = new_job_dir(tmp_path / "theirs", shared)
    assert (first.job_id, other_machine.job_id) == (8, 9)
    assert not shared.claim(8)


def test_the_owners_saves_and_events_are_on_the_board_and_a_mirror_writes_nothing(shared,
                                                                                  tmp_path):
    owner = JobDir(5, tmp_path / "a", board=shared)
    owner.save(ManagedJob(job_id=5, name="train", status="RUNNING"))
    owner.event("RUNNING", "run started")
    owner.append_log("(head, rank=0) step 1")
    owner.publish_log()
    assert shared.record(5)["status"] == "RUNNING"
    assert [e["event"] for e in shared.events(5)] == ["RUNNING"]
    assert "step 1" in shared.log(5)
    mirror = JobDir(5, tmp_path / "b")            # a copy without a board: never published
    mirror.save(ManagedJob(job_id=5, status="FAILED"))
    assert shared.record(5)["status"] == "RUNNING"
    assert not shared.cancel_requested(5)
    shared.request_cancel(5)
    assert shared.cancel_requested(5)
    assert shared.record(6) is None and shared.events(6) == [] and shared.log(6) == ""


def test_a_long_log_is_copied_in_parts_and_only_what_grew(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(board, "LOG_PART", 10)
    written: list[str] = []
    put = shared.put

    def counting(name, data, create_only=False):
        written.append(name)
        return put(name, data, create_only)

    monkeypatch.setattr(shared, "put", counting)
    owner = JobDir(2, tmp_path / "a", board=shared)
    owner.save(ManagedJob(job_id=2))
    owner.append_log("0123456789abcdefghij-line one")        # 30 bytes: parts 0..2
    owner.publish_log()
    assert [n for n in written if "run.log" in n] == ["2/run.log.0", "2/run.log.1",
                                                       "2/run.log.2"]
    written.clear()
    owner.publish_log()                                        # nothing new: nothing sent
    owner.append_log("two")                                    # bytes 30..33: part 3
    owner.publish_log()
    assert [n for n in written if "run.log" in n] == ["2/run.log.3"]
    assert shared.log(2) == "0123456789abcdefghij-line one\ntwo\n"


def test_a_board_that_fails_is_reported_not_raised(tmp_path, capsys):
    class Broken(board.Board):
        def put(self, name, data, create_only=False):
            raise OSError("network down")

    owner = JobDir(1, tmp_path, board=Broken({"type": "local", "path": str(tmp_path)}))
    owner.save(ManagedJob(job_id=1))
    assert json.loads(owner.record_path.read_text())["job_id"] == 1
    assert "could not write the job's record in the shared backend" in capsys.readouterr().err


def test_only_s3_and_path_backends_have_a_board(tmp_path):
    assert board.board({}) is None
    assert board.board({"backend": {"type": "local"}}) is None
    assert board.board({"backend": {"type": "gcs", "bucket": "b"}}) is None
    assert board.board({"backend": {"type": "local", "path": str(tmp_path)}}) is not None
