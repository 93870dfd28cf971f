"""Time parse + optimize + render of examples/quickstart/train.yaml (`launch --dryrun`),
in-process and as a CLI command. Run: python bench/dryrun.py [--repeat 20]"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "train.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cloud", default="aws")
    args = parser.parse_args()
    os.environ["SKYTERRA_HOME"] = tempfile.mkdtemp(prefix="skyterra-bench-")
    os.environ.setdefault("SKYTERRA_SSH_CIDRS", "203.0.113.7/32")
    from skyterra import api
    from skyterra.task import Task

    samples = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        api.dryrun(Task.from_yaml(SEED), "bench", [args.cloud])
        samples.append(time.perf_counter() - start)
    print(f"in-process dryrun ({args.cloud}): median {statistics.median(samples) * 1000:.1f} ms, "
          f"first {samples[0] * 1000:.1f} ms")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skyterra.cli", "launch", str(SEED), "--cloud",
                    args.cloud, "--dryrun", "-c", "bench"], check=True, capture_output=True)
    print(f"CLI `skyterra launch --dryrun` (new process): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
