"""Launch, exec (cold, warm, warm through the head) and destroy of local clusters of growing size.

Each figure is a whole `skyterra` process, as a user runs it. "cold" exec: the
cluster's shared SSH connections were closed first (every node needs a handshake);
"warm": they are open (the normal case a few minutes after the last command), the
client fans out itself (SKYTERRA_RELAY_THRESHOLD=off); "relay": warm, every command goes
through the head (SKYTERRA_RELAY_THRESHOLD=1; the head's own connections to the workers
warm too). Peak memory: the largest max-RSS of any process of the command
(resource.getrusage of the children of a small wrapper: skyterra itself, Terraform,
ssh). Each figure carries the load average when it was taken (the machine is shared).
Run by hand: python bench/scale.py [--sizes 1,4,16,64,128] [--repeat 3] [--source]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load, skyterra_env

WRAPPER = ("import resource, subprocess, sys\n"
           "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
           "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
           "sys.stdout.write(f'{use.ru_maxrss} {done.returncode} "
           "{use.ru_utime + use.ru_stime}\\n')\n"
           "sys.stderr.buffer.write(done.stderr[-2000:])\n")
ENV: dict[str, str] = {}


def measured(*args: str, relay: str = "off") -> tuple[float, float, float, float]:
    """(seconds, peak MiB, load average, client CPU seconds) of one `skyterra ARGS` process.
    Client CPU: skyterra and the processes it waited for (its ssh clients, Terraform), not
    the head's relay nor the shared master connections (daemons)."""
    before = load()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "skyterra.cli",
                           *args], capture_output=True, text=True, errors="replace", check=False,
                          env={**ENV, "SKYTERRA_RELAY_THRESHOLD": relay})
    elapsed = time.perf_counter() - start
    rss, code, cpu = done.stdout.split()
    if code != "0":
        raise SystemExit(f"skyterra {' '.join(args)} failed:\n{done.stderr}")
    return elapsed, int(rss) / 1024, max(before, load()), float(cpu)


def close_connections(name: str) -> None:
    from skyterra import connection, state

    connection.close(state.ClusterDir(name).known_hosts_path.parent)


def median(values: list[tuple[float, float, float, float]]
           ) -> tuple[float, float, float, float]:
    return (statistics.median(v[0] for v in values), max(v[1] for v in values),
            statistics.median(v[2] for v in values), statistics.median(v[3] for v in values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4,16,64,128")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE (compile from source every time)")
    parser.add_argument("--launch-relay", default="",
                        help="SKYTERRA_RELAY_THRESHOLD of launch and destroy (default: "
                        "skyterra's own, 32)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="skyterra-bench-"))
    ENV.update(skyterra_env(args.source, SKYTERRA_HOME=str(home / "home")))
    os.environ["SKYTERRA_HOME"] = ENV["SKYTERRA_HOME"]
    task = home / "task.yaml"
    rows = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            task.write_text(f"name: bench\nnum_nodes: {size}\nrun: echo rank "
                            "$SKYPILOT_NODE_RANK\n")
            name = f"scale{size}"
            launch = measured("launch", str(task), "--cloud", "local", "-c", name, "-y", "-d",
                              relay=args.launch_relay)
            cold, warm, relayed = [], [], []
            if size > 1:
                measured("exec", name, str(task), relay="1")  # ships the relay once
            for _ in range(args.repeat):
                close_connections(name)
                cold.append(measured("exec", name, str(task)))
                warm.append(measured("exec", name, str(task)))
                if size > 1:
                    relayed.append(measured("exec", name, str(task), relay="1"))
            destroy = measured("destroy", name, "-y", relay=args.launch_relay)
            row = (size, launch, min(cold), median(warm),
                   median(relayed) if relayed else None, destroy)
            rows.append(row)
            relay_text = (f"relay {row[4][0]:5.2f} s ({row[4][1]:.0f} MiB, cpu "
                          f"{row[4][3]:.2f} s)" if row[4] else "relay -")
            print(f"{size:4d} nodes: launch {launch[0]:6.2f} s ({launch[1]:.0f} MiB, "
                  f"load {launch[2]:.1f})  exec cold {row[2][0]:5.2f} s  warm {row[3][0]:5.2f} s "
                  f"({row[3][1]:.0f} MiB, cpu {row[3][3]:.2f} s, load {row[3][2]:.1f})  {relay_text}  "
                  f"destroy {destroy[0]:5.2f} s ({destroy[1]:.0f} MiB)", flush=True)
    finally:
        for size in args.sizes.split(","):
            subprocess.run([sys.executable, "-m", "skyterra.cli", "destroy", f"scale{size}",
                            "-y"], capture_output=True, check=False, env=ENV)
        shutil.rmtree(home, ignore_errors=True)
    print("\n| nodes | launch (-d) | exec cold | exec warm, direct | exec warm, via head | "
          "client CPU warm (direct / via head) | destroy | "
          "peak MiB (launch / warm / via head / destroy) | load (launch / warm) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, launch, cold, warm, relayed, destroy in rows:
        via = f"{relayed[0]:.2f} s" if relayed else "-"
        via_mem = f"{relayed[1]:.0f}" if relayed else "-"
        via_cpu = f"{relayed[3]:.2f} s" if relayed else "-"
        print(f"| {size} | {launch[0]:.2f} s | {cold[0]:.2f} s | {warm[0]:.2f} s | {via} | "
              f"{warm[3]:.2f} s / {via_cpu} | {destroy[0]:.2f} s | {launch[1]:.0f} / "
              f"{warm[1]:.0f} / {via_mem} / {destroy[1]:.0f} | {launch[2]:.1f} / "
              f"{warm[2]:.1f} |")


if __name__ == "__main__":
    main()
