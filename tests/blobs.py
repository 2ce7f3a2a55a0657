"""Generated test tensors shared by the model tests: smooth blob images and their noisy copies."""

from __future__ import annotations

import torch
from torch import Tensor

from rimkit.likelihood import GaussianLikelihood
from rimkit.operators import Identity


def smooth_images(n: int, size: int, generator: torch.Generator, channels: int = 1) -> Tensor:
    """Sums of four Gaussian blobs scaled per image to [0.1, 0.9]: ``(n, channels, size, size)``."""
    grid = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    img = torch.zeros(n, channels, size, size)
    for _ in range(4):
        centre = torch.rand(n, channels, 2, generator=generator) * size
        width = 2 + 3 * torch.rand(n, channels, 1, 1, generator=generator)
        amp = torch.randn(n, channels, 1, 1, generator=generator)
        d2 = (yy - centre[..., 0, None, None]) ** 2 + (xx - centre[..., 1, None, None]) ** 2
        img += amp * torch.exp(-d2 / (2 * width**2))
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    return 0.1 + 0.8 * (img - lo) / (hi - lo)


def denoising(x: Tensor, sigma: float = 0.1, seed: int = 1) -> tuple[GaussianLikelihood, Tensor]:
    """``y = x + sigma n`` with a seeded ``n``, and its Gaussian likelihood."""
    g = torch.Generator().manual_seed(seed)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return GaussianLikelihood(Identity(), y, sigma), y
