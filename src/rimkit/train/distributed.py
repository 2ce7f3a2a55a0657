"""A process's place in a distributed training run (``torchrun`` or ``rimkit train --nproc N``),
its device and process group, and the mean of a value over the processes.

Example:
    >>> Distributed.from_env().world >= 1    # 1 outside torchrun
    True
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import Tensor

from rimkit.runtime import check_device
from rimkit.train.config import (
    OptimConfig,
)


@dataclasses.dataclass
class Distributed:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_process(optim: OptimConfig, dist: Distributed) -> torch.device:
    """Threads, the device, and the process group of a distributed run."""
    check_device(optim.device)
    if optim.threads:
        torch.set_num_threads(optim.threads)
    device = torch.device(optim.device if dist.world == 1 else _ddp_device(optim, dist))
    if dist.world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, rank=dist.rank, world_size=dist.world)
    return device


def dist_world() -> int:
    return Distributed.from_env().world


def mean_over_processes(loss: Tensor, finite: Tensor | bool) -> tuple[Tensor, bool]:
    """The mean of ``loss`` over a distributed run's processes, and whether every one of them
    had ``finite`` (one all-reduce of ``[loss, not finite]``, one wait for the device)."""
    unfinished = ~torch.as_tensor(finite, device=loss.device)
    stats = torch.stack([loss.float(), unfinished.float()])
    torch.distributed.all_reduce(stats)  # sum over processes
    return stats[0] / torch.distributed.get_world_size(), bool(stats[1] == 0)


def _ddp_device(optim: OptimConfig, dist: Distributed) -> str:
    if optim.device.startswith("cuda"):
        torch.cuda.set_device(dist.local_rank)
        return f"cuda:{dist.local_rank}"
    return "cpu"
