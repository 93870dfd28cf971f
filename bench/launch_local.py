"""Time `skyterra launch` (2 local nodes, trivial run) against the same steps by hand.

By hand = terraform init + apply of the rendered local module, then one ssh per node
running the command. Run: python bench/launch_local.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load, skyterra_env

TASK = "name: bench\nnum_nodes: 2\nrun: echo rank $SKYPILOT_NODE_RANK\n"


ENV: dict[str, str] = {}


def run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", ENV)
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def time_skyterra(workdir: Path) -> float:
    task = workdir / "task.yaml"
    task.write_text(TASK)
    start = time.perf_counter()
    run(sys.executable, "-m", "skyterra.cli", "launch", str(task), "--cloud", "local",
        "-c", "bench", "-y")
    elapsed = time.perf_counter() - start
    run(sys.executable, "-m", "skyterra.cli", "destroy", "bench", "-y")
    return elapsed


def time_by_hand(workdir: Path) -> float:
    """Render once (not timed), then time init + apply + one ssh per node + keyscan."""
    from skyterra import api
    from skyterra.task import Task

    module = workdir / "module"
    api.render(Task.from_yaml_config(json.loads(json.dumps({"num_nodes": 2, "run": "true"}))),
               cloud="local", out_dir=module, cluster_name="byhand")
    env = {**ENV, "CHECKPOINT_DISABLE": "1"}
    start = time.perf_counter()
    run("terraform", "init", "-input=false", cwd=module, env=env)
    run("terraform", "apply", "-auto-approve", "-input=false", cwd=module, env=env)
    outputs = json.loads(run("terraform", "output", "-json", cwd=module, env=env).stdout)
    key = outputs["ssh_private_key_path"]["value"]
    for ip in outputs["node_ips"]["value"]:
        run("ssh", "-i", key, "-p", str(outputs["ssh_port"]["value"]), "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "BatchMode=yes", f"{outputs['ssh_user']['value']}@{ip}", "echo rank")
    elapsed = time.perf_counter() - start
    run("terraform", "destroy", "-auto-approve", "-input=false", cwd=module, env=env)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--source", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE (compile from source every time)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="skyterra-bench-"))
    os.environ["SKYTERRA_HOME"] = str(home / "home")
    ENV.update(skyterra_env(args.source))
    ours, hand, loads = [], [], []
    try:
        for i in range(args.repeat):  # interleaved, so both meet the same load
            loads.append(load())
            ours.append(time_skyterra(home))
            hand.append(time_by_hand(home / f"h{i}"))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    ours_m, hand_m = statistics.median(ours), statistics.median(hand)
    print(f"skyterra launch (2 nodes, trivial run): median {ours_m:.2f} s, best {min(ours):.2f} s")
    print(f"by hand (terraform init+apply, ssh per node): median {hand_m:.2f} s, "
          f"best {min(hand):.2f} s")
    print(f"ratio of medians: {ours_m / hand_m:.2f}x, of bests {min(ours) / min(hand):.2f}x; "
          f"load average {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
