"""Start-up cost as whole processes: `skyterra --help` vs SkyPilot's `sky --help`, and
`skyterra launch --dryrun` of a quickstart-sized task (median of N runs each).

SkyPilot runs from a throwaway venv: python -m venv /tmp/skyvenv &&
/tmp/skyvenv/bin/pip install skypilot. Run: python bench/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load, skyterra_env

QUICKSTART = """name: quickstart
resources:
  accelerators: L4:1
  cpus: 4+
setup: echo setup
run: nvidia-smi
"""


def median_seconds(argv: list[str], repeat: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--sky", default="/tmp/skyvenv/bin/sky")
    parser.add_argument("--source", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE (compile from source every time)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="skyterra-bench-"))
    env = skyterra_env(args.source, SKYTERRA_HOME=str(home / "home"),
                       SKYTERRA_SSH_CIDRS="203.0.113.7/32")
    print(f"load average at start: {load():.1f}")
    task = home / "quickstart.yaml"
    task.write_text(QUICKSTART)
    ours = [sys.executable, "-m", "skyterra.cli"]
    try:
        help_ours = median_seconds([*ours, "--help"], args.repeat, env)
        print(f"skyterra --help: {help_ours:.2f} s")
        if Path(args.sky).exists():
            help_sky = median_seconds([args.sky, "--help"], args.repeat, env)
            print(f"sky --help (SkyPilot): {help_sky:.2f} s; ratio {help_sky / help_ours:.1f}x")
        else:
            print(f"{args.sky} not found: SkyPilot not measured")
        for cloud in ("aws", "local"):
            dry = median_seconds([*ours, "launch", str(task), "--cloud", cloud, "--dryrun",
                                  "-c", "bench"], args.repeat, env)
            print(f"skyterra launch --dryrun ({cloud}): {dry:.2f} s")
        bare = median_seconds([sys.executable, "-c", "pass"], args.repeat, env)
        print(f"python -c pass (the floor): {bare:.2f} s; load average now {load():.1f}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
