"""DistributedDataParallel: one process per device, started by torchrun.

``torchrun --nproc-per-node N -m edgecnn.train MODEL --data ...`` (or ``edgecnn train --nproc N``,
which runs exactly that) sets RANK / WORLD_SIZE / LOCAL_RANK; ``setup`` then joins the process
group: gloo on CPU, nccl on GPU. ``--batch-size`` stays the *global* batch, split evenly over the
ranks, and DDP averages gradients, so N processes take the same optimizer steps as one process
with the same batch (up to float summation order, and BatchNorm, whose statistics are per rank).
Training metrics and validation counts are summed over ranks; only rank 0 prints and writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgecnn.errors import UsageError
from edgecnn.threads import available_cores


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device_type: str) -> Dist:
    """Join the process group torchrun described in the environment; a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank)


def cleanup(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def sum_all(d: Dist, values: list[float] | torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks (float64 on the CPU for gloo; moved to the device for nccl)."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if d.enabled:
        backend = dist.get_backend()
        if backend == "nccl":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def wrap(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m torch.distributed.run --standalone --nproc-per-node N -m edgecnn.train ARGV``;
    returns its exit code."""
    if nproc < 1:
        raise UsageError(f"--nproc must be a positive integer, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "edgecnn.train", *argv]
    env = dict(os.environ)
    # torchrun sets 1 thread per process and warns about it; share the cores out instead, quietly.
    env.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // nproc)))
    return subprocess.call(cmd, env=env)
