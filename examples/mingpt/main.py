"""Train a tiny character-level GPT with DistributedDataParallel.

Launch with torchrun (one process per GPU, or per "slot" on a CPU-only machine):

    torchrun --nnodes=2 --nproc_per_node=2 --node_rank=R \\
             --master_addr=HEAD_IP --master_port=8008 main.py

or simply ``python3 main.py`` for a single process.

Device-agnostic: with CUDA each process takes GPU LOCAL_RANK and NCCL; without it
every process runs on CPU and ranks talk over Gloo (TCP). The defaults are sized so
that 2 nodes x 2 CPU processes on a 2-core machine finish in about 30 s wall
(400 steps; the training loss falls from 4.27 to about 0.8).

Rank 0 prints lines meant to be parsed by tests and humans alike:

    world_size=4
    step 0 loss 4.2684
    step 40 loss 2.3...
    ...
    step 399 loss 0.7819
    final loss 0.7819
    val loss 0.6624
    sample:
    <generated text>

Every knob is an environment variable (see ``Config``), so a task YAML can change
them through ``envs:`` without touching the code.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from model import GPT, GPTConfig
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, DistributedSampler

HERE = Path(__file__).resolve().parent


@dataclass
class Config:
    """Training settings; each field can be overridden by the env var of its upper-case name."""

    max_steps: int = 400  # optimizer steps (each one sees batch_size * world_size sequences)
    batch_size: int = 16  # sequences per process per step
    block_size: int = 64  # characters of context
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    lr: float = 3e-3  # peak learning rate (linear warmup, then cosine decay to lr/10)
    warmup_steps: int = 10
    log_every: int = 40  # print the (all-rank average) training loss every this many steps
    eval_batches: int = 8  # validation batches per process at the end
    sample_len: int = 200  # characters generated at the end by rank 0
    seed: int = 1337
    data_file: str = str(HERE / "input.txt")
    dist_timeout_s: int = 300  # how long a collective may wait for a missing peer

    @classmethod
    def from_env(cls) -> Config:
        cfg = cls()
        for f in fields(cls):
            value = os.environ.get(f.name.upper())
            if value not in (None, ""):
                setattr(cfg, f.name, type(getattr(cfg, f.name))(value))
        return cfg


class CharDataset(Dataset):
    """Every window of block_size+1 characters is one sample: x = first T, y = last T."""

    def __init__(self, data: torch.Tensor, block_size: int):
        self.data, self.block_size = data, block_size

    def __len__(self) -> int:
        return len(self.data) - self.block_size - 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.data[i : i + self.block_size + 1]
        return chunk[:-1], chunk[1:]


def setup_distributed(cfg: Config) -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT, ...).

    Returns (rank, world_size, device). Without torchrun's variables this is a plain
    single-process run and no process group is created.
    """
    use_cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if "RANK" not in os.environ:
        return 0, 1, device

    backend = "nccl" if use_cuda else "gloo"
    master = os.environ.get("MASTER_ADDR", "")
    # Gloo picks its network interface from the hostname. When the whole "cluster" is
    # this machine (master on 127.x), the loopback device is the right answer; the
    # local cloud sets GLOO_SOCKET_IFNAME=lo itself, this covers bare torchrun runs.
    on_loopback = master.startswith("127.") or master == "localhost"
    if backend == "gloo" and on_loopback and "GLOO_SOCKET_IFNAME" not in os.environ:
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=cfg.dist_timeout_s))
    return dist.get_rank(), dist.get_world_size(), device


def lr_at(step: int, cfg: Config) -> float:
    """Linear warmup then cosine decay to 10% of the peak: robust for short runs."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def mean_across_ranks(value: float, count: int, device: torch.device, world: int) -> float:
    """Average a per-rank mean over all ranks (weighting by how many items each rank saw)."""
    t = torch.tensor([value * count, float(count)], dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(t)
    return (t[0] / t[1]).item()


def main() -> None:
    cfg = Config.from_env()
    rank, world, device = setup_distributed(cfg)
    is_main = rank == 0
    torch.manual_seed(cfg.seed)  # same initial weights everywhere (DDP also broadcasts rank 0's)

    text = Path(cfg.data_file).read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n_train = int(0.9 * len(data))
    train_ds = CharDataset(data[:n_train], cfg.block_size)
    val_ds = CharDataset(data[n_train:], cfg.block_size)

    # The sampler gives each rank a disjoint, shuffled 1/world of the windows; the
    # shuffle is seeded, and set_epoch() reshuffles identically on every rank.
    sampler = DistributedSampler(
        train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise SystemExit(f"{cfg.data_file} is too small for {world} ranks x {cfg.batch_size}")

    model = GPT(
        GPTConfig(
            vocab_size=len(chars),
            block_size=cfg.block_size,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
        )
    ).to(device)
    # DDP keeps one replica per process and all-reduces gradients during backward().
    # A single process (plain `python3 main.py`) trains the bare model.
    net = model
    if world > 1:
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)

    if is_main:
        print(f"world_size={world}")
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"backend={dist.get_backend() if world > 1 else 'none'} device={device} "
            f"params={n_params} vocab={len(chars)} train_chars={n_train} "
            f"tokens_per_step={cfg.batch_size * cfg.block_size * world}"
        )

    start = time.time()
    step, epoch = 0, 0
    window_sum, window_n, last_window = 0.0, 0, float("nan")
    net.train()
    while step < cfg.max_steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _, loss = net(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages gradients across all ranks here
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()

            window_sum += loss.item()
            window_n += 1
            last = step == cfg.max_steps - 1
            if step % cfg.log_every == 0 or last:
                # Collective: every rank reaches this at the same step.
                last_window = mean_across_ranks(window_sum / window_n, window_n, device, world)
                if is_main:
                    print(f"step {step} loss {last_window:.4f}")
                window_sum, window_n = 0.0, 0
            step += 1
            if step >= cfg.max_steps:
                break
        epoch += 1

    # Validation: each rank scores its own random (seeded) held-out windows.
    net.eval()
    val_loss, val_n = 0.0, 0
    with torch.no_grad():
        g = torch.Generator().manual_seed(cfg.seed + 1 + rank)
        for _ in range(cfg.eval_batches):
            idx = torch.randint(len(val_ds), (cfg.batch_size,), generator=g)
            xb = torch.stack([val_ds[int(i)][0] for i in idx]).to(device)
            yb = torch.stack([val_ds[int(i)][1] for i in idx]).to(device)
            val_loss += model(xb, yb)[1].item()
            val_n += 1
    val_mean = mean_across_ranks(val_loss / max(1, val_n), val_n, device, world)

    if is_main:
        elapsed = time.time() - start
        print(f"final loss {last_window:.4f}")
        print(f"val loss {val_mean:.4f}")
        print(f"train_time_s {elapsed:.1f}")
        prompt = torch.tensor([[stoi.get(c, 0) for c in "The "]], dtype=torch.long, device=device)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)
        out = model.generate(prompt, cfg.sample_len, generator=gen)[0].tolist()
        print("sample:")
        print("".join(chars[i] for i in out))
        print("--- end of sample ---")

    if world > 1:
        dist.barrier()  # leave together: rank 0 was still sampling text
        if dist.get_backend() == "gloo":
            # gloo's teardown in this torch can abort a rank that is done ("terminate
            # called without an active exception", SIGABRT), failing a finished run.
            # Everything is written and every rank is past the barrier: exit without
            # running the process group's destructors.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
