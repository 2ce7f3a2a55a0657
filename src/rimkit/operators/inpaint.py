"""Inpainting: a pixel mask keeps the observed pixels and zeroes the missing ones.

``A x = m * x`` with ``m`` in {0, 1}; the operator is self-adjoint and ``A^H A = A``.

Example:
    >>> import torch
    >>> mask = random_mask((1, 1, 8, 8), missing_fraction=0.25, generator=torch.Generator())
    >>> int(mask.sum().item())
    48
"""

from __future__ import annotations

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, check_image


def random_mask(
    shape: tuple[int, int, int, int],
    missing_fraction: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw a 0/1 mask of ``shape`` with exactly ``round(missing_fraction * H * W)`` zeros,
    at most ``H * W - 1``: one pixel at least stays measured.

    The same pixels are missing in every channel; each sample of the batch has its own mask.
    ``shape`` is ``(B, C, H, W)``; ``missing_fraction`` must lie in ``[0, 1)``.

    Example:
        >>> random_mask((1, 1, 4, 4), 0.999).sum().item()   # not round(15.98) = 16 missing
        1.0
    """
    if len(shape) != 4:
        raise ValueError(f"mask shape must be (B, C, H, W), got {shape}")
    if not 0.0 <= float(missing_fraction) < 1.0:
        raise ValueError(f"missing fraction must lie in [0, 1), got {missing_fraction}")
    b, c, h, w = shape
    n_missing = min(round(float(missing_fraction) * h * w), h * w - 1)
    order = torch.rand(b, h * w, generator=generator).argsort(dim=1)  # (B, H*W)
    keep = torch.ones(b, h * w, dtype=dtype)
    keep.scatter_(1, order[:, :n_missing], 0.0)
    return keep.reshape(b, 1, h, w).expand(b, c, h, w).contiguous()


class Inpainting(LinearOperator):
    """Keep the pixels where ``mask`` is 1, zero the others.

    ``mask`` has shape ``(B or 1, C or 1, H, W)`` with values 0 or 1 (bool or float); a batch
    dimension of B gives each sample its own mask.

    Example:
        >>> import torch
        >>> op = Inpainting(torch.tensor([[[[1.0, 0.0]]]]))
        >>> op(torch.tensor([[[[3.0, 4.0]]]])).tolist()
        [[[[3.0, 0.0]]]]
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        mask = torch.as_tensor(mask)
        if mask.ndim != 4:
            raise ValueError(f"mask must have shape (B, C, H, W), got {tuple(mask.shape)}")
        values = mask.float()
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError("mask values must be 0 (missing) or 1 (observed)")
        self.register_buffer("mask", values, persistent=False)

    def _check(self, x: Tensor, name: str) -> None:
        check_image(x, name, allow_complex=True)
        mb, mc, mh, mw = self.mask.shape
        if (mh, mw) != tuple(x.shape[-2:]):
            raise ValueError(
                f"{name} is {x.shape[-2]}x{x.shape[-1]} but the mask is {mh}x{mw}; "
                "give a mask of the image size"
            )
        if mb not in (1, x.shape[0]) or mc not in (1, x.shape[1]):
            raise ValueError(
                f"mask of shape {tuple(self.mask.shape)} does not fit a batch of shape "
                f"{tuple(x.shape)}; its batch and channel sizes must be 1 or match"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, "x")
        return x * self.mask.to(x.real.dtype)

    def adjoint(self, y: Tensor) -> Tensor:
        self._check(y, "y")
        return y * self.mask.to(y.real.dtype)

    def normal(self, x: Tensor) -> Tensor:
        return self.forward(x)
