"""The spot-interruption watchers as a node runs them: real bash and curl against a stand-in
metadata server on 127.0.0.1 (the scripts take its address from the environment)."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyterra.clouds import get_cloud
from skyterra.clouds.aws import AWS_INTERRUPTION_WATCHER
from skyterra.clouds.gcp import GCP_INTERRUPTION_WATCHER


@contextmanager
def metadata_server(answers: dict[str, list[tuple[int, str]]],
                    needs: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Answers each path with its next (status, body); a request without the headers in
    `needs` gets 401. Yields (base URL, the paths asked)."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?", 1)[0]
            asked.append(f"{self.command} {path}")
            missing = any(self.headers.get(k) != v for k, v in needs.items()
                          if not path.endswith("/api/token"))
            queue = answers.get(path) or [(404, "")]
            status, body = (401, "") if missing else (queue.pop(0) if len(queue) > 1
                                                      else queue[0])
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_PUT = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _run(script: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True,
                          timeout=30,
                          env={"PATH": os.environ["PATH"], "HOME": str(home),
                               "NO_PROXY": "127.0.0.1", "SKYTERRA_WATCH_INTERVAL": "0.1",
                               **env})


def test_the_aws_watcher_waits_for_the_notice_and_writes_it(tmp_path):
    action = '{"action": "terminate", "time": "2026-12-01T10:02:00Z"}'
    answers = {"/latest/api/token": [(200, "tok")],
               "/latest/meta-data/spot/instance-action": [(404, "not yet"), (404, ""),
                                                         (200, action)]}
    with metadata_server(answers, {"X-aws-ec2-metadata-token": "tok"}) as (url, asked):
        result = _run(AWS_INTERRUPTION_WATCHER, tmp_path, SKYTERRA_IMDS_URL=f"{url}/latest")
    assert result.returncode == 0, result.stderr
    marker = (tmp_path / ".skyterra" / "interruption").read_text()
    assert marker.strip() == action
    assert asked.count("GET /latest/meta-data/spot/instance-action") == 3
    assert "PUT /latest/api/token" in asked                 # IMDSv2: a token first
    assert get_cloud("aws").parse_interruption(marker) == (
        "AWS spot interruption notice: the instance will be terminated at 2026-12-01T10:02:00Z")


def test_the_gcp_watcher_waits_for_preempted_true(tmp_path):
    answers = {"/computeMetadata/v1/instance/preempted": [(200, "FALSE"), (200, "TRUE")]}
    with metadata_server(answers, {"Metadata-Flavor": "Google"}) as (url, asked):
        result = _run(GCP_INTERRUPTION_WATCHER, tmp_path,
                      SKYTERRA_GCE_METADATA_URL=f"{url}/computeMetadata/v1")
    assert result.returncode == 0, result.stderr
    marker = (tmp_path / ".skyterra" / "interruption").read_text()
    assert marker == "TRUE\n" and len(asked) == 2
    assert "preempting" in get_cloud("gcp").parse_interruption(marker)


def test_a_second_watcher_on_a_node_leaves_it_to_the_first(tmp_path):
    (tmp_path / ".skyterra").mkdir()
    (tmp_path / ".skyterra" / "interruption-watch.pid").write_text(str(os.getpid()))
    for script in (AWS_INTERRUPTION_WATCHER, GCP_INTERRUPTION_WATCHER):
        result = _run(script, tmp_path, SKYTERRA_IMDS_URL="http://127.0.0.1:9",
                      SKYTERRA_GCE_METADATA_URL="http://127.0.0.1:9")
        assert result.returncode == 0 and not (tmp_path / ".skyterra" / "interruption").exists()


def test_the_local_watcher_copies_the_nodes_notice(tmp_path):
    local = get_cloud("local")
    node = tmp_path / "node"
    (node / "metadata").mkdir(parents=True)
    (node / "metadata" / "preemption-notice").write_text("capacity reclaimed\n")
    result = _run(local.interruption_watcher(), tmp_path, SKYTERRA_NODE_ID=str(node))
    assert result.returncode == 0, result.stderr
    marker = (tmp_path / ".skyterra" / "interruption").read_text()
    assert local.parse_interruption(marker) == "local cloud preemption notice: capacity reclaimed"
    assert local.parse_interruption("") is None
