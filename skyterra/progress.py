"""How a launch reports what it is doing: plain lines, or one compact live view per phase.

Library code reports through a `progress` callable (one message per call), so
an SDK caller can pass `print`. A *reporter* is such a callable with optional
extras that library code reaches through the helpers below, never directly:

  detail(progress, line)            Terraform's and setup's own output: shown as
                                    a line by plain reporters, kept for the log by
                                    the live view (shown on failure, --verbose)
  terraform_event(progress, event)  one Terraform `-json` UI event (a dict)
  phase(progress, title, total)     a counted phase: .done(name) per item, .close()
  output_sink(progress, out)        where setup output goes

`Plain` prints lines (piped output, --json, --verbose); `Live` draws one rich
status line per phase on a terminal (resources created N/M, nodes answering
K/N, nodes done K/N with the slowest named) and keeps every detail line;
`Logged` copies everything into a log file (the cluster's provision.log, which
`skyterra logs --provision` prints) and passes it on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

Output = Callable[[str], None]
LOG_FILE = "provision.log"


# --- what library code calls -----------------------------------------------------------
def event_text(event: dict[str, Any]) -> str | None:
    """The whole text of a Terraform UI event for the log: a diagnostic with its detail."""
    text = event.get("@message")
    if event.get("type") == "diagnostic":
        more = (event.get("diagnostic") or {}).get("detail", "").strip()
        if more:
            text = f"{text}\n{more}"
    return text


def detail(progress: Output, line: str) -> None:
    getattr(progress, "detail", progress)(line)


def terraform_event(progress: Output, event: dict[str, Any], message: str | None) -> None:
    """One Terraform UI event; `message` is the line a plain reporter shows (or None)."""
    handler = getattr(progress, "terraform_event", None)
    if handler is not None:
        handler(event, message)
    elif message:
        progress(message)


def phase(progress: Output, title: str, total: int, unit: str = "nodes done") -> Phase:
    starter = getattr(progress, "phase", None)
    return starter(title, total, unit) if starter is not None else Phase(title, total, unit)


def output_sink(progress: Output, out: Output) -> Output:
    """Where setup output goes: `out` for plain callers, the reporter's choice otherwise."""
    chooser = getattr(progress, "output_sink", None)
    return chooser(out) if chooser is not None else out


class Phase:
    """A counted step (nodes answering, nodes synced, nodes set up). Thread-safe."""

    def __init__(self, title: str, total: int, unit: str = "nodes done",
                 names: list[str] | None = None):
        self.title, self.total, self.unit = title, total, unit
        self.started = time.monotonic()
        self.finished: list[str] = []
        self.pending = list(names or [])
        self._lock = threading.Lock()
        self.closed = False

    def done(self, name: str = "") -> None:
        with self._lock:
            self.finished.append(name)
            if name in self.pending:
                self.pending.remove(name)

    def expect(self, names: list[str]) -> None:
        """The items still to do, by name: the view names the slowest ones."""
        with self._lock:
            self.pending = [n for n in names if n not in self.finished]

    def close(self) -> None:
        self.closed = True

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        with self._lock:
            done, pending = len(self.finished), list(self.pending)
        text = f"{self.title}: {done}/{self.total} {self.unit} · {self.elapsed:.1f} s"
        if pending and done < self.total and len(pending) <= 3:
            text += f" · waiting for {', '.join(pending)}"
        elif pending and done < self.total:
            text += f" · waiting for {', '.join(pending[:2])} and {len(pending) - 2} more"
        return text

    def __enter__(self) -> Phase:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reporters -------------------------------------------------------------------------
class Plain:
    """Every message and every detail as a line (what piped output and --verbose show)."""

    def __init__(self, emit: Output):
        self.emit = emit

    def __call__(self, line: str) -> None:
        self.emit(line)

    def detail(self, line: str) -> None:
        self.emit(line)

    def close(self) -> None:
        """Nothing to tear down."""


class Live:
    """One live status line per phase on a terminal (rich), details kept for failures.

    Terraform: "provisioning: 3/8 resources created", from the plan's change
    summary and each apply_complete event. Counted phases: "waiting for SSH:
    12/16 nodes answering · waiting for worker3, worker9". A finished phase
    leaves one summary line; messages print above the live line.
    """

    def __init__(self, console: Any = None):
        from rich.console import Console
        from rich.live import Live as RichLive

        self.console = console or Console(stderr=True, highlight=False, markup=False)
        self.details: list[str] = []
        self._lock = threading.RLock()
        self._phase: Phase | None = None
        self._tf: Phase | None = None
        self._tf_verb = "created"
        self._live = RichLive(console=self.console, transient=True, refresh_per_second=8,
                              get_renderable=self._render, redirect_stdout=True,
                              redirect_stderr=False)  # job output prints above the line
        self._live.start()

    # reporter protocol
    def __call__(self, line: str) -> None:
        self.details.append(line)
        self._print(f"» {line}")

    def detail(self, line: str) -> None:
        with self._lock:
            self.details.append(line)

    def output_sink(self, out: Output) -> Output:
        return self.detail

    def phase(self, title: str, total: int, unit: str = "nodes done") -> Phase:
        reporter = self
        with self._lock:
            self._finish_terraform()

            class _Shown(Phase):
                def close(self) -> None:
                    if not self.closed:
                        super().close()
                        reporter._end_phase(self)

            self._phase = _Shown(title, total, unit)
            return self._phase

    def terraform_event(self, event: dict[str, Any], message: str | None) -> None:
        kind = event.get("type")
        with self._lock:
            text = event_text(event)
            if text:
                self.details.append(text)
            if kind == "change_summary":
                changes = event.get("changes", {})
                count = sum(int(changes.get(k, 0)) for k in ("add", "change", "remove"))
                if changes.get("operation") in ("plan", None) and self._tf is None:
                    destroying = changes.get("remove", 0) and not changes.get("add", 0)
                    self._tf_verb = "destroyed" if destroying else "done"
                    self._tf = Phase("provisioning", count, f"resources {self._tf_verb}")
                elif changes.get("operation") in ("apply", "destroy"):
                    self._finish_terraform()
            elif kind == "apply_complete" and self._tf is not None:
                self._tf.done(event.get("hook", {}).get("resource", {}).get("addr", ""))
            elif kind == "apply_start" and self._tf is not None:
                address = event.get("hook", {}).get("resource", {}).get("addr", "")
                self._tf.pending.append(address)
            elif kind in ("apply_errored", "provision_errored") and message:
                self._print(f"» {message}")

    def close(self) -> None:
        with self._lock:
            self._finish_terraform()
            if self._phase is not None and not self._phase.closed:
                self._phase.close()
        self._live.stop()

    def dump(self, stream: TextIO | None = None) -> None:
        """After a failure: every detail line (Terraform's and setup's output) in full."""
        self.close()
        if not self.details:
            return
        self.console.print("---- what the launch did (also in `skyterra logs --provision`) ----")
        for line in self.details:
            self.console.print(line)
        self.console.print("----")

    # drawing
    def _render(self) -> Any:
        from rich.spinner import Spinner

        with self._lock:
            current = self._tf or self._phase
            if current is None or current.closed:
                from rich.text import Text

                return Text("")
            return Spinner("dots", text=current.summary())

    def _print(self, line: str) -> None:
        if self._live.is_started:
            self._live.refresh()  # draw the current state, not the last frame, below the line
        self.console.print(line)

    def _end_phase(self, shown: Phase) -> None:
        with self._lock:
            if self._phase is shown:
                self._phase = None
        if shown.total:
            self._print(f"✔ {shown.summary()}")

    def _finish_terraform(self) -> None:
        if self._tf is not None:
            tf, self._tf = self._tf, None
            tf.pending = []
            if tf.total:
                self._print(f"✔ {tf.summary()}")


class Logged:
    """Copies every message, detail and Terraform event into a log file, and passes them on
    to the reporter it wraps (which decides what the user sees)."""

    def __init__(self, inner: Output, path: Path):
        self.inner = inner
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115
        path.chmod(0o600)
        self.log(f"# skyterra launch, {time.strftime('%Y-%m-%d %H:%M:%S')}")

    def log(self, line: str) -> None:
        """Into the file only."""
        with self._lock:
            if self._file is not None:
                stamp = time.strftime("%H:%M:%S")
                self._file.write(f"{stamp} {line}\n")
                self._file.flush()

    def __call__(self, line: str) -> None:
        self.log(line)
        self.inner(line)

    def detail(self, line: str) -> None:
        self.log(line)
        detail(self.inner, line)

    def terraform_event(self, event: dict[str, Any], message: str | None) -> None:
        text = event_text(event)
        if text and event.get("type") not in ("version",):
            self.log(text)
        terraform_event(self.inner, event, message)

    def phase(self, title: str, total: int, unit: str = "nodes done") -> Phase:
        self.log(f"{title}: {total} to do")
        return phase(self.inner, title, total, unit)

    def output_sink(self, out: Output) -> Output:
        inner = output_sink(self.inner, out)

        def sink(line: str) -> None:
            self.log(line)
            inner(line)
        return sink

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def for_terminal(emit: Output, *, verbose: bool = False, stream: Any = None) -> Output:
    """Live on an interactive terminal (not --verbose, TERM not dumb), else plain lines."""
    import os
    import sys

    stream = stream or sys.stderr
    interactive = stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb")
    if verbose or not interactive:
        return Plain(emit)
    return Live()
