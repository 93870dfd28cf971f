"""Autostop on a cloud cluster: the idle watcher runs on the head node itself.

The laptop may be closed, so nothing on this machine takes part once it is
installed. Over SSH (the cluster's own connection) skyterra puts into
~/.skyterra/autostop/ of every node:

* node-action.sh: the cloud's way for a node to stop or remove itself
  (Cloud.autostop_node_action: a guest `shutdown -h now` that the instance's
  shutdown behaviour turns into stop or terminate, or a call to the cloud's API
  with the node's own identity); no long-lived cloud key is ever on a node;
* on the head: the one watcher (templates/autostop/watcher.sh), fire.sh
  (workers first, then the head) and a fresh SSH key made for this purpose;
* on each worker: that key's public half in authorized_keys, accepted only
  from the head's private address and only for `bash node-action.sh`
  (`restrict,command=...,from=...`): the head can stop a worker, nothing more.
  The user's own key never leaves this machine.

Every file travels on stdin (base64 lines), so nothing shows in a process list.
"""

from __future__ import annotations

import base64
import shlex
import tempfile
from pathlib import Path

from skyterra import autostop, executor, paths, state
from skyterra.cluster import Cluster, Node
from skyterra.errors import SkyterraError

AUTOSTOP_DIR = ".skyterra/autostop"      # on each node, relative to its home
EVENT_FILE = f"{AUTOSTOP_DIR}/fired.json"
KEY_TAG = "skyterra-autostop"            # comment of the head's key in authorized_keys
NODE_ACTION = f"bash {AUTOSTOP_DIR}/node-action.sh"


def install(cluster: Cluster, setting: autostop.Autostop, *, node_action: str,
            authorized_keys: str) -> None:
    """Start the watcher for `setting` on the head (replacing one already there).

    node_action: the cloud's script (bash) with which a node stops or removes
    itself; it sees SKYTERRA_AUTOSTOP_ACTION (stop | down). authorized_keys:
    the shell path of the file sshd reads on a node (a cloud image's
    "$HOME/.ssh/authorized_keys").
    """
    remove(cluster, authorized_keys=authorized_keys)
    private, public = _new_key(cluster.name)
    head, workers = cluster.nodes[0], cluster.nodes[1:]
    action = (f"export SKYTERRA_AUTOSTOP_ACTION={shlex.quote(_action(setting))}\n"
              + node_action)
    entry = (f'restrict,command="{NODE_ACTION}",from="{head.private_ip}" {public} {KEY_TAG}')
    if workers:
        write, payload = _write_files({"node-action.sh": action})
        executor.for_each_node(
            cluster, lambda node: _run(cluster, node, f"{write} && "
                                       f"{_authorize(authorized_keys, entry)}", payload),
            workers).raise_first("install the autostop key on")
    env = autostop.watcher_env(setting, jobs_dir=executor.JOBS_DIR, event_file=EVENT_FILE,
                               host_pids=False)
    env.update(SKYTERRA_AUTOSTOP_WORKERS=" ".join(n.private_ip for n in workers),
               SKYTERRA_AUTOSTOP_HEAD_IP=head.private_ip,
               SKYTERRA_AUTOSTOP_SSH_USER=cluster.ssh_user,
               SKYTERRA_AUTOSTOP_SSH_PORT=str(cluster.ssh_port))
    files = {"node-action.sh": action, "watcher.sh": autostop.watcher_script(),
             "fire.sh": (paths.templates_dir() / "autostop" / "fire.sh").read_text(),
             "env.sh": executor.export_lines(env), "id_ed25519": private}
    start = (f'cd "$HOME" && {{ setsid nohup bash -c ". {AUTOSTOP_DIR}/env.sh && exec bash '
             f'{AUTOSTOP_DIR}/watcher.sh bash {AUTOSTOP_DIR}/fire.sh" '
             f'> {AUTOSTOP_DIR}/watcher.log 2>&1 < /dev/null & }} && '
             f'echo $! > {AUTOSTOP_DIR}/watcher.pid')
    write, payload = _write_files(files)
    _run(cluster, head, f"{write} && {start}", payload)


def remove(cluster: Cluster, *, authorized_keys: str) -> None:
    """Stop the head's watcher and take the autostop key and files off every node."""
    stop = (f'cd "$HOME" && if [ -f {AUTOSTOP_DIR}/watcher.pid ]; then '
            f'kill -KILL -- "-$(cat {AUTOSTOP_DIR}/watcher.pid)" 2>/dev/null; fi; '
            f'if [ -f {authorized_keys} ]; then sed -i "/ {KEY_TAG}$/d" {authorized_keys}; fi; '
            f'rm -rf {AUTOSTOP_DIR}')
    executor.for_each_node(cluster, lambda node: _run(cluster, node, stop)
                           ).raise_first("remove the autostop watcher from")


def _action(setting: autostop.Autostop) -> str:
    return "down" if setting.down else "stop"


def _run(cluster: Cluster, node: Node, command: str, data: str | None = None) -> None:
    shell = executor.NodeShell(cluster, node)
    result = shell.run(command, in_stream=data, timeout=60)
    if not result.ok:
        raise SkyterraError(f"{node.name}: autostop setup failed: "
                            f"{(result.stderr or result.stdout).strip()[-500:]}")


def _write_files(files: dict[str, str]) -> tuple[str, str]:
    """(command, stdin) that write `files` into AUTOSTOP_DIR, readable by the user only.

    The contents travel on stdin, one base64 line per file, decoded by shell
    builtins and base64: nothing of them (the autostop key!) is in a command line.
    """
    names = {name: "f_" + name.replace(".", "_").replace("-", "_") for name in files}
    reads = " && ".join(f"IFS= read -r {var}" for var in names.values())
    writes = " && ".join(f'printf %s "${var}" | base64 -d > {name}'
                         for name, var in names.items())
    payload = "".join(base64.b64encode(text.encode()).decode() + "\n"
                      for text in files.values())
    return (f'cd "$HOME" && mkdir -p {AUTOSTOP_DIR} && chmod 700 {AUTOSTOP_DIR} && '
            f'cd {AUTOSTOP_DIR} && umask 077 && {reads} && {writes} && cd "$HOME"'), payload


def _authorize(authorized_keys: str, entry: str) -> str:
    """Append `entry` to the node's authorized keys (its directory made if missing)."""
    return (f'mkdir -p "$(dirname {authorized_keys})" && '
            f'printf "%s\\n" {shlex.quote(entry)} >> {authorized_keys}')


def _new_key(cluster_name: str) -> tuple[str, str]:
    """A fresh ed25519 key pair (private text, public line) for the head's fire.sh."""
    with tempfile.TemporaryDirectory() as directory:
        public, path = state.ensure_key(Path(directory) / "key", f"{KEY_TAG}-{cluster_name}")
        return path.read_text(), " ".join(public.split()[:2])
