"""A real dashboard server for tests: in a thread (unit) or as `skyterra dashboard` (e2e),
and plain HTTP requests with the headers a test chooses (http.client, loopback only)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self):
        return json.loads(self.text)


def request(url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None,
            timeout: float = 60) -> Reply:
    parts = urlsplit(url)
    assert parts.hostname.startswith("127.") or parts.hostname == "localhost", url
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read().decode())
    finally:
        conn.close()


def sse_events(url: str, path: str, headers: dict[str, str] | None = None,
               timeout: float = 120) -> Iterator[tuple[str, object]]:
    """(event, data) pairs of a server-sent event stream until the server ends it."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("content-type").startswith("text/event-stream")
        kind = None
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])
    finally:
        conn.close()


@contextlib.contextmanager
def dashboard_in_thread(host: str = "127.0.0.1", **options) -> Iterator[tuple[str, object, list]]:
    """(url, policy, printed lines) of a server in this process; stopped on exit."""
    from skyterra.dashboard import server as dashboard_server

    printed: list[str] = []
    server, sock, url, policy = dashboard_server.prepare(host, 0, say=printed.append, **options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the dashboard did not start"
    try:
        yield url, policy, printed
    finally:
        server.stop()
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "the dashboard did not stop"


@contextlib.contextmanager
def dashboard_process(*args: str, timeout: float = 30) -> Iterator[tuple[str, subprocess.Popen]]:
    """`skyterra dashboard --port 0 ARGS` as a user runs it: (url, process); Ctrl-C on exit."""
    process = subprocess.Popen([sys.executable, "-m", "skyterra.cli", "dashboard", "--port", "0",
                                *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = _wait_for_url(process, timeout)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(2)  # SIGINT, as Ctrl-C
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
                raise AssertionError("the dashboard did not stop on Ctrl-C") from None


def _wait_for_url(process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            seen += line
            for word in line.split():
                if word.startswith("http://"):
                    return word
        if process.poll() is not None:
            break
    raise AssertionError(f"the dashboard printed no URL:\n{seen}\n{process.stderr.read()}")
