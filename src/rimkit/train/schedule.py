"""The schedules of a training run: the learning rate at an iteration (linear warm-up, then
``optim.schedule``: constant, cosine decay to ``min_lr_ratio`` or steps) and the number of steps
unrolled at an iteration.

Example:
    >>> from rimkit.train.config import OptimConfig
    >>> optim = OptimConfig(lr=1e-3, iterations=100, warmup=10, min_lr_ratio=0.0)
    >>> lr_at(optim, 0) < lr_at(optim, 10), round(lr_at(optim, 10), 6), lr_at(optim, 100)
    (True, 0.001, 0.0)
"""

from __future__ import annotations

import math

import torch

from rimkit.data import seeded
from rimkit.train.config import (
    ExperimentConfig,
    OptimConfig,
)


def lr_at(optim: OptimConfig, iteration: int) -> float:
    """Learning rate at ``iteration``: linear warm-up, then constant, cosine or step decay
    (the module's example)."""
    if iteration < optim.warmup:
        return optim.lr * (iteration + 1) / optim.warmup
    progress = (iteration - optim.warmup) / max(1, optim.iterations - optim.warmup)
    floor = optim.min_lr_ratio
    if optim.schedule == "cosine":
        return optim.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1))))
    if optim.schedule == "step":
        return optim.lr * (0.1 ** int(progress * 3 // 1) if progress < 1 else 0.001)
    return optim.lr


def unrolled_steps(cfg: ExperimentConfig, iteration: int) -> int:
    """How many steps iteration ``iteration`` unrolls: ``model.train_steps``, or with
    ``optim.max_train_steps`` a draw from ``train_steps .. max_train_steps`` that depends only on
    the seed and the iteration (every process of a distributed run draws the same)."""
    low, high = cfg.model.train_steps, cfg.optim.max_train_steps
    if high is None:
        return low
    draw = torch.randint(low, high + 1, (1,), generator=seeded(cfg.optim.seed, iteration, 3))
    return int(draw)
