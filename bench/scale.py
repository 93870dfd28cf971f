"""Launch, exec (cold and warm) and destroy of local clusters of growing size.

Each figure is a whole `skyterra` process, as a user runs it. "cold" exec: the
cluster's shared SSH connections were closed first (every node needs a
handshake); "warm": they are open (the normal case a few minutes after the last
command). Peak memory: the largest max-RSS of any process of the command
(resource.getrusage of the children of a small wrapper: skyterra itself,
Terraform, ssh). Run by hand: python bench/scale.py [--sizes 1,4,16,64] [--repeat 3]
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

WRAPPER = ("import resource, subprocess, sys\n"
           "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
           "sys.stdout.write(f'{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} "
           "{done.returncode}\\n')\n"
           "sys.stderr.buffer.write(done.stderr[-2000:])\n")


def measured(*args: str) -> tuple[float, float]:
    """(seconds, peak MiB) of one `skyterra ARGS` process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "skyterra.cli",
                           *args], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    rss, code = done.stdout.split()
    if code != "0":
        raise SystemExit(f"skyterra {' '.join(args)} failed:\n{done.stderr}")
    return elapsed, int(rss) / 1024


def close_connections(name: str) -> None:
    from skyterra import connection, state

    connection.close(state.ClusterDir(name).known_hosts_path.parent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="skyterra-bench-"))
    os.environ["SKYTERRA_HOME"] = str(home / "home")
    task = home / "task.yaml"
    rows = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            task.write_text(f"name: bench\nnum_nodes: {size}\nrun: echo rank "
                            "$SKYPILOT_NODE_RANK\n")
            name = f"scale{size}"
            launch = measured("launch", str(task), "--cloud", "local", "-c", name, "-y", "-d")
            cold, warm = [], []
            for _ in range(args.repeat):
                close_connections(name)
                cold.append(measured("exec", name, str(task)))
                warm.append(measured("exec", name, str(task)))
            destroy = measured("destroy", name, "-y")
            row = (size, launch, min(cold), statistics.median(t for t, _ in warm),
                   max(m for _, m in warm), destroy)
            rows.append(row)
            print(f"{size:4d} nodes: launch {launch[0]:6.2f} s ({launch[1]:.0f} MiB)  "
                  f"exec cold {row[2][0]:5.2f} s  warm {row[3]:5.2f} s ({row[4]:.0f} MiB)  "
                  f"destroy {destroy[0]:5.2f} s ({destroy[1]:.0f} MiB)", flush=True)
    finally:
        for size in args.sizes.split(","):
            subprocess.run([sys.executable, "-m", "skyterra.cli", "destroy", f"scale{size}",
                            "-y"], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    print("\n| nodes | launch (-d) | exec cold | exec warm (median) | destroy | peak MiB "
          "(launch / warm exec / destroy) |")
    print("|---|---|---|---|---|---|")
    for size, launch, cold, warm, warm_mem, destroy in rows:
        print(f"| {size} | {launch[0]:.2f} s | {cold[0]:.2f} s | {warm:.2f} s | "
              f"{destroy[0]:.2f} s | {launch[1]:.0f} / {warm_mem:.0f} / {destroy[1]:.0f} |")


if __name__ == "__main__":
    main()
