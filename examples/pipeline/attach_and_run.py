"""Attach the nodes a Terraform pipeline created, and run the task on them with skyterra.

    python attach_and_run.py                      # reads `terraform output -json` here
    python attach_and_run.py --outputs outputs.json --cluster pipeline-train

skyterra records the nodes as owned by the pipeline: `skyterra destroy NAME`
refuses to touch them (`--forget` only drops the record); `terraform destroy`
in the pipeline removes them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import skyterra as sky

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="pipeline-train", help="name for the nodes")
    parser.add_argument("--outputs", help="`terraform output -json` file (default: run "
                        "`terraform output -json` in --tf-dir)")
    parser.add_argument("--tf-dir", default=str(HERE), help="the pipeline's Terraform root")
    parser.add_argument("--task", default=str(HERE / "task.yaml"))
    parser.add_argument("--forget", action="store_true",
                        help="drop skyterra's record of the nodes when the job is done")
    args = parser.parse_args(argv)

    task = sky.Task.from_yaml(args.task)
    try:
        sky.attach(args.cluster, args.outputs, tf_dir=None if args.outputs else args.tf_dir,
                   task=task)
        result = sky.exec(task, args.cluster)  # streams every node's prefixed output
    except sky.SkyterraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if args.forget:
            sky.down(args.cluster, purge=True)  # forget only: the pipeline owns the nodes
    print(f"job {result.job_id} on '{args.cluster}' exited {result.exit_code or 0}")
    return result.exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
