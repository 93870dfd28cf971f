"""Bucket file_mounts: parsed like SkyPilot's, every bad value refused before anything."""

from __future__ import annotations

import dataclasses

import pytest

from skyterra import buckets
from skyterra.errors import ConfigError, NotSupportedError, TaskError
from skyterra.storage import COPY, MOUNT, MOUNT_CACHED
from skyterra.task import Task


def task_with(mounts, tmp_path=None):
    return Task.from_yaml_config({"run": "true", "file_mounts": mounts},
                                 base_dir=tmp_path, source="t.yaml")


def test_bucket_urls_of_the_three_stores_are_copied():
    task = task_with({"/a": "s3://bk-1/x/y", "/b": "gs://bk_2", "/c":
                      "https://acct.blob.core.windows.net/box/sub"})
    refs = {m.path: (m.ref.store, m.ref.bucket, m.ref.prefix, m.ref.account, m.mode)
            for m in task.storage_mounts}
    assert refs == {"/a": ("s3", "bk-1", "x/y", "", COPY), "/b": ("gcs", "bk_2", "", "", COPY),
                    "/c": ("azure", "box", "sub", "acct", COPY)}
    assert task.file_mounts == {}


def test_dict_form_defaults_to_mount_and_round_trips(tmp_path):
    (tmp_path / "src").mkdir()
    spec = {"/ck": {"name": "my-ckpt", "store": "s3", "source": "./src",
                    "mode": "MOUNT_CACHED", "persistent": False}, "/d": {"source": "gs://ds-1"},
            "/local": "./src"}
    task = task_with(spec, tmp_path)
    mounts = {m.path: m for m in task.storage_mounts}
    assert mounts["/ck"].mode == MOUNT_CACHED and mounts["/ck"].create
    assert not mounts["/ck"].persistent and mounts["/d"].mode == MOUNT
    task.check_local_paths()
    assert task.to_yaml_config()["file_mounts"] == spec


@pytest.mark.parametrize("value, field, words", [
    ({"name": "b-1", "store": "s4"}, "store", "unknown store 's4'"),
    ({"name": "b-1", "store": "r2"}, "store", "not supported"),
    ({"name": "b-1", "store": "s3", "mode": "MOUNTED"}, "mode", "unknown mode"),
    ({"name": "Bad_Name", "store": "s3"}, "name", "not a valid S3 bucket name"),
    ({"name": "192.168.1.1", "store": "s3"}, "name", "not a valid S3 bucket name"),
    ({"name": "my-google-bk", "store": "gcs"}, "name", "not a valid GCS bucket name"),
    ({"name": "two--dashes", "store": "azure"}, "name", "not a valid Azure bucket name"),
    ({"name": "b-1", "store": "s3", "persistent": "no"}, "persistent", "true or false"),
    ({"name": "b-1", "store": "s3", "colour": 1}, "colour", "unknown key"),
    ({"source": "s3://x-bucket", "store": "gcs"}, "store", "does not match"),
    ("ftp://host/x", "", "not a bucket URL"),
    ("s3://UPPER", "", "not a valid S3 bucket name"),
])
def test_bad_bucket_mounts_are_clear_errors(value, field, words):
    with pytest.raises(TaskError) as caught:
        task_with({"/m": value})
    assert words in str(caught.value)
    assert f"file_mounts./m{'.' + field if field else ''}" in str(caught.value)
    assert isinstance(caught.value, NotSupportedError) == (words == "not supported")


def test_relative_mount_point_and_missing_source_are_refused(tmp_path):
    with pytest.raises(TaskError, match="absolute path"):
        task_with({"data": "s3://bucket-a"})
    task = task_with({"/m": {"name": "bk-a", "store": "s3", "source": "./nope"}}, tmp_path)
    with pytest.raises(TaskError, match="not a local directory"):
        task.check_local_paths()


def test_a_bucket_of_another_cloud_is_refused_before_anything(monkeypatch):
    task = task_with({"/m": "gs://some-bucket"})
    with pytest.raises(TaskError, match="only get an identity for s3"):
        buckets.check_ready(task, "aws")


def test_no_credentials_for_the_store_is_a_clear_error(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="no AWS credentials"):
        buckets.check_ready(task_with({"/m": "s3://some-bucket"}), "local")


def test_credentials_reach_nodes_on_stdin_only(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-secret-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    task = task_with({"/m": {"source": "s3://bk-a", "mode": "MOUNT_CACHED"}})
    script = buckets.attach_script(task, "local")
    assert "export RCLONE_CONFIG_SKY0_SECRET_ACCESS_KEY=very-secret" in script
    mount_line = next(line for line in script.splitlines() if "rclone mount" in line)
    assert "very-secret" not in mount_line and "$allow_other" in mount_line
    assert "allow_other=--allow-other;" in script  # emptied where FUSE forbids it
    # a cloud with node identities: no keys at all
    assert "very-secret" not in buckets.attach_script(task, "aws")
    assert "RCLONE_CONFIG_SKY0_ENV_AUTH=true" in buckets.attach_script(task, "aws")


def test_mount_cached_runs_flush_after_the_run_and_keeps_its_exit_code(tmp_path):
    import subprocess

    task = task_with({"/m": {"source": "s3://bk-a", "mode": "MOUNT_CACHED"}})
    wrapped = buckets.wrap_run(task, "exit 7")
    assert "rclone copy" in wrapped
    fake_home = tmp_path / "home"
    fake_home.mkdir()
    done = subprocess.run(["bash", "-c", wrapped], check=False, env={"HOME": str(fake_home), "PATH": "/bin"})
    assert done.returncode == 7
    assert buckets.wrap_run(task_with({"/m": "s3://bk-a"}), "true") == "true"


# --- the records of buckets skyterra knows (skyterra/bucketstate.py) ------------------
def test_storage_delete_refuses_a_bucket_skyterra_did_not_create(tmp_path, monkeypatch):
    from skyterra import api, bucketstate
    from skyterra.errors import StorageError

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    bucketstate.save(bucketstate.BucketRecord("their-data", "s3", clusters=[]))
    with pytest.raises(StorageError, match="was not created by skyterra") as refused:
        api.storage_delete("their-data")
    assert "Nothing was deleted" in str(refused.value)
    assert bucketstate.load("their-data") is not None
    with pytest.raises(StorageError, match="knows no bucket 'nope'"):
        api.storage_delete("nope")


def test_release_forgets_an_external_bucket_with_its_last_cluster_and_keeps_the_rest(
        tmp_path, monkeypatch):
    from skyterra import bucketstate

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    for record in (bucketstate.BucketRecord("ext", "s3", clusters=["c1"]),
                   bucketstate.BucketRecord("shared-ext", "s3", clusters=["c1", "c2"]),
                   bucketstate.BucketRecord("mine", "gcs", created_by_skyterra=True,
                                            clusters=["c1"])):
        bucketstate.save(record)
    lines: list[str] = []
    buckets.release("c1", lines.append)
    assert bucketstate.load("ext") is None          # no state of skyterra's: just forgotten
    assert bucketstate.load("shared-ext").clusters == ["c2"]
    assert bucketstate.load("mine").clusters == []  # persistent: it stays
    assert lines == []


def test_a_created_bucket_without_a_module_is_not_silently_forgotten(tmp_path, monkeypatch):
    from skyterra import bucketstate
    from skyterra.errors import StorageError

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    record = bucketstate.BucketRecord("old-one", "s3", created_by_skyterra=True)
    bucketstate.save(record)
    with pytest.raises(StorageError, match="has no Terraform module"):
        bucketstate.destroy(record, lambda line: None)
    assert bucketstate.load("old-one") is not None
    # at a cluster's destroy: a warning naming it, never an exception
    bucketstate.save(dataclasses.replace(record, persistent=False, clusters=["c9"]))
    lines: list[str] = []
    buckets.release("c9", lines.append)
    assert any("WARNING: bucket old-one (persistent: false) was not deleted" in line
               for line in lines)
    assert bucketstate.load("old-one").clusters == []


def test_a_bucket_made_on_an_emulator_is_never_destroyed_against_the_cloud(tmp_path,
                                                                           monkeypatch):
    from skyterra import bucketstate
    from skyterra.errors import StorageError

    monkeypatch.setenv("SKYTERRA_HOME", str(tmp_path))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    record = bucketstate.BucketRecord("emu-made", "gcs", created_by_skyterra=True,
                                      module="storage/rclone")
    bucketstate.save(record)
    (bucketstate.bucket_dir("emu-made") / "main.tf").write_text("# rendered earlier\n")
    with pytest.raises(StorageError, match="no longer point at one"):
        bucketstate.destroy(record, lambda line: None)
    assert bucketstate.load("emu-made") is not None


def test_a_bucket_without_store_lives_on_the_store_of_the_cloud_it_runs_on():
    task = task_with({"/m": {"name": "bk-1"}})
    assert task.storage_mounts[0].ref.store == ""       # not known until the cloud is
    buckets.bind_stores(task, "gcp")
    assert task.storage_mounts[0].ref.store == "gcs"
    with pytest.raises(TaskError, match="no `store:`") as caught:
        buckets.bind_stores(task_with({"/m": {"name": "bk-1"}}), "local")
    assert "file_mounts./m.store" in str(caught.value)


def test_a_bucket_without_name_is_left_to_fill_in_and_a_launch_refuses_it():
    task = task_with({"/m": {"mode": "MOUNT"}, "/n": {"source": "./x"}})
    assert task.storage_mounts == []
    with pytest.raises(TaskError, match="needs `name:`") as caught:
        task.check_required_envs()
    assert "file_mounts./m" in str(caught.value)
    assert len(task.missing_required_envs()) == 2


def test_bucket_fields_take_envs_and_a_required_one_waits_for_its_value():
    task = Task.from_yaml_config({"run": "x", "envs": {"B": None, "ROOT": "/wiki"},
                                  "file_mounts": {"${ROOT}": {"name": "${B}", "store": "s3"}}})
    assert task.storage_mounts[0].path == "/wiki"
    with pytest.raises(TaskError, match="env B is required"):
        task.check_required_envs()
    task.update_envs({"B": "my-bucket-1"})
    assert task.storage_mounts[0].ref.bucket == "my-bucket-1"
    task.check_required_envs()
