"""A training loop that survives preemption: checkpoint every N steps, resume from the last.

Fits y = 3x - 1 with a one-layer model, DistributedDataParallel over gloo (CPU) or
NCCL (GPU). Rank 0 writes CKPT_DIR/ckpt.pt atomically (write, then rename) every
CKPT_EVERY steps; on start, rank 0 loads it if it exists and broadcasts step and
weights to every rank, so a restarted run continues where the last checkpoint was.

CKPT_DIR is any path: a node's own disk survives a FAILOVER recovery that replaces
only other nodes; a bucket mounted at CKPT_DIR (file_mounts with mode: MOUNT_CACHED)
survives anything, including the head node's loss and a move to another region.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def save(path: Path, step: int, model: torch.nn.Module, optimizer) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "optim": optimizer.state_dict()},
               tmp)
    os.replace(tmp, path)   # a preemption mid-write never leaves a torn checkpoint


def load(path: Path) -> dict | None:
    return torch.load(path, weights_only=True) if path.exists() else None


def main() -> None:
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    steps, every = env_int("MAX_STEPS", 200), env_int("CKPT_EVERY", 10)
    ckpt = Path(os.path.expanduser(os.environ.get("CKPT_DIR", "~/ckpt"))) / "ckpt.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    state = [load(ckpt) if rank == 0 else None]
    dist.broadcast_object_list(state, src=0)       # every rank resumes from rank 0's copy
    start = 0
    if state[0] is not None:
        model.load_state_dict(state[0]["model"])
        optimizer.load_state_dict(state[0]["optim"])
        start = state[0]["step"]
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    recovery = os.environ.get("SKYTERRA_JOB_RECOVERY_COUNT", "0")
    if rank == 0:
        print(f"world_size={world} resuming from step {start} (recovery {recovery}, task "
              f"{os.environ.get('SKYPILOT_TASK_ID', '-')})", flush=True)

    generator = torch.Generator().manual_seed(rank)
    for step in range(start + 1, steps + 1):
        x = torch.rand(32, 1, generator=generator) * 2 - 1
        loss = torch.nn.functional.mse_loss(ddp(x), 3 * x - 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if rank == 0 and step % every == 0:
            save(ckpt, step, model, optimizer)
            print(f"step {step} loss {loss.item():.4f} (checkpoint saved)", flush=True)
        time.sleep(float(os.environ.get("STEP_SLEEP", "0.05")))   # a "long" run, visibly
    if rank == 0:
        w, b = model.weight.item(), model.bias.item()
        print(f"done at step {steps}: y = {w:.2f}x + {b:.2f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
