"""Run things on a cluster's nodes over SSH: wait, sync, start, stream, stop.

Every command is an OpenSSH client process on the node's shared master
connection (connection.py), one thread per node (each node needs its own
environment: rank), at most a bounded number starting at once. Commands run
detached on the node (setsid nohup, pid and exit-code files), and the client
only streams their log with `tail --pid`, so Ctrl-C or a lost laptop never
kills a job. Every value that reaches a remote shell is
quoted with shlex.quote; scripts travel base64-encoded.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyterra import connection, relay
from skyterra import progress as reporting
from skyterra.cluster import Cluster, Node
from skyterra.errors import (
    HostKeyMismatchError,
    MissingToolError,
    NodeUnreachableError,
    SkyterraError,
)

JOBS_DIR = ".skyterra/jobs"      # on each node, relative to the login home
WORKDIR = "sky_workdir"
Sink = Callable[[str], None]
TRAILER_MARK = "\x1fskyterra-rc:"   # ends a followed log: the job's exit code comes after it
_print_lock = threading.Lock()


def host_key_error(cluster: Cluster, node: Node, changed: bool) -> HostKeyMismatchError:
    """One paragraph: which node, why we stop, and the two ways forward."""
    where = f"{node.name} ({node.ip}:{cluster.ssh_port}) of cluster '{cluster.name}'"
    pinned = cluster.known_hosts or "the cluster's known_hosts"
    if changed:
        what = (f"{where} answered with a different SSH host key than the one skyterra "
                f"pinned when the cluster was launched ({pinned})")
    else:
        what = f"{where} has no pinned SSH host key in {pinned}"
    return HostKeyMismatchError(
        f"{what}. skyterra refuses to connect: someone could be intercepting the "
        "connection. If you know why the key changed (the node was re-created outside "
        f"skyterra), delete the line for {_known_host_name(cluster, node)} from that file and "
        f"run `skyterra launch -c {cluster.name} TASK.yaml` to pin the node's new key; "
        f"otherwise remove the cluster with `skyterra destroy {cluster.name}`.")


def _raise_for_host_key(cluster: Cluster, node: Node, ssh_stderr: str) -> None:
    """OpenSSH's host-key failures (from ssh or rsync -e ssh) → HostKeyMismatchError."""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in ssh_stderr:
        raise host_key_error(cluster, node, changed=True)
    if "Host key verification failed" in ssh_stderr:
        raise host_key_error(cluster, node, changed=False)


class PrefixWriter:
    """A file-like stream that emits whole lines with a node prefix."""

    def __init__(self, prefix: str, sink: Sink):
        self.prefix = prefix
        self.sink = sink
        self._buffer = ""
        self.trailer: str | None = None   # what follows TRAILER_MARK (see follow_log)

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        if TRAILER_MARK in line:
            line, self.trailer = line.rsplit(TRAILER_MARK, 1)
            if not line:
                return
        self.sink(f"{self.prefix} {line}".rstrip())

    def flush(self) -> None:
        """Nothing: a chunk may end mid-line; emitting it would split one long line."""

    def finish(self) -> None:
        """The command ended: emit a last line that had no newline."""
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = ""


def export_lines(env: dict[str, str]) -> str:
    """`export K='v'` lines; keys are validated names, values always quoted."""
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))


def _ssh_options(cluster: Cluster) -> list[str]:
    known = ["-o", f"UserKnownHostsFile={cluster.known_hosts}", "-o",
             "StrictHostKeyChecking=yes"] if cluster.known_hosts else [
             "-o", "StrictHostKeyChecking=accept-new"]
    return ["-F", "/dev/null", "-i", str(cluster.ssh_key), "-p", str(cluster.ssh_port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR", *known]


def ssh_command(cluster: Cluster, node: Node | None = None) -> str:
    """The `ssh ...` string for rsync -e (each word quoted); with a node, over its master."""
    mux = NodeShell(cluster, node).mux_options() if node is not None else []
    return " ".join(shlex.quote(word) for word in ["ssh", *_ssh_options(cluster), *mux])


@dataclasses.dataclass
class CommandResult:
    """What a remote command did (the exit code of the remote shell and its output)."""

    return_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.return_code == 0

    @property
    def exited(self) -> int:
        return self.return_code


class NodeShell:
    """Commands on one node through the OpenSSH client, over the node's shared master
    connection (connection.py): host key pinned, our SSH options only, values quoted.

    ssh's own failures (exit 255: unreachable, refused, auth) raise
    NodeUnreachableError, host-key failures HostKeyMismatchError; a remote command's
    exit code is returned, never raised.
    """

    def __init__(self, cluster: Cluster, node: Node):
        self.node = node
        self.cluster = cluster
        self._ssh_dir = connection.cluster_ssh_dir(cluster.known_hosts, cluster.ssh_key)

    def argv(self, command: str) -> list[str]:
        """The ssh command line that runs `command` (a shell string) on the node."""
        cluster, node = self.cluster, self.node
        return ["ssh", *_ssh_options(cluster), *self.mux_options(),
                f"{cluster.ssh_user}@{node.ip}", command]

    def _pinned(self) -> str:
        pins = connection.pinned_keys(self.cluster.known_hosts)
        return pins.get(_known_host_name(self.cluster, self.node), "")

    def mux_options(self) -> list[str]:
        return connection.mux_options(self._ssh_dir, self.cluster.ssh_user, self.node.ip,
                                      self.cluster.ssh_port, self._pinned())

    def env(self) -> dict[str, str]:
        return connection.mux_env(self._ssh_dir)

    def run(self, command: str, *, out: PrefixWriter | None = None, timeout: float | None = None,
            in_stream: object | None = None) -> CommandResult:
        """Run with bash semantics; a non-zero exit is returned, not raised.

        in_stream: text (or a file-like object) fed to the command's stdin (then EOF);
        data that must not show in the node's process list (secrets) travels this way.
        out: stream stdout and stderr line by line (with the node prefix) as they come.
        """
        data = in_stream.read() if hasattr(in_stream, "read") else in_stream
        relayed = _relay_round_of(self)
        if relayed is not None:
            result = relayed.call(self.node, command, data, out, timeout)
            if result.return_code == 255:
                self._raise_for_ssh(result.stderr, via=self.cluster.head)
            return result
        if out is not None and not self._master_alive():
            self.open()  # connect first, so ssh's own errors never mix into the stream
        if out is None:
            result = self._captured(command, data, timeout)
        else:
            result = self._streamed(command, data, out, timeout)
        if result.return_code == 255:
            self._raise_for_ssh(result.stderr)
        return result

    def _captured(self, command: str, data: object, timeout: float | None) -> CommandResult:
        connection.ensure_socket_dir(self._ssh_dir)
        try:
            done = subprocess.run(self.argv(command), input=data if data is not None else None,
                                  stdin=None if data is not None else subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout,
                                  env=self.env(), check=False)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.node.name}: command timed out after {timeout} s"
                               ) from None
        except FileNotFoundError:
            raise MissingToolError("ssh is not installed; install the OpenSSH client "
                                   "(Debian: apt-get install openssh-client).") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def _streamed(self, command: str, data: object, out: PrefixWriter,
                  timeout: float | None) -> CommandResult:
        connection.ensure_socket_dir(self._ssh_dir)
        process = subprocess.Popen(self.argv(command), env=self.env(), text=True,
                                   stdin=subprocess.PIPE if data is not None
                                   else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        try:
            if data is not None:
                process.stdin.write(str(data))
                process.stdin.close()
            for line in process.stdout:
                out.write(line)
            process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            out.finish()
        return CommandResult(process.returncode)

    def _master_alive(self) -> bool:
        return connection.control_path(self._ssh_dir, self.cluster.ssh_user, self.node.ip,
                                       self.cluster.ssh_port, self._pinned()).is_socket()

    def _raise_for_ssh(self, stderr: str, via: Node | None = None) -> None:
        """Exit 255 is ssh's own: host key, refused, unreachable, authentication."""
        _raise_for_host_key(self.cluster, self.node, stderr)
        reason = (stderr.strip().splitlines() or ["ssh failed (exit code 255)"])[-1]
        path = "over SSH" if via is None or via.rank == self.node.rank else (
            f"over SSH from the head ({via.private_ip}, through which commands to this "
            f"{len(self.cluster.nodes)}-node cluster go)")
        ip = self.node.ip if via is None else self.node.private_ip
        raise NodeUnreachableError(f"cannot reach {self.node.name} ({ip}:{self.cluster.ssh_port})"
                                   f" of cluster '{self.cluster.name}' {path}: {reason}")

    def open(self) -> NodeShell:
        """Connect now: checks reachability and the host key. A live master connection
        (checked once, when it connected) counts as connected: no round trip. In a round
        that goes through the head, the head connects (one `true` per node, batched)."""
        if _relay_round_of(self) is not None:
            self.run("true")
            return self
        if self._master_alive():
            return self
        result = self._captured("true", None, 60)
        if result.return_code != 0:
            self._raise_for_ssh(result.stderr)
        return self

    def close(self) -> None:
        """Nothing: the master connection stays for the next command (connection.py)."""


@dataclasses.dataclass
class NodeResults:
    """What one action did on each node: the values of the nodes where it worked and the
    errors of the others. Errors are never values: a caller reads `failed` or calls
    `raise_first`, and cannot mistake a failed node for a result."""

    cluster: Cluster
    succeeded: dict[int, Any]
    failed: dict[int, BaseException]

    @property
    def ok(self) -> bool:
        return not self.failed

    def failed_nodes(self) -> list[Node]:
        return [self.cluster.nodes[rank] for rank in sorted(self.failed)]

    def raise_first(self, what: str) -> None:
        """Raise for the lowest-ranked failed node: Ctrl-C and host-key errors as they
        are, anything else as a SkyterraError that names the node and what failed."""
        for rank, error in sorted(self.failed.items()):
            if isinstance(error, (KeyboardInterrupt, SystemExit, HostKeyMismatchError)):
                raise error
        for node in self.failed_nodes():
            raise SkyterraError(f"could not {what} on {node.name} ({node.ip}) of cluster "
                                f"'{self.cluster.name}': {self.failed[node.rank]}. Check the "
                                "node with `skyterra status`; `skyterra launch` again repairs "
                                "dead nodes.")


def parallelism() -> int:
    """How many ssh clients may start at once: enough to hide network latency, few enough
    that 128 nodes' handshakes do not starve a small machine (SKYTERRA_SSH_PARALLELISM)."""
    configured = os.environ.get("SKYTERRA_SSH_PARALLELISM", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(8, 8 * (os.cpu_count() or 1))


def for_each_node(cluster: Cluster, action: Callable[[Node], Any],
                  nodes: list[Node] | None = None, *, limit: int | None = None,
                  on_done: Callable[[Node], None] | None = None,
                  direct: bool = False) -> NodeResults:
    """Run `action(node)` in one daemon thread per node; collect values and errors.

    At most `limit` actions run at once (default: parallelism(); 0 = no limit, for
    long-lived streams). on_done(node) is called as each node finishes (progress).
    Daemon threads: if the user presses Ctrl-C the main thread leaves at once
    and no thread keeps the process alive.

    Above relay_threshold() nodes (and unless `direct`), the commands the actions run
    on their own node (NodeShell.run) go through the head in batches (_RelayRound):
    the actions and the NodeResults are the same, the limit applies on the head.
    """
    results = NodeResults(cluster, {}, {})
    chosen = cluster.nodes if nodes is None else nodes
    relayed = None if direct else _relay_round(cluster, chosen, limit)
    limit = 0 if relayed is not None else parallelism() if limit is None else limit
    gate = threading.BoundedSemaphore(limit) if limit > 0 else None

    def target(node: Node) -> None:
        _thread.round, _thread.rank = relayed, node.rank
        try:
            if gate is not None:
                gate.acquire()
            try:
                results.succeeded[node.rank] = action(node)
            finally:
                if gate is not None:
                    gate.release()
                if relayed is not None:
                    relayed.finished()
        except BaseException as error:  # noqa: BLE001 - reported to the caller per node
            results.failed[node.rank] = error
        if on_done is not None:
            try:
                on_done(node)
            except Exception:  # noqa: BLE001,S110 - a progress display must not fail the work
                pass

    threads = [threading.Thread(target=target, args=(node,), daemon=True) for node in chosen]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    return results


# --- fan-out through the head (relay.py) ------------------------------------------------
RELAY_ENV = "SKYTERRA_RELAY_THRESHOLD"
_thread = threading.local()        # .round, .rank: the relay round of an action's thread
_install_locks: dict[str, threading.Lock] = {}


def relay_threshold(cluster: Cluster | None = None) -> int | None:
    """Rounds over more nodes than this go through the head: SKYTERRA_RELAY_THRESHOLD (a
    number, or `off`), else the cluster's cloud's own (Cloud.relay_threshold: 32 on the
    clouds, where the client is far from the nodes and the head near them; never on the
    local cloud, whose head shares this machine's cores with the client: bench/RESULTS.md
    has both ways at 128 nodes). None: never."""
    configured = os.environ.get(RELAY_ENV, "").strip().lower()
    if configured in ("off", "no", "none", "false"):
        return None
    if configured.isdigit():
        return int(configured)
    if cluster is not None and cluster.cloud:
        from skyterra.clouds import MODULES, get_cloud

        if cluster.cloud in MODULES:
            return get_cloud(cluster.cloud).relay_threshold
    return 32


def _relay_round(cluster: Cluster, nodes: list[Node], limit: int | None) -> _RelayRound | None:
    threshold = relay_threshold(cluster)
    if threshold is None or len(nodes) <= threshold or len(cluster.nodes) < 2:
        return None
    if not cluster.known_hosts or not connection.pinned_keys(cluster.known_hosts):
        return None  # the head checks the workers' host keys against ours: none pinned yet
    return _RelayRound(cluster, {n.rank for n in nodes},
                       parallelism() if not limit else limit)


def _relay_round_of(shell: NodeShell) -> _RelayRound | None:
    """The relay round of this thread, if the shell is for the thread's own node."""
    relayed = getattr(_thread, "round", None)
    if relayed is None or getattr(_thread, "rank", None) != shell.node.rank:
        return None
    return relayed if relayed.cluster is shell.cluster else None


@dataclasses.dataclass
class _Call:
    node: Node
    command: str
    data: str | None
    out: PrefixWriter | None
    timeout: float | None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: CommandResult | None = None
    error: BaseException | None = None


class _RelayRound:
    """The commands of one for_each_node round, sent to the head in batches.

    Each action's thread hands its command to `call` and waits. When every action
    still running is waiting (none could add a command soon), the pending commands go
    to the head as one request; each thread wakes as its node's result arrives, so a
    node that finishes early is seen early (a failed rank stops the others at once).
    An action that runs a second command makes the next batch.
    """

    def __init__(self, cluster: Cluster, ranks: set[int], parallel: int):
        self.cluster, self.ranks, self.parallel = cluster, ranks, parallel
        self._cond = threading.Condition()
        self._live = len(ranks)       # actions that have not returned
        self._waiting = 0             # actions inside call()
        self._pending: list[_Call] = []

    def call(self, node: Node, command: str, data: object, out: PrefixWriter | None,
             timeout: float | None) -> CommandResult:
        call = _Call(node, command, None if data is None else str(data), out, timeout)
        with self._cond:
            self._pending.append(call)
            self._waiting += 1
            self._flush_if_ready()
        call.done.wait()
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def finished(self) -> None:
        with self._cond:
            self._live -= 1
            self._flush_if_ready()

    def _flush_if_ready(self) -> None:
        if self._pending and self._waiting >= self._live:
            batch, self._pending = self._pending, []
            for stream in (False, True):
                part = [c for c in batch if (c.out is not None) == stream]
                if part:
                    threading.Thread(target=self._send, args=(part, stream),
                                     daemon=True).start()

    def _settle(self, call: _Call, result: CommandResult | None = None,
                error: BaseException | None = None) -> None:
        if call.done.is_set():
            return
        call.result, call.error = result, error
        if call.out is not None:
            call.out.finish()
        with self._cond:
            self._waiting -= 1
        call.done.set()

    def _send(self, calls: list[_Call], stream: bool) -> None:
        try:
            _relay_batch(self.cluster, calls, self.parallel, stream, self._settle)
        except BaseException as error:  # noqa: BLE001 - every waiting action gets it
            for call in calls:
                self._settle(call, error=error)
        for call in calls:  # an agent that ended early: name the nodes left without result
            self._settle(call, error=NodeUnreachableError(
                f"the relay on the head of cluster '{self.cluster.name}' ended without a "
                f"result for {call.node.name} ({call.node.private_ip}); run the command "
                f"again, or with {RELAY_ENV}=off to reach every node directly."))


def _private_name(cluster: Cluster, node: Node) -> str:
    ip = node.private_ip
    return ip if cluster.ssh_port == 22 else f"[{ip}]:{cluster.ssh_port}"


def private_known_hosts(cluster: Cluster, nodes: list[Node]) -> str:
    """known_hosts lines for `nodes` under the addresses the nodes reach each other on
    (their private IPs), from the host keys pinned when the cluster came up."""
    return relay.head_known_hosts(
        connection.pinned_keys(cluster.known_hosts),
        [(_known_host_name(cluster, n), _private_name(cluster, n)) for n in nodes])


def _relay_version(cluster: Cluster) -> str:
    """Make sure the head has the agent, the relay key and the workers' host keys; the
    version (digest) names the agent's directory there. Once per set of nodes. (Workers
    that do not trust the relay key yet are authorized when the head is refused:
    _authorize_relay.)"""
    ssh_dir = connection.cluster_ssh_dir(cluster.known_hosts, cluster.ssh_key)
    with _install_locks.setdefault(str(ssh_dir), threading.Lock()):
        public, private = relay.ensure_key(ssh_dir, f"skyterra-relay-{cluster.name}")
        known = private_known_hosts(cluster, cluster.nodes[1:])
        agent = relay.agent_source()
        version = relay.digest(agent, public, known)
        if relay.installed(ssh_dir, version):
            return version
        head = NodeShell(cluster, cluster.head)
        result = head.run(relay.install_command(version),
                          in_stream=relay.install_payload(agent, private.read_text(), known))
        if result.return_code == 127:
            raise MissingToolError(f"the head of cluster '{cluster.name}' has no python3, "
                                   "which fanning out through the head needs; install it there, "
                                   f"or set {RELAY_ENV}=off to reach every node directly.")
        if not result.ok:
            raise NodeUnreachableError(f"could not install the relay on the head of cluster "
                                       f"'{cluster.name}': {result.stderr.strip()}")
        relay.mark_installed(ssh_dir, version)
        return version


def _authorize_relay(cluster: Cluster, nodes: list[Node]) -> None:
    """Authorize the relay key on workers that refused the head (a cloud whose nodes did
    not get it at boot, or a node added since): directly, once. Best effort: a worker that
    cannot be reached now fails, named, when its command is sent again."""
    ssh_dir = connection.cluster_ssh_dir(cluster.known_hosts, cluster.ssh_key)
    public, _private = relay.ensure_key(ssh_dir, f"skyterra-relay-{cluster.name}")
    line = relay.authorized_line(public, cluster.head.private_ip) + "\n"
    command = relay.add_lines_command("authorized_keys")
    for_each_node(cluster, lambda n: NodeShell(cluster, n).run(command, in_stream=line), nodes,
                  direct=True)


def _relay_batch(cluster: Cluster, calls: list[_Call], parallel: int, stream: bool,
                 settle: Callable[..., None]) -> None:
    """One request to the head's agent for `calls`; settle each as its result arrives.
    Workers that refuse the relay key are authorized and their commands sent again (the
    command never started there: ssh's authentication comes first)."""
    refused: list[_Call] = []

    def settle_or_retry(call: _Call, result: CommandResult | None = None,
                        error: BaseException | None = None) -> None:
        if (result is not None and result.return_code == 255 and not refused_once
                and "Permission denied" in result.stderr and call.node.rank != 0):
            refused.append(call)
            return
        settle(call, result, error)

    refused_once = False
    _relay_send(cluster, calls, parallel, stream, settle_or_retry)
    if refused:
        refused_once = True
        _authorize_relay(cluster, [call.node for call in refused])
        _relay_send(cluster, refused, parallel, stream, settle_or_retry)


def _relay_send(cluster: Cluster, calls: list[_Call], parallel: int, stream: bool,
                settle: Callable[..., None]) -> None:
    head = NodeShell(cluster, cluster.head)
    for attempt in (1, 2):
        version = _relay_version(cluster)
        nodes = [{"rank": index, "cmd": call.command, "stdin": call.data,
                  "timeout": call.timeout,
                  "host": "" if call.node.rank == cluster.head.rank
                  else f"{cluster.ssh_user}@{call.node.private_ip}"}
                 for index, call in enumerate(calls)]
        text = relay.request(version, cluster.ssh_port, cluster.head.private_ip, nodes,
                             parallel=parallel, stream=stream)
        code, stderr, seen = _run_agent(head, relay.run_command(version), text, calls, settle)
        if code == relay.MISSING and not seen and attempt == 1:
            relay.mark_installed(head._ssh_dir, None)  # the head lost it (replaced): again
            continue
        if code == 255 and not seen:
            head._raise_for_ssh(stderr)
        return


def _run_agent(head: NodeShell, command: str, request: str, calls: list[_Call],
               settle: Callable[..., None]) -> tuple[int, str, bool]:
    """Run the agent on the head, dispatch its events: (exit code, stderr, any event seen)."""
    connection.ensure_socket_dir(head._ssh_dir)
    process = subprocess.Popen(head.argv(command), env=head.env(), text=True, bufsize=1,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    seen = False
    try:
        process.stdin.write(request)
        process.stdin.close()
        for line in process.stdout:
            event = relay.parse(line)
            if event is None or not 0 <= event["r"] < len(calls):
                continue
            seen = True
            call = calls[event["r"]]
            if "o" in event and call.out is not None:
                call.out.write(str(event["o"]))
            elif "rc" in event:
                if event["rc"] is None:
                    settle(call, error=TimeoutError(f"{call.node.name}: command timed out "
                                                    f"after {call.timeout} s"))
                else:
                    settle(call, CommandResult(int(event["rc"]), str(event.get("so", "")),
                                               str(event.get("se", ""))))
        process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise
    reader.join(5)
    return process.returncode, "".join(errors), seen


# --- first contact ---------------------------------------------------------------------
def pin_host_keys(cluster: Cluster, timeout: float = 120.0,
                  progress: Sink | None = None, known: dict[int, str] | None = None) -> None:
    """Wait until every node answers SSH, recording its host key (trust on first use).

    Later connections require exactly that key: a node that changes its key
    is refused instead of silently trusted. `known`: known_hosts lines by rank that
    the cloud knows first-hand (Cloud.host_key_lines); a line for the node's own
    address is pinned as it is, without a scan.
    """
    if cluster.known_hosts is None:
        raise ValueError("pin_host_keys needs cluster.known_hosts")
    if not _which("ssh-keyscan"):
        raise MissingToolError("ssh-keyscan is not installed; install the OpenSSH client "
                               "(Debian: apt-get install openssh-client).")
    pinned = _pinned_names(cluster)
    wanted = [n for n in cluster.nodes if _known_host_name(cluster, n) not in pinned]
    with reporting.phase(progress or (lambda line: None), "waiting for SSH", len(wanted),
                         "nodes answering") as shown:
        shown.expect([n.name for n in wanted])
        found = for_each_node(cluster, lambda node: _given_or_scanned(cluster, node, known,
                                                                      timeout),
                              wanted, on_done=lambda node: shown.done(node.name))
    for error in found.failed.values():
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise error
    failed = found.failed_nodes()
    if failed:
        names = ", ".join(f"{n.name} ({n.ip}:{cluster.ssh_port})" for n in failed)
        raise NodeUnreachableError(
            f"node {names} of cluster '{cluster.name}' did not answer SSH within "
            f"{timeout:.0f} s. Check that the node is running and that port "
            f"{cluster.ssh_port} is reachable from here; `skyterra launch` again repairs a "
            f"dead node, `skyterra destroy {cluster.name}` removes the cluster.")
    lines = "".join(str(found.succeeded[n.rank]) for n in wanted)
    cluster.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    with open(cluster.known_hosts, "a") as handle:
        handle.write(lines)
    cluster.known_hosts.chmod(0o600)


def _pinned_names(cluster: Cluster) -> set[str]:
    """Host names that have a line in the cluster's known_hosts (first field, exact)."""
    if not cluster.known_hosts or not cluster.known_hosts.exists():
        return set()
    names: set[str] = set()
    for line in cluster.known_hosts.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.update(line.split(" ", 1)[0].split(","))
    return names


def _known_host_name(cluster: Cluster, node: Node) -> str:
    return node.ip if cluster.ssh_port == 22 else f"[{node.ip}]:{cluster.ssh_port}"


def _given_or_scanned(cluster: Cluster, node: Node, known: dict[int, str] | None,
                      timeout: float) -> str:
    line = (known or {}).get(node.rank, "")
    if line.split(" ", 1)[0] == _known_host_name(cluster, node) and len(line.split()) >= 3:
        return line + "\n"
    return _keyscan(cluster, node, timeout)


def _keyscan(cluster: Cluster, node: Node, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        result = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p",
                                 str(cluster.ssh_port), node.ip],
                                check=False, capture_output=True, text=True)
        lines = [line for line in result.stdout.splitlines()
                 if line and not line.startswith("#")]
        if lines:
            return "\n".join(lines) + "\n"
        if time.monotonic() > deadline:
            raise TimeoutError(node.ip)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def forget_host_keys(cluster: Cluster, nodes: list[Node]) -> None:
    """Drop pinned keys of replaced nodes (a new instance has a new host key)."""
    if not cluster.known_hosts or not cluster.known_hosts.exists():
        return
    names = {_known_host_name(cluster, n) for n in nodes}
    kept = [line for line in cluster.known_hosts.read_text().splitlines(keepends=True)
            if line.split(" ", 1)[0] not in names]
    cluster.known_hosts.write_text("".join(kept))


def probe(cluster: Cluster, timeout: float = 5.0) -> list[Node]:
    """Nodes that do not answer SSH right now (used to repair a cluster).

    Two checks per node: the node's sshd still accepts a new TCP connection and
    greets with an SSH banner (a live master connection alone would hide a node
    whose sshd died), then a command over the shared master (authenticates and
    checks the host key on a first connection; reused afterwards).
    """
    def check(node: Node) -> bool:
        if not _answers_banner(node.ip, cluster.ssh_port, timeout):
            return False
        shell = NodeShell(cluster, node)
        connection.ensure_socket_dir(shell._ssh_dir)
        try:
            result = subprocess.run(["ssh", *_ssh_options(cluster), "-o",
                                     f"ConnectTimeout={int(timeout)}", *shell.mux_options(),
                                     f"{cluster.ssh_user}@{node.ip}", "true"],
                                    check=False, capture_output=True, text=True,
                                    timeout=timeout + 10, env=shell.env(),
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
        if result.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr:
            raise host_key_error(cluster, node, changed=True)
        if result.returncode != 0 and "Host key verification failed" in result.stderr:
            return True  # it answers; its key is not pinned yet (pin_host_keys does that)
        return result.returncode == 0
    alive = for_each_node(cluster, check)
    for rank in sorted(alive.failed):
        if isinstance(alive.failed[rank], HostKeyMismatchError):
            raise alive.failed[rank]  # a node that answers with another key is not "dead"
    return [n for n in cluster.nodes if alive.succeeded.get(n.rank) is not True]


def _answers_banner(ip: str, port: int, timeout: float) -> bool:
    """A new TCP connection to the node's sshd gets an `SSH-` greeting."""
    import socket

    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def close_connections(cluster: Cluster, nodes: list[Node] | None = None) -> None:
    """End the shared master connections of the cluster (or of some of its nodes)."""
    ssh_dir = connection.cluster_ssh_dir(cluster.known_hosts, cluster.ssh_key)
    if nodes is None:
        connection.close(ssh_dir)
        return
    for node in nodes:
        connection.close_node(ssh_dir, cluster.ssh_user, node.ip, cluster.ssh_port,
                              NodeShell(cluster, node)._pinned())


# --- files -----------------------------------------------------------------------------
def rsync_to_nodes(cluster: Cluster, source: Path, destination: str, *,
                   on_done: Callable[[Node], None] | None = None) -> None:
    """rsync a local file or directory to `destination` on every node, in parallel.

    Directories honour .gitignore (like SkyPilot) and skip .git. on_done(node) is
    called as each node finishes (progress).
    """
    if not _which("rsync"):
        raise MissingToolError("rsync is not installed; install it (Debian: apt-get install "
                               "rsync) on this machine and on the nodes.")
    is_dir = source.is_dir()
    src = str(source) + ("/" if is_dir else "")
    filters = ["--filter=:- .gitignore", "--exclude=.git"] if is_dir else []
    target_path = _rsync_path_arg(destination)
    parent = destination.rstrip("/").rsplit("/", 1)[0] if "/" in destination.rstrip("/") else ""
    rsync_path = (f"mkdir -p {_remote_path(parent)} && rsync" if parent else "rsync")

    def push(node: Node) -> None:
        target = f"{cluster.ssh_user}@{node.ip}:{target_path}" + ("/" if is_dir else "")
        # -s (--protect-args): file names travel inside rsync's protocol, never through
        # the remote shell, so spaces, quotes, `$(...)` and `;` are just characters.
        shell = NodeShell(cluster, node)
        connection.ensure_socket_dir(shell._ssh_dir)
        result = subprocess.run(["rsync", "-a", "-s", "--partial", *filters, "-e",
                                 ssh_command(cluster, node), f"--rsync-path={rsync_path}", "--",
                                 src, target], check=False, capture_output=True, text=True,
                                env=shell.env())
        if result.returncode != 0:
            _raise_for_host_key(cluster, node, result.stderr)
            raise RuntimeError(result.stderr.strip().splitlines()[-1:] or ["rsync failed"])

    pushed = for_each_node(cluster, push, on_done=on_done)
    if not pushed.ok:
        node = pushed.failed_nodes()[0]
        error = pushed.failed[node.rank]
        if isinstance(error, (HostKeyMismatchError, KeyboardInterrupt)):
            raise error
        raise NodeUnreachableError(f"copying {source} to {node.name} ({node.ip}) of cluster "
                                   f"'{cluster.name}' failed: {error}. Check the node is up "
                                   "(`skyterra status`) and that rsync exists on it.")


def _remote_path(path: str) -> str:
    """Quote a remote path for the remote shell, keeping a leading ~/ expandable."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _rsync_path_arg(path: str) -> str:
    """A remote path as rsync -s wants it: no shell, so `~/x` becomes `x` (relative paths
    are relative to the login home, where sshd starts the remote rsync)."""
    if path in ("~", "~/"):
        return "."
    if path.startswith("~/"):
        path = path[2:].lstrip("/") or "."
    return path


# --- detached commands (see jobs.py for the job records) -------------------------------
def job_dir(job_key: str) -> str:
    return f"{JOBS_DIR}/{job_key}"


def start_detached(shell: NodeShell, job_key: str, script: str, env: dict[str, str]) -> str:
    """Start `script` detached in its own session on the node; return its pid.

    job.sh sources env.sh (and deletes it: secrets are not left on the node's disk),
    runs the user's script with bash in ~/sky_workdir and writes its exit code to
    `rc`, so the result survives the client. The files travel on stdin.
    """
    directory = job_dir(job_key)
    launcher = ("cd \"$HOME\"\n"
                f"mkdir -p {WORKDIR} && cd {WORKDIR}\n"
                f". \"$HOME\"/{directory}/env.sh\n"
                # sourced once: the values (secrets too) live on in the job's
                # environment only, not in a file on the node's disk
                f"rm -f \"$HOME\"/{directory}/env.sh\n"
                f"bash \"$HOME\"/{directory}/user.sh\n"
                "code=$?\n"
                f"echo $code > \"$HOME\"/{directory}/rc.tmp && "
                f"mv \"$HOME\"/{directory}/rc.tmp \"$HOME\"/{directory}/rc\n")
    files = {"env.sh": export_lines(env), "user.sh": script, "job.sh": launcher}
    # The files travel on stdin, one base64 line each, and are decoded by shell builtins
    # plus base64: nothing of them (secrets in env.sh!) shows in the node's process list.
    payload = "".join(base64.b64encode(text.encode()).decode() + "\n"
                      for text in files.values())
    reads = " && ".join(f"IFS= read -r {name.replace('.', '_')}" for name in files)
    writes = " && ".join(f"printf '%s' \"${name.replace('.', '_')}\" | base64 -d > {name}"
                         for name in files)
    command = (f"mkdir -p {directory} && chmod 700 {JOBS_DIR} && cd {directory} && "
               f"umask 077 && {reads} && {writes} && rm -f rc && "
               "{ setsid nohup bash job.sh > log 2>&1 < /dev/null & } && echo $! > pid "
               "&& cat pid")
    result = shell.run(command, in_stream=payload)
    if not result.ok:
        raise RuntimeError(f"could not start the command: {result.stderr.strip()}")
    return result.stdout.strip()


def stream_log(shell: NodeShell, job_key: str, writer: PrefixWriter, follow: bool = True,
               tail: int | None = None) -> None:
    """Print the node's log; with follow, until the detached process exits."""
    directory = job_dir(job_key)
    start = f"-n {int(tail)}" if tail is not None else "-n +1"
    if follow:
        # tail stops when a watcher ends: the job wrote rc, or its process is gone. (A
        # finished job can linger as a zombie where init reaps slowly, so --pid=JOB
        # alone could wait long; tail --pid still reads the log to its end.)
        command = (f"cd {directory} && touch log && pid=$(cat pid 2>/dev/null || echo 0); "
                   "( while [ ! -f rc ] && kill -0 \"$pid\" 2>/dev/null && "
                   "! grep -qs '^[0-9]* (.*) Z' /proc/\"$pid\"/stat; do sleep 0.1; done ) & "
                   f"tail --pid=$! {start} -s 0.1 -F log 2>/dev/null")
    else:
        command = f"cd {directory} && tail {start} log 2>/dev/null"
    shell.run(command, out=writer)


def follow_log(shell: NodeShell, job_key: str, writer: PrefixWriter) -> int | None:
    """stream_log(follow=True), then the exit code, in one session (None: no rc file).

    The code travels after TRAILER_MARK at the end of the stream, so following a
    job costs one round trip per node instead of two.
    """
    directory = job_dir(job_key)
    # The watcher polls fast at first (a short job ends within milliseconds) and backs
    # off to 0.1 s; tail checks the watcher every 20 ms (a syscall, no process).
    command = (f"cd {directory} && touch log && pid=$(cat pid 2>/dev/null || echo 0); "
               "( d=0.005; while [ ! -f rc ] && kill -0 \"$pid\" 2>/dev/null && "
               "! grep -qs '^[0-9]* (.*) Z' /proc/\"$pid\"/stat; do sleep $d; "
               "case $d in 0.005) d=0.01;; 0.01) d=0.02;; 0.02) d=0.05;; *) d=0.1;; esac; "
               "done ) & "
               "tail --pid=$! -n +1 -s 0.02 -F log 2>/dev/null; "
               f"printf '{TRAILER_MARK}%s\\n' \"$(cat rc 2>/dev/null)\"")
    writer.trailer = None
    shell.run(command, out=writer)
    text = (writer.trailer or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def job_state(shell: NodeShell, job_key: str) -> tuple[int | None, bool]:
    """(exit code or None, whether a live process is left in the job's session), in one
    round trip. The session is looked at before the exit code: the job's wrapper writes
    its rc file before it exits, so a session seen gone always has its code written (the
    other order could see no code yet, then no process, and call a finished job killed)."""
    directory = job_dir(job_key)
    result = shell.run(f"if pid=$(cat {directory}/pid 2>/dev/null) && "
                       "ps -o stat= --sid $pid 2>/dev/null | grep -qv '^Z'; "
                       "then echo running; else echo stopped; fi; "
                       f"cat {directory}/rc 2>/dev/null")
    lines = result.stdout.splitlines()
    text = lines[1].strip() if len(lines) > 1 else ""
    code = int(text) if text.lstrip("-").isdigit() else None
    return code, bool(lines) and lines[0].strip() == "running"


def read_exit_code(shell: NodeShell, job_key: str) -> int | None:
    """The exit code, or None while running (or if it was killed before writing one)."""
    result = shell.run(f"cat {job_dir(job_key)}/rc 2>/dev/null")
    text = result.stdout.strip()
    return int(text) if text.lstrip("-").isdigit() else None


def is_running(shell: NodeShell, job_key: str) -> bool:
    """Any live (non-zombie) process left in the job's process group?"""
    result = shell.run(f"pid=$(cat {job_dir(job_key)}/pid 2>/dev/null) || exit 1; "
                       "ps -o stat= --sid $pid 2>/dev/null | grep -qv '^Z'")
    return result.ok


def kill_detached(shell: NodeShell, job_key: str, grace: float = 3.0) -> None:
    """TERM everything in the job's session, then KILL what is left after `grace` seconds.

    The job leads its own session (setsid), so the session id finds its
    processes even if some moved to another process group.
    """
    directory = job_dir(job_key)
    shell.run(f"pid=$(cat {directory}/pid 2>/dev/null) || exit 0; "
              "kill -TERM -- -$pid 2>/dev/null; pkill -TERM -s $pid 2>/dev/null; "
              f"for i in $(seq {int(grace * 10)}); do "
              "ps -o stat= --sid $pid 2>/dev/null | grep -qv '^Z' || exit 0; "
              "sleep 0.1; done; kill -KILL -- -$pid 2>/dev/null; pkill -KILL -s $pid 2>/dev/null; "
              "true")


def _which(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None
