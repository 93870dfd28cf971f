"""The relay agent: runs on a cluster's head node and fans one request out to the nodes.

skyterra ships this file (standard library only, python3 >= 3.7) to the head once
(relay.py) and runs it there with a JSON request on stdin:

    {"ssh": [argv prefix of an ssh to a worker], "cm": control socket dir,
     "parallel": N, "stream": bool,
     "nodes": [{"rank": r, "host": "user@ip" or "" (the head itself), "cmd": "...",
                "stdin": "..." or null, "timeout": seconds or null}, ...]}

Each node's command runs with `ssh` over the head's own shared connection to that
worker (ControlMaster, sockets in "cm", kept for a few minutes like the client's),
the head's own with bash, at most N at
once (all at once with "stream"). It prints one JSON line per event, flushed as it
happens, so the client sees each node finish when it does:

    {"r": rank, "o": "a line of output"}                      (stream only: stdout+stderr)
    {"r": rank, "rc": code, "so": stdout tail, "se": stderr tail}   (the node is done)

rc is the command's exit code, 255 when ssh itself failed (stderr says why), null on
timeout. Captured output keeps its last TAIL characters: results are for exit codes,
process ids and states, not bulk data (rsync carries files, directly).
"""

import json
import os
import subprocess
import sys
import threading

TAIL = 256 * 1024
_lock = threading.Lock()


def emit(event):
    line = json.dumps(event, separators=(",", ":")) + "\n"
    with _lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def socket_of(request, node):
    return os.path.join(request["cm"], node["host"].replace("/", "_"))


def argv_for(request, node, command=None):
    if not node["host"]:
        return ["bash", "-c", node["cmd"]]
    mux = ["-o", "ControlMaster=auto", "-o", "ControlPath=" + socket_of(request, node),
           "-o", "ControlPersist=300"]
    return list(request["ssh"]) + mux + [node["host"], command or node["cmd"]]


def connected(request, node):
    """Connect to the worker first (a no-op over a live master), so that ssh's own
    errors never mix into a streamed command's output: (True, "") or (False, why)."""
    if not node["host"] or os.path.exists(socket_of(request, node)):
        return True, ""
    done = subprocess.run(argv_for(request, node, "true"), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0, done.stderr[-TAIL:]


def run_captured(request, node):
    try:
        data = node.get("stdin")
        done = subprocess.run(argv_for(request, node), input=data,
                              stdin=None if data is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=node.get("timeout"),
                              check=False)
    except subprocess.TimeoutExpired:
        emit({"r": node["rank"], "rc": None, "so": "", "se": "timed out"})
        return
    emit({"r": node["rank"], "rc": done.returncode, "so": done.stdout[-TAIL:],
          "se": done.stderr[-TAIL:]})


def run_streamed(request, node):
    ok, why = connected(request, node)
    if not ok:
        emit({"r": node["rank"], "rc": 255, "so": "", "se": why})
        return
    process = subprocess.Popen(argv_for(request, node), text=True, bufsize=1,
                               stdin=subprocess.PIPE if node.get("stdin") is not None
                               else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if node.get("stdin") is not None:
        process.stdin.write(node["stdin"])
        process.stdin.close()
    for line in process.stdout:
        emit({"r": node["rank"], "o": line})
    process.wait()
    emit({"r": node["rank"], "rc": process.returncode, "so": "", "se": ""})


def main():
    request = json.load(sys.stdin)
    os.chdir(os.path.expanduser("~"))
    os.makedirs(request["cm"], mode=0o700, exist_ok=True)
    info = os.lstat(request["cm"])
    if info.st_uid != os.getuid() or info.st_mode & 0o077:  # a shared /tmp: ours, private
        sys.stderr.write(f"relay: {request['cm']} is not a private directory of ours\n")
        return 2
    work = run_streamed if request.get("stream") else run_captured
    gate = threading.BoundedSemaphore(max(1, int(request.get("parallel") or 1)))

    def one(node):
        if not request.get("stream"):
            gate.acquire()
        try:
            work(request, node)
        except Exception as error:  # noqa: BLE001 - reported per node, never a traceback
            emit({"r": node["rank"], "rc": 255, "so": "", "se": f"relay on the head: {error}"})
        finally:
            if not request.get("stream"):
                gate.release()

    threads = [threading.Thread(target=one, args=(node,), daemon=True)
               for node in request["nodes"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
