"""COPY of a 1 GiB object set to 2 local nodes, and sequential reads through MOUNT vs COPY.

Starts moto's S3 on 127.0.0.1 (in this process), fills a bucket with 8 x 128 MiB
objects, launches a 2-node local cluster whose task COPYs the bucket to /copy and
MOUNTs it at /mount, and times on every node: the COPY (attach step, from the
launch's own timing of `rclone copy`), then `cat` of all objects from each path.
Run as root: python bench/storage_local.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTS, SIZE_MIB = 8, 128


def main() -> None:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="skyterra-bench-storage-"))
    env = {**os.environ, "SKYTERRA_HOME": str(work / "home"), "AWS_ENDPOINT_URL_S3": url,
           "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_REGION": "us-east-1"}
    rclone_env = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
    rclone_env.update(RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_B_TYPE="s3",
                      RCLONE_CONFIG_B_PROVIDER="Other", RCLONE_CONFIG_B_ENDPOINT=url,
                      RCLONE_CONFIG_B_ACCESS_KEY_ID="x", RCLONE_CONFIG_B_SECRET_ACCESS_KEY="x",
                      RCLONE_CONFIG_B_FORCE_PATH_STYLE="true")
    data = work / "data"
    data.mkdir()
    for index in range(OBJECTS):
        with open(data / f"shard-{index}.bin", "wb") as handle:
            handle.write(os.urandom(SIZE_MIB << 20))
    subprocess.run(["rclone", "mkdir", "B:bench-data"], env=rclone_env, check=True)
    subprocess.run(["rclone", "copy", "--transfers", "8", str(data), "B:bench-data"],
                   env=rclone_env, check=True)
    task = work / "task.yaml"
    task.write_text("""name: bench
num_nodes: 2
file_mounts:
  /copy: s3://bench-data
  /mount:
    source: s3://bench-data
    mode: MOUNT
run: |
  t0=$(date +%s.%N); cat /copy/* > /dev/null; t1=$(date +%s.%N)
  cat /mount/* > /dev/null; t2=$(date +%s.%N)
  echo "copy_read=$(echo "$t1 - $t0" | bc) mount_read=$(echo "$t2 - $t1" | bc)"
""")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "skyterra.cli", "launch", str(task),
                             "--cloud", "local", "-c", "bench", "-y"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    marks: dict[str, float] = {}
    for line in proc.stdout:
        now = time.perf_counter() - start
        if "attaching" in line:
            marks["attach"] = now
        if "job" in line and "submitted" in line:
            marks["submitted"] = now
        print(f"{now:7.2f} {line.rstrip()}")
    proc.wait()
    total = time.perf_counter() - start
    if "attach" in marks and "submitted" in marks:
        print(f"COPY+MOUNT attach on 2 nodes: {marks['submitted'] - marks['attach']:.1f} s")
    print(f"launch incl. COPY of {OBJECTS * SIZE_MIB} MiB to 2 nodes + reads: {total:.1f} s")
    subprocess.run([sys.executable, "-m", "skyterra.cli", "destroy", "bench", "-y"], env=env,
                   check=False, capture_output=True)
    server.stop()
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
