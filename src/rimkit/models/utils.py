"""Small helpers shared by the models: parameter counts, padding to a stride."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """The number of (trainable) scalar parameters of ``module``.

    Example:
        >>> from torch import nn
        >>> count_parameters(nn.Conv2d(2, 4, 3))
        76
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "replicate") -> Tensor:
    """Pad ``x`` ``(B, C, H, W)`` at the bottom and right so ``H`` and ``W`` divide ``multiple``.

    Crop the result back with ``y[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"  # reflect needs more pixels than it pads
    return F.pad(x, (0, pw, 0, ph), mode=mode)
