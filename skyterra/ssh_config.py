"""`ssh mingpt` and `rsync mingpt:…` for every cluster: a Host block per node.

Blocks live in ~/.skyterra/ssh/<cluster>.conf; ~/.ssh/config includes
~/.skyterra/ssh/*.conf once (`skyterra ssh-setup`, or launch --ssh-config).
Removed on destroy.
"""

from __future__ import annotations

import os
from pathlib import Path

from skyterra import paths

INCLUDE_MARK = "# added by skyterra: cluster aliases (ssh NAME)"


def config_dir() -> Path:
    return paths.home() / "ssh"


def cluster_config_path(cluster_name: str) -> Path:
    return config_dir() / f"{cluster_name}.conf"


def _quote(value: str) -> str:
    """ssh_config values: double-quote anything with spaces (paths under a home dir)."""
    return f'"{value}"' if any(c.isspace() for c in value) else value


def write(cluster) -> Path:
    """One Host per node: NAME (head), NAME-worker1, …, pinned to the cluster's known_hosts."""
    blocks = []
    for node in cluster.nodes:
        alias = cluster.name if node.rank == 0 else f"{cluster.name}-{node.name}"
        lines = [f"Host {alias}", f"  HostName {node.ip}", f"  User {cluster.ssh_user}",
                 f"  Port {cluster.ssh_port}", f"  IdentityFile {_quote(str(cluster.ssh_key))}",
                 "  IdentitiesOnly yes"]
        if cluster.known_hosts:
            lines += [f"  UserKnownHostsFile {_quote(str(cluster.known_hosts))}",
                      "  StrictHostKeyChecking yes"]
        blocks.append("\n".join(lines))
    path = cluster_config_path(cluster.name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text("\n\n".join(blocks) + "\n")
    os.chmod(path, 0o600)
    return path


def remove(cluster_name: str) -> None:
    cluster_config_path(cluster_name).unlink(missing_ok=True)


def include_line() -> str:
    return f"Include {_quote(str(config_dir() / '*.conf'))}"


def install_include(ssh_config: Path | None = None) -> bool:
    """Add the Include line at the top of ~/.ssh/config once; True if it was added.

    Include must come before any Host block to apply everywhere, so it is
    prepended, with a comment saying who added it.
    """
    ssh_config = ssh_config or Path.home() / ".ssh" / "config"
    text = ssh_config.read_text() if ssh_config.exists() else ""
    if include_line() in text:
        return False
    ssh_config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_config.write_text(f"{INCLUDE_MARK}\n{include_line()}\n\n{text}")
    os.chmod(ssh_config, 0o600)
    return True
