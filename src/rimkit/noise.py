"""Measurement noise and simulation: ``y = A x + n``, reproducible from a seed.

``n ~ N(0, sigma^2)`` independently per real component (for complex measurements the real and
imaginary parts each get variance ``sigma^2``), with ``sigma`` a float or one value per sample
in the units of the data. Optionally the measurement is quantised to 8 bits, as the RIM
paper's "quantised" denoising column does: ``y = round(255 clip(y, 0, 1)) / 255``.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> x = torch.full((2, 1, 8, 8), 0.5)
    >>> noise = GaussianNoise(sigma=torch.tensor([0.0, 0.1]))
    >>> y1 = simulate(x, Identity(), noise, torch.Generator().manual_seed(3))
    >>> y2 = simulate(x, Identity(), noise, torch.Generator().manual_seed(3))
    >>> bool(torch.equal(y1, y2)), bool(torch.equal(y1[0], x[0]))
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, per_sample


def quantize_8bit(y: Tensor) -> Tensor:
    """Clip to ``[0, 1]`` and round to the nearest of the 256 levels ``k / 255``."""
    if y.is_complex():
        raise ValueError("8-bit quantisation applies to real measurements only")
    return torch.round(y.clamp(0.0, 1.0) * 255.0) / 255.0


@dataclass(frozen=True)
class GaussianNoise:
    """White Gaussian noise of standard deviation ``sigma`` (float, or a ``(B,)`` tensor).

    Example:
        >>> GaussianNoise(sigma=25 / 255).sigma > 0
        True
    """

    sigma: Tensor | float = 0.0
    quantize: bool = False

    def __post_init__(self) -> None:
        s = torch.as_tensor(self.sigma, dtype=torch.float64)
        if s.ndim > 1:
            raise ValueError(f"sigma must be a number or one value per sample, got {s.shape}")
        if not torch.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"sigma must be finite and >= 0, got {self.sigma}")

    def __call__(self, clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Add noise to a clean measurement ``A x`` of any shape ``(B, ...)``."""
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator (torch.Generator().manual_seed(0)) or "
                f"None, got {type(generator).__name__}"
            )
        s = per_sample(self.sigma, clean.shape[0], clean, "sigma")
        s = s.reshape((clean.shape[0],) + (1,) * (clean.ndim - 1))
        real_dtype = clean.real.dtype
        if clean.is_complex():  # unit variance in the real and in the imaginary part
            pairs = torch.randn(*clean.shape, 2, generator=generator, dtype=real_dtype)
            noise = torch.view_as_complex(pairs)
        else:
            noise = torch.randn(clean.shape, generator=generator, dtype=real_dtype)
        y = clean + s * noise.to(clean.device)
        return quantize_8bit(y) if self.quantize else y


def simulate(
    x: Tensor,
    operator: LinearOperator,
    noise: GaussianNoise | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Make the measurement ``y = A x + n`` of a clean batch ``x``; same seed, same ``y``.

    For complex measurements the real and imaginary parts each get noise of std ``sigma``.
    """
    clean = operator(x)
    if noise is None:
        return clean
    return noise(clean, generator)
