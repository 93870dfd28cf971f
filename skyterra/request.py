"""SkyPilot-style request handles: `launch` returns at once, `stream_and_get` watches it.

The work runs in a background thread; its output lines are kept so that
`stream_and_get` can replay and follow them, and its exception is re-raised
in the caller's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Output = Callable[[str], None]


def print_line(line: str) -> None:
    """The default output of SDK calls: each line to stdout as it comes."""
    print(line, flush=True)


class Request:
    """A launch running in a background thread; its output is replayed by stream_and_get."""

    def __init__(self, work: Callable[[Output, Output], Any]):
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        self.result: Any | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _emit(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def _run(self, work: Callable[[Output, Output], Any]) -> None:
        try:
            self.result = work(self._emit, self._emit)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = error
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def lines(self):
        index = 0
        while True:
            with self._cond:
                while index >= len(self._lines) and not self._done:
                    self._cond.wait(0.5)
                batch = self._lines[index:]
                index = len(self._lines)
                finished = self._done and index >= len(self._lines)
            yield from batch
            if finished:
                return

    def get(self) -> Any:
        for _ in self.lines():
            pass
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def stream_and_get(request: Request, out: Output = print_line) -> tuple[int | None, Any]:
    """Print the request's output as it comes; return (job_id, handle) like SkyPilot."""
    for line in request.lines():
        out(line)
    result = request.get()
    return result.job_id, result


def get(request: Request) -> Any:
    """Wait for the request without printing its output; return its result (SkyPilot's sky.get)."""
    return request.get()
