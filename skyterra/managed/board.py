"""The shared copy of managed-job records, next to the cluster states in the team's backend.

With a remote backend in `backend:` (backend.shared_backend), a managed job's
controller writes what `jobs queue` shows to objects under `managed-jobs/<id>/`
of the state bucket (s3, through the same client and endpoint settings that
list the cluster states) or of the local backend path:

    managed-jobs/<id>/job.json       the record (as store.ManagedJob; no secret values)
    managed-jobs/<id>/events.jsonl   the history (status changes, recoveries, notices)
    managed-jobs/<id>/run.log.<n>    the run's log in parts of LOG_PART bytes; once a poll,
                                     the parts that grew since the last copy are written
    managed-jobs/<id>/cancel         a teammate asked to cancel; the controller honours it

So any machine sharing the backend lists, follows and cancels the team's
managed jobs. Job ids are shared too: a new id is claimed with a create-only
write (S3 If-None-Match, O_EXCL locally), so two machines never get the same one.
Only the job's owner (its controller, and the launch that records it) writes;
a failed write is reported in the controller's log and never ends a job.
gcs and azurerm backends are not listed here (their states are shared, their
managed jobs are seen on the launching machine only).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from skyterra import backend as backends
from skyterra import config
from skyterra.errors import ConfigError, SkyterraError

PREFIX = "managed-jobs"
LOG_PART = 1 << 20    # a long log costs at most one part's upload per poll


class Board:
    """Objects by name (<id>/<file>) in the shared backend; s3 or a local path."""

    def __init__(self, setting: dict[str, Any]):
        self.setting = setting
        self.kind = setting["type"]
        if self.kind == "s3":
            try:
                self.client = backends.s3_client(setting)
            except ImportError:
                raise ConfigError("managed jobs with an s3 backend need boto3: pip install "
                                  "'skyterra[aws]'.") from None
            self.bucket = setting["bucket"]
        else:
            self.root = Path(str(setting["path"])).expanduser() / PREFIX

    # --- raw objects ------------------------------------------------------------------------
    def put(self, name: str, data: bytes, create_only: bool = False) -> bool:
        """Write one object; create_only: False (and nothing written) if it exists."""
        if self.kind == "s3":
            extra = {"IfNoneMatch": "*"} if create_only else {}
            try:
                self.client.put_object(Bucket=self.bucket, Key=f"{PREFIX}/{name}", Body=data,
                                       **extra)
            except self.client.exceptions.ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if create_only and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
            return True
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if create_only:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                return False
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return True

    def get(self, name: str) -> bytes | None:
        if self.kind == "s3":
            try:
                return self.client.get_object(Bucket=self.bucket,
                                              Key=f"{PREFIX}/{name}")["Body"].read()
            except self.client.exceptions.NoSuchKey:
                return None
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def job_ids(self) -> list[int]:
        """Ids with a record (or a claim) on the board, ascending."""
        if self.kind == "s3":
            ids = set()
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{PREFIX}/", Delimiter="/")
            for page in pages:
                for prefix in page.get("CommonPrefixes", []):
                    part = prefix["Prefix"][len(PREFIX) + 1:].strip("/")
                    if part.isdigit():
                        ids.add(int(part))
            return sorted(ids)
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit())

    # --- jobs ---------------------------------------------------------------------------------
    def claim(self, job_id: int) -> bool:
        """Take a job id for this machine (create-only); False if another took it first."""
        return self.put(f"{job_id}/claim", b"", create_only=True)

    def record(self, job_id: int) -> dict[str, Any] | None:
        data = self.get(f"{job_id}/job.json")
        return json.loads(data) if data else None

    def events(self, job_id: int) -> list[dict[str, Any]]:
        text = (self.get(f"{job_id}/events.jsonl") or b"").decode(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def put_log(self, job_id: int, data: bytes, copied: int) -> None:
        """Write the parts of `data` (the whole log) from the one that holds byte `copied`."""
        for part in range(copied // LOG_PART, max(1, -(-len(data) // LOG_PART))):
            self.put(f"{job_id}/run.log.{part}", data[part * LOG_PART:(part + 1) * LOG_PART])

    def log(self, job_id: int) -> str:
        parts, part = [], 0
        while (chunk := self.get(f"{job_id}/run.log.{part}")) is not None:
            parts.append(chunk)
            if len(chunk) < LOG_PART:
                break
            part += 1
        return b"".join(parts).decode(errors="replace")

    def request_cancel(self, job_id: int) -> None:
        self.put(f"{job_id}/cancel", b"cancel requested\n")

    def cancel_requested(self, job_id: int) -> bool:
        return self.get(f"{job_id}/cancel") is not None


def board(settings: dict[str, Any] | None = None) -> Board | None:
    """The team's board when `backend:` is a shared s3 backend or a local path; else None."""
    setting = backends.shared_backend(config.load() if settings is None else settings)
    if not setting or not (setting.get("type") == "s3" or backends.is_path_backend(setting)):
        return None
    return Board(setting)


def reported(action: str, call) -> Any:
    """Run a board call; a failure is one line on stderr (the controller's log), not an end."""
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - botocore's many error types; the job goes on
        print(f"skyterra: could not {action} in the shared backend ({type(error).__name__}: "
              f"{error}); teammates see the previous copy.", file=sys.stderr, flush=True)
        return None


def unreachable(error: Exception) -> SkyterraError:
    return SkyterraError(f"the shared backend cannot be read ({type(error).__name__}: {error}); "
                         "check the `backend:` setting and your credentials.")
