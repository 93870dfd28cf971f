"""Storage emulators on 127.0.0.1 for one test: moto (S3), gcp-storage-emulator, Azurite.

Each fixture starts its emulator on a free port, points the standard endpoint
settings at it for this test only (monkeypatch: AWS_ENDPOINT_URL_S3,
STORAGE_EMULATOR_HOST, AZURE_STORAGE_CONNECTION_STRING), and at teardown stops
it and fails the test if the process outlives that. `Emulator.rclone(...)` runs
rclone against it with the test's own remote settings (independent of skyterra's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.moto_server import REGION, _free_port

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / ".tools" / "npm" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account and key (public, identical everywhere).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")


@dataclass
class Emulator:
    store: str
    url: str
    remote: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None   # None: moto, shared by the session

    def stop(self) -> None:
        """Stop the emulator now (a store that went away); the fixture still checks
        at teardown that nothing of it is left."""
        assert self.proc is not None, f"the {self.store} emulator cannot be stopped here"
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)

    def rclone(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        env.pop("AWS_CA_BUNDLE", None)
        env["RCLONE_CONFIG"] = "/dev/null"
        env.update({f"RCLONE_CONFIG_T_{k.upper()}": v for k, v in self.remote.items()})
        result = subprocess.run(["rclone", "--retries", "1", *args], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)}: {result.stderr[-2000:]}")
        return result

    def put(self, bucket_path: str, local: Path) -> None:
        self.rclone("copyto", str(local), f"T:{bucket_path}")

    def cat(self, bucket_path: str) -> str:
        return self.rclone("cat", f"T:{bucket_path}").stdout

    def buckets(self) -> list[str]:
        out = self.rclone("lsf", "T:", "--dirs-only").stdout
        return sorted(line.rstrip("/") for line in out.splitlines() if line)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited at start ({proc.returncode})")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(proc: subprocess.Popen, what: str) -> None:
    """Stop the emulator's process group; the test fails if anything of it survives."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        pytest.fail(f"{what} (pid {proc.pid}) did not stop on SIGTERM")
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"a process of {what} outlived the test")


def _needs(tool: str | Path) -> None:
    if shutil.which(str(tool)) is None and not Path(tool).exists():
        pytest.skip(f"{tool} is not installed (run .ci/install)")


@pytest.fixture
def s3_emulator(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """moto's S3 (the `moto_endpoint` server of tests/moto_server.py)."""
    _needs("rclone")
    for name, value in {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ACCESS_KEY_ID": "moto-key",
                        "AWS_SECRET_ACCESS_KEY": "moto-secret", "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return Emulator("s3", moto_endpoint, {"type": "s3", "provider": "Other",
                                          "endpoint": moto_endpoint, "access_key_id": "x",
                                          "secret_access_key": "x", "force_path_style": "true"})


@pytest.fixture
def gcs_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    tool = Path(sys.executable).parent / "gcp-storage-emulator"
    _needs("rclone")
    _needs(tool)
    port = _free_port()
    proc = subprocess.Popen([str(tool), "start", "--host", "127.0.0.1", "--port", str(port),
                             "--in-memory"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path)
    try:
        _wait_port(port, proc, "gcp-storage-emulator")
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        yield Emulator("gcs", url, {"type": "google cloud storage", "anonymous": "true",
                                    "endpoint": url, "project_number": "test"}, proc)
    finally:
        _stop(proc, "gcp-storage-emulator")


def _account_sas(endpoint: str) -> str:
    version, expiry = "2019-12-12", "2099-01-01T00:00:00Z"
    to_sign = f"{AZURITE_ACCOUNT}\nrwdlacup\nb\nsco\n\n{expiry}\n\nhttps,http\n{version}\n"
    sig = base64.b64encode(hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(),
                                    hashlib.sha256).digest()).decode()
    query = urllib.parse.urlencode({"sv": version, "ss": "b", "srt": "sco", "sp": "rwdlacup",
                                    "se": expiry, "spr": "https,http", "sig": sig})
    return f"{endpoint}?{query}"


@pytest.fixture
def azure_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    _needs("rclone")
    _needs(AZURITE)
    port = _free_port()
    proc = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--location", str(tmp_path / "azurite"), "--silent", "--loose",
                             "--skipApiVersionCheck"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=tmp_path)
    try:
        _wait_port(port, proc, "azurite-blob")
        endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                           f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                           f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};")
        yield Emulator("azure", endpoint, {"type": "azureblob",
                                           "sas_url": _account_sas(endpoint)}, proc)
    finally:
        _stop(proc, "azurite-blob")
