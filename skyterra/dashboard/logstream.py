"""A job's log lines as server-sent events, from api.tail_logs.

tail_logs blocks (it follows every node over SSH until the job ends), so it
runs in a thread of its own; its lines cross to the event loop through an
asyncio queue. When the browser goes away, the next line makes the thread's
sink raise, which ends the SSH streams (a job that prints nothing holds its
thread until it ends or is cancelled).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

KEEPALIVE_S = 15.0
POLL_S = 0.25


class ClientGone(Exception):
    """Raised in the tail_logs thread once nobody reads its lines any more."""


def event(kind: str, data: Any) -> str:
    """One SSE message; data is JSON, so a line with \\r or a stray 'data:' stays one line."""
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def job_log_events(cluster_name: str, job_id: int, stopping: threading.Event
                         ) -> AsyncIterator[str]:
    """Events `line` (one per log line, node-prefixed), then one of `end` {status,
    exit_code}, `failure` {message} (the SDK's error) or `closed` (the server stops:
    set `stopping` and every stream ends within POLL_S, so shutdown does not wait)."""
    from skyterra import api
    from skyterra.errors import SkyterraError

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the server is shutting down: the loop is closed
            gone.set()

    def out(line: str) -> None:
        if gone.is_set():
            raise ClientGone
        put(("line", line))

    def work() -> None:
        try:
            code = api.tail_logs(cluster_name, job_id, follow=True, out=out)
            job = api.job_status(cluster_name, job_id)
            result = ("end", {"status": job.status, "exit_code": job.exit_code, "code": code})
        except BaseException as error:  # noqa: BLE001 - reported to the page, not raised
            if gone.is_set():
                return
            message = str(error) if isinstance(error, SkyterraError) else (
                f"streaming stopped: {type(error).__name__}: {error}")
            result = ("failure", {"message": message})
        put(result)

    threading.Thread(target=work, daemon=True, name=f"logs-{cluster_name}-{job_id}").start()
    quiet = 0.0
    try:
        while not stopping.is_set():
            try:
                kind, data = await asyncio.wait_for(queue.get(), POLL_S)
            except asyncio.TimeoutError:
                quiet += POLL_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                continue
            quiet = 0.0
            yield event(kind, data)
            if kind != "line":
                return
        yield event("closed", {"message": "the dashboard server is stopping."})
    finally:
        gone.set()
