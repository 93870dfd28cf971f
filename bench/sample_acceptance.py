"""How many SkyPilot task files does `skyterra launch --dryrun` accept?

Runs `skyterra launch --dryrun FILE` (no --cloud) on every *.yaml / *.yml in a folder
(each in the file's own folder, so relative workdirs and file_mounts resolve the way a user
runs them), then tabulates accepted / refused (grouped by reason) / crashed. A refusal
must be one paragraph starting with "Error:"; anything else (a traceback, a multi-line
message, a timeout) counts as a crash.

    python bench/sample_acceptance.py /tmp/sample            # table on stdout
    python bench/sample_acceptance.py /tmp/sample --details  # every file and its outcome

The sample files are not part of the repository (public files stay where they are);
bench/RESULTS.md records the figure measured on them.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 60


@dataclass
class Outcome:
    file: Path
    kind: str  # accepted | refused | crashed
    reason: str = ""


def skyterra_command() -> list[str]:
    """The skyterra next to this interpreter (the repo's .venv), else the one on PATH."""
    local = Path(sys.executable).with_name("skyterra")
    return [str(local)] if local.exists() else [shutil.which("skyterra") or "skyterra"]


def run_one(path: Path, home: Path) -> Outcome:
    env = {**os.environ, "SKYTERRA_HOME": str(home / path.stem), "NO_COLOR": "1",
           "COLUMNS": "200"}
    env.pop("SKYTERRA_CATALOG_DIR", None)
    try:
        done = subprocess.run([*skyterra_command(), "launch", "--dryrun", path.name],
                              cwd=path.parent, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(path, "crashed", f"timeout after {TIMEOUT_S}s")
    output = (done.stdout + done.stderr).strip()
    if "Traceback" in output:
        return Outcome(path, "crashed", output.splitlines()[-1][:200])
    if done.returncode == 0:
        return Outcome(path, "accepted")
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    if len(errors) != 1:
        return Outcome(path, "crashed", f"exit {done.returncode}: {output[-200:]}")
    return Outcome(path, "refused", reason_of(errors[0], path))


def reason_of(message: str, path: Path) -> str:
    """The refusal without what is particular to the file, so refusals group by cause."""
    text = message.removeprefix("Error:").strip()
    text = text.replace(str(path), "FILE").replace(path.name, "FILE")
    text = re.sub(r"^FILE(:| \(task [^)]*\):)\s*", "", text)
    return text[:160]


def measure(folder: Path, jobs: int) -> list[Outcome]:
    files = sorted(p for p in folder.iterdir()
                   if p.suffix in (".yaml", ".yml") and p.is_file())
    with (tempfile.TemporaryDirectory(prefix="skyterra-sample-") as home,
          concurrent.futures.ThreadPoolExecutor(jobs) as pool):
        return list(pool.map(lambda p: run_one(p, Path(home)), files))


def report(outcomes: list[Outcome], details: bool) -> str:
    total = len(outcomes)
    counts = collections.Counter(o.kind for o in outcomes)
    summary = (f"{total} files: {counts['accepted']} accepted "
               f"({100 * counts['accepted'] / max(total, 1):.0f}%), {counts['refused']} "
               f"refused, {counts['crashed']} crashed")
    lines = [summary, ""]
    reasons = collections.Counter(o.reason for o in outcomes if o.kind == "refused")
    for reason, n in reasons.most_common():
        files = ", ".join(o.file.name for o in outcomes if o.reason == reason)
        lines.append(f"refused x{n}: {reason}\n    {files}")
    for o in outcomes:
        if o.kind == "crashed":
            lines.append(f"CRASHED {o.file.name}: {o.reason}")
    if details:
        lines.append("")
        lines += [f"{o.kind:9} {o.file.name}  {o.reason}" for o in outcomes]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--details", action="store_true")
    args = parser.parse_args()
    outcomes = measure(args.folder, args.jobs)
    print(report(outcomes, args.details))
    return 1 if any(o.kind == "crashed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
