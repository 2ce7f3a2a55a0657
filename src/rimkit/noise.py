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

import warnings
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

    Example:
        >>> from rimkit.operators import BicubicDownsample
        >>> x = torch.rand(2, 1, 12, 12)
        >>> y = simulate(x, BicubicDownsample(3), GaussianNoise(2 / 255), torch.manual_seed(0))
        >>> y.shape, torch.equal(y, simulate(x, BicubicDownsample(3), GaussianNoise(2 / 255),
        ...                                  torch.manual_seed(0)))
        (torch.Size([2, 1, 4, 4]), True)
    """
    clean = operator(x)
    if noise is None:
        return clean
    return noise(clean, generator)


UNIT_SCALE_NOTE = "takes sigma on the 0-255 scale"
"""The words of :func:`warn_if_unit_scale`'s note."""


class UnitScaleWarning(UserWarning):
    """:func:`warn_if_unit_scale`'s note: a caller that told its own estimate (or rescaled the
    data, so that a small sigma is meant) filters this category out."""


def warn_if_unit_scale(sigma255: float, where: str, stacklevel: int = 3) -> None:
    """A note when a noise level meant on the 0-255 scale lies in (0, 1): likely the 0-1
    scale by mistake (``25 / 255`` for sigma 25).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_unit_scale(25 / 255, "restore")
        >>> "0.09804 looks like the 0-1 scale" in str(caught[0].message)
        True
    """
    if 0 < sigma255 < 1:
        warnings.warn(
            f"{where} {UNIT_SCALE_NOTE} (25 for sigma 25); {sigma255:.4g} looks like "
            f"the 0-1 scale, and is used as {sigma255:.4g} / 255",
            UnitScaleWarning,
            stacklevel=stacklevel,
        )


def warn_if_255_scale(
    y: Tensor, sigma: Tensor, stacklevel: int = 3, *, what: str = "y, whose values lie"
) -> None:
    """A note when ``sigma`` (in the units of ``y``) exceeds 1 for a real ``y`` on the image
    scale (values within [-1, 2]): likely the 0-255 scale by mistake (``25`` for ``25 / 255``).
    ``what`` names ``y`` in the note (a task of one's own passes its noise-free ``A(target)``,
    since ``y`` drawn with such noise leaves the image scale).
    """
    if y.is_complex() or not bool((sigma > 1).any()):
        return
    if float(y.detach().amin()) >= -1 and float(y.detach().amax()) <= 2:
        warnings.warn(
            f"sigma {float(sigma.max()):.4g} is in the units of {what} on the image scale "
            "(within [-1, 2]): there sigma 25 is 25 / 255; give that if 25 was meant on the "
            "0-255 scale",
            UserWarning,
            stacklevel=stacklevel,
        )
