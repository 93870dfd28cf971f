"""Fan-out through the head node: what the client ships to the head, sends and reads back.

Beyond a threshold of nodes (executor.relay_threshold) the client does not run one ssh
per node: it sends one request to the head, whose relay agent (relay_agent.py) runs
each node's command over the head's own shared connections to the workers' private
addresses and streams back one JSON line per event. The client's cost per command is
one session on one connection, whatever the cluster size.

How the head reaches the workers: a **relay key**, a second ed25519 key pair made for
the cluster alone (`<cluster ssh dir>/relay_ed25519`). Its private half is copied to
the head; its public half is authorized on the workers as
`restrict,from="<head's private ip>"` in ~/.ssh/authorized_keys. Why not the others:
- the cluster's client key (or, for attached clusters, the user's own key) never leaves
  this machine: a head that is compromised can reach the workers (it could through the
  relay anyway) but cannot pose as the client, and the relay key can be dropped alone;
- `ssh -A` (agent forwarding) needs a running ssh-agent holding the key on the client
  (skyterra uses key files, not an agent) and exposes that agent to anyone root on the
  head while a command runs.
The relay key is authorized once per set of nodes (one round of direct commands; a
replaced node changes the pinned host keys and is authorized again), then every command
goes through the head only. The head checks the workers' host keys against the keys
the client pinned, renamed to the private addresses (StrictHostKeyChecking=yes).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skyterra import state

KEY_NAME = "relay_ed25519"
MARKER = "relay-installed"     # in the cluster ssh dir: the digest of what the nodes have
REMOTE_DIR = ".skyterra/relay"  # on the head, relative to the login home
MISSING = 86                    # exit code of the head command when the agent is not there


def agent_source() -> str:
    return (Path(__file__).parent / "relay_agent.py").read_text()


def ensure_key(ssh_dir: Path, comment: str) -> tuple[str, Path]:
    """The cluster's relay key pair (0600), made on first use: (public line, private path)."""
    return state.ensure_key(ssh_dir / KEY_NAME, comment)


def authorized_line(public_key: str, head_private_ip: str) -> str:
    """The workers' authorized_keys line: the relay key works only from the head, and only
    to run commands (no forwarding, no pty)."""
    return f'restrict,from="{head_private_ip}" {public_key}'


def add_lines_command(ssh_file: str) -> str:
    """Shell command (run on a node) that appends each line of its stdin to
    ~/.ssh/<ssh_file> (authorized_keys, known_hosts) unless the line is there already."""
    return (f"umask 077 && mkdir -p ~/.ssh && f=~/.ssh/{ssh_file} && touch \"$f\" && "
            "while IFS= read -r line; do grep -qxF -- \"$line\" \"$f\" || "
            "printf '%s\\n' \"$line\" >> \"$f\"; done")


def head_known_hosts(pins: dict[str, str], names: Iterable[tuple[str, str]]) -> str:
    """known_hosts for the head: each (pinned name, private name) pair's pinned line, with
    the host field renamed to the private address the head connects to."""
    lines = []
    for pinned, private in names:
        line = pins.get(pinned)
        if line:
            lines.append(private + " " + line.split(" ", 1)[1])
    return "".join(f"{line}\n" for line in lines)


def digest(agent: str, public_key: str, known_hosts: str) -> str:
    """What the nodes must have for the relay to work: agent, key, host keys (a replaced
    node has a new host key, so it is authorized again)."""
    text = f"{agent}\0{public_key}\0{known_hosts}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def installed(ssh_dir: Path, wanted: str) -> bool:
    try:
        return (ssh_dir / MARKER).read_text().strip() == wanted
    except OSError:
        return False


def mark_installed(ssh_dir: Path, wanted: str | None) -> None:
    path = ssh_dir / MARKER
    if wanted is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(wanted + "\n")


def install_command(version: str) -> str:
    """Head command that writes agent, private key and known_hosts (base64 lines on stdin:
    nothing of the key shows in the head's process list) into ~/.skyterra/relay/<version>."""
    directory = f"{REMOTE_DIR}/{version}"
    names = ("relay.py", "key", "known_hosts")
    reads = " && ".join(f"IFS= read -r {n.replace('.', '_')}" for n in names)
    writes = " && ".join(f"printf '%s' \"${n.replace('.', '_')}\" | base64 -d > {n}"
                         for n in names)
    return (f"umask 077 && mkdir -p {directory} && cd {directory} && {reads} && {writes} && "
            "chmod 600 key && { command -v python3 >/dev/null || exit 127; }")


def install_payload(agent: str, private_key: str, known_hosts: str) -> str:
    return "".join(base64.b64encode(text.encode()).decode() + "\n"
                   for text in (agent, private_key, known_hosts))


def run_command(version: str) -> str:
    """Head command that runs the agent (exit MISSING when it is not installed there)."""
    directory = f"{REMOTE_DIR}/{version}"
    return (f"[ -f {directory}/relay.py ] || exit {MISSING}; "
            f"exec python3 {directory}/relay.py")


def request(version: str, ssh_port: int, head_private_ip: str, nodes: list[dict[str, Any]],
            *, parallel: int, stream: bool) -> str:
    """The JSON request the agent reads. `nodes`: rank, host ('' for the head), cmd, stdin,
    timeout. Paths are relative to the head's home (the agent runs there). The head's
    ssh binds the head's private address (-b), the one the workers' from= allows."""
    directory = f"{REMOTE_DIR}/{version}"
    ssh = ["ssh", "-F", "/dev/null", "-i", f"{directory}/key", "-p", str(ssh_port),
           "-b", head_private_ip, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
           "-o", "ConnectTimeout=10", "-o", f"UserKnownHostsFile={directory}/known_hosts",
           "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
           "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
           "-o", "LogLevel=ERROR"]
    # Control sockets need a short path (sun_path): under the head's /tmp, one dir per
    # installed version (the agent refuses one that is not ours and private).
    sockets = f"/tmp/skyterra-relay-{version}"
    return json.dumps({"ssh": ssh, "cm": sockets, "parallel": parallel, "stream": stream,
                       "nodes": nodes})


def parse(line: str) -> dict[str, Any] | None:
    """One event line of the agent, or None for a line that is not one (ignored)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("r"), int) else None
