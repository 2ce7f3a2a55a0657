"""Cartesian single-coil MRI: ``y = M F x`` with the orthonormal centred 2-D FFT ``F``.

``F x = fftshift(fft2(ifftshift(x)))`` with ``norm="ortho"`` (so ``F^H F = I``) and ``M`` a 0/1
sampling mask over k-space; ``A^H y = F^H (M y)``. Images and k-space are complex.

Masks for accelerated acquisitions, at any real acceleration factor ``R >= 1`` (a fraction
``1 / R`` of k-space is sampled):

- :func:`variable_density_mask`: 1-D Cartesian (whole phase-encoding columns), a fully sampled
  centre and the other columns drawn with a Gaussian density around the centre;
- :func:`gaussian_2d_mask`: 2-D points drawn with a Gaussian density, centre fully sampled;
- :func:`random_columns_mask`, :func:`equispaced_columns_mask`: fastMRI's column masks (a fully
  sampled centre, the other columns uniformly at random or equally spaced).

Example:
    >>> import torch
    >>> mask = variable_density_mask((32, 32), acceleration=4, generator=torch.Generator())
    >>> int(mask[0, 0, 0].sum().item())    # 32 / 4 columns
    8
    >>> op = CartesianMRI(mask)
    >>> op(torch.rand(1, 1, 32, 32, dtype=torch.complex64)).shape
    torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator, check_image


def fft2c(x: Tensor) -> Tensor:
    """Orthonormal centred 2-D FFT over the last two axes.

    Example:
        >>> x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
        >>> k = fft2c(x)  # the image's mean sits at the centre, (4, 4), times sqrt(64)
        >>> torch.allclose(k[0, 0, 4, 4].real, x.mean() * 8), torch.allclose(ifft2c(k).real, x)
        (True, True)
    """
    shifted = torch.fft.ifftshift(x, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.fft2(shifted, norm="ortho"), dim=(-2, -1))


def ifft2c(k: Tensor) -> Tensor:
    """Inverse of :func:`fft2c` (and its adjoint): see :func:`fft2c`'s example."""
    shifted = torch.fft.ifftshift(k, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(shifted, norm="ortho"), dim=(-2, -1))


def _check_acceleration(acceleration: float) -> float:
    if not (math.isfinite(float(acceleration)) and float(acceleration) >= 1.0):
        raise ValueError(f"acceleration must be a finite number >= 1, got {acceleration}")
    return float(acceleration)


def _check_center(center_fraction: float) -> float:
    if not 0.0 <= float(center_fraction) <= 1.0:
        raise ValueError(f"center_fraction must lie in [0, 1], got {center_fraction}")
    return float(center_fraction)


def _draw(density: Tensor, fixed: Tensor, total: int, generator: torch.Generator | None) -> Tensor:
    """0/1 vector: the ``fixed`` entries plus ``total - fixed`` more drawn from ``density``."""
    chosen = fixed.clone()
    extra = total - int(fixed.sum())
    if extra > 0:
        weights = density * (~fixed)
        picked = torch.multinomial(weights, extra, replacement=False, generator=generator)
        chosen[picked] = True
    return chosen


def variable_density_mask(
    shape: tuple[int, int],
    acceleration: float,
    center_fraction: float = 0.08,
    density_std: float = 0.25,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Column mask ``(batch, 1, H, W)`` sampling ``round(W / acceleration)`` of ``W`` columns.

    The central ``round(center_fraction * W)`` columns are always sampled (capped at the
    total); the others are drawn without replacement with probability proportional to
    ``exp(-d^2 / (2 (density_std * W)^2))``, ``d`` the distance to the centre column ``W // 2``.

    Example:
        >>> mask = variable_density_mask((32, 64), 4, generator=torch.manual_seed(0))
        >>> mask.shape, int(mask[0, 0, 0].sum()), bool(mask[0, 0, :, 30:34].all())
        (torch.Size([1, 1, 32, 64]), 16, True)
    """
    h, w = _check_shape(shape)
    r = _check_acceleration(acceleration)
    total = max(1, round(w / r))
    n_center = min(total, round(_check_center(center_fraction) * w))
    cols = torch.arange(w, dtype=torch.float64)
    density = torch.exp(-((cols - w // 2) ** 2) / (2 * (density_std * w) ** 2))
    fixed = torch.zeros(w, dtype=torch.bool)
    start = w // 2 - n_center // 2
    fixed[start : start + n_center] = True
    masks = [_draw(density, fixed, total, generator) for _ in range(batch)]
    return _whole_columns(torch.stack(masks), h)


def gaussian_2d_mask(
    shape: tuple[int, int],
    acceleration: float,
    center_fraction: float = 0.08,
    density_std: float = 0.25,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Point mask ``(batch, 1, H, W)`` sampling ``round(H * W / acceleration)`` k-space points.

    A centred disc of radius ``center_fraction * min(H, W) / 2`` is always sampled (capped
    at the total); the other points are drawn with a 2-D Gaussian density of standard
    deviation ``density_std`` times the size along each axis.
    """
    h, w = _check_shape(shape)
    r = _check_acceleration(acceleration)
    total = max(1, round(h * w / r))
    ky = (torch.arange(h, dtype=torch.float64) - h // 2)[:, None]
    kx = (torch.arange(w, dtype=torch.float64) - w // 2)[None, :]
    density = torch.exp(
        -(ky**2) / (2 * (density_std * h) ** 2) - kx**2 / (2 * (density_std * w) ** 2)
    )
    radius = _check_center(center_fraction) * min(h, w) / 2
    dist = torch.sqrt(ky**2 + kx**2).flatten()
    fixed = torch.zeros(h * w, dtype=torch.bool)
    inside = torch.nonzero(dist <= radius).flatten()
    fixed[inside[dist[inside].argsort()][:total]] = True
    masks = [_draw(density.flatten(), fixed, total, generator) for _ in range(batch)]
    return torch.stack(masks).float().reshape(batch, 1, h, w)


def fastmri_center_fraction(acceleration: float) -> float:
    """fastMRI's fully sampled centre for its column masks: 0.08 of the columns at R = 4 and
    0.04 at R = 8, that is ``0.32 / R``."""
    return min(1.0, 0.32 / _check_acceleration(acceleration))


def random_columns_mask(
    shape: tuple[int, int],
    acceleration: float,
    center_fraction: float | None = None,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Column mask ``(batch, 1, H, W)`` as fastMRI's ``RandomMaskFunc`` draws it: the central
    ``n = round(center_fraction * W)`` columns (default :func:`fastmri_center_fraction`), and
    every other column independently with probability ``(W / R - n) / (W - n)``, so ``W / R``
    columns on average (the count varies from draw to draw).

    Example:
        >>> mask = random_columns_mask((8, 368), 4, generator=torch.Generator().manual_seed(0))
        >>> bool(mask[0, 0, 0, 170:199].all()), 70 < int(mask[0, 0, 0].sum()) < 115  # 29 central
        (True, True)
    """
    h, w = _check_shape(shape)
    r = _check_acceleration(acceleration)
    fixed = _center_columns(w, r, center_fraction)
    n = int(fixed.sum())
    probability = max(0.0, (w / r - n) / (w - n)) if w > n else 0.0
    draws = torch.rand(batch, w, generator=generator, dtype=torch.float64) < probability
    return _whole_columns(draws | fixed, h)


def equispaced_columns_mask(
    shape: tuple[int, int],
    acceleration: float,
    center_fraction: float | None = None,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Column mask ``(batch, 1, H, W)`` as fastMRI's ``EquispacedMaskFunc`` draws it: the
    central ``n`` columns (as :func:`random_columns_mask`) and every ``a``-th column from a
    random offset, ``a = R (W - n) / (W - n R)`` (rounded positions), so that about ``W / R``
    columns are sampled in all.

    Example:
        >>> mask = equispaced_columns_mask((4, 64), 4, generator=torch.Generator().manual_seed(0))
        >>> int(mask[0, 0, 0].sum())    # 64 / 4
        16
    """
    h, w = _check_shape(shape)
    r = _check_acceleration(acceleration)
    fixed = _center_columns(w, r, center_fraction)
    n = int(fixed.sum())
    masks = []
    for _ in range(batch):
        chosen = fixed.clone()
        if w - n * r > 0:
            spacing = r * (w - n) / (w - n * r)
            high = max(1, round(spacing))
            offset = int(torch.randint(0, high, (1,), generator=generator))
            positions = torch.arange(offset, w, spacing, dtype=torch.float64).round().long()
            chosen[positions.clamp(max=w - 1)] = True
        masks.append(chosen)
    return _whole_columns(torch.stack(masks), h)


def _whole_columns(columns: Tensor, h: int) -> Tensor:
    """A column choice ``(batch, W)`` as a float mask ``(batch, 1, H, W)`` of whole columns."""
    batch, w = columns.shape
    return columns.float()[:, None, None, :].expand(batch, 1, h, w).contiguous()


def _center_columns(w: int, acceleration: float, center_fraction: float | None) -> Tensor:
    """The fully sampled central columns, at most ``round(W / R)`` of them, as a bool ``(W,)``."""
    fraction = fastmri_center_fraction(acceleration) if center_fraction is None else center_fraction
    n = min(max(1, round(w / acceleration)), round(_check_center(fraction) * w))
    fixed = torch.zeros(w, dtype=torch.bool)
    start = w // 2 - n // 2
    fixed[start : start + n] = True
    return fixed


def check_mask(mask: Tensor) -> Tensor:
    """``mask`` as float 0/1 of shape ``(B, 1, H, W)``, or a ``ValueError`` naming what is wrong."""
    mask = torch.as_tensor(mask)
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (B, 1, H, W), got {tuple(mask.shape)}")
    values = mask.float()
    if not bool(((values == 0) | (values == 1)).all()):
        raise ValueError("mask values must be 0 (not sampled) or 1 (sampled)")
    return values


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(s) < 1 for s in shape):
        raise ValueError(f"mask shape must be (H, W) with positive sizes, got {shape}")
    return int(shape[0]), int(shape[1])


class CartesianMRI(LinearOperator):
    """Single-coil Cartesian MRI: ``A x = mask * fft2c(x)``, ``A^H y = ifft2c(mask * y)``.

    ``mask`` is 0/1 of shape ``(B or 1, 1, H, W)``; a real image is treated as complex with
    zero imaginary part. Use :class:`~rimkit.operators.ComplexAsChannels` to present complex
    images to a network as two real channels.

    Example:
        >>> import torch
        >>> op = CartesianMRI(torch.ones(1, 1, 4, 4))
        >>> x = torch.rand(1, 1, 4, 4, dtype=torch.complex128)
        >>> torch.allclose(op.adjoint(op(x)), x)   # fully sampled: A^H A = I
        True
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", check_mask(mask), persistent=False)

    @property
    def acceleration(self) -> Tensor:
        """Per-sample acceleration factor ``H * W / (number of sampled points)``."""
        sampled = self.mask.flatten(1).sum(dim=1)
        return self.mask[0].numel() / sampled

    def _check(self, x: Tensor, name: str) -> Tensor:
        check_image(x, name, allow_complex=True)
        if tuple(x.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise ValueError(
                f"{name} is {x.shape[-2]}x{x.shape[-1]} but the mask is "
                f"{self.mask.shape[-2]}x{self.mask.shape[-1]}"
            )
        if self.mask.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"the operator holds {self.mask.shape[0]} masks for {x.shape[0]}")
        if not x.is_complex():
            x = torch.complex(x, torch.zeros_like(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self._check(x, "x")
        return fft2c(x) * self.mask.to(x.real.dtype)  # (B, C, H, W) complex

    def adjoint(self, y: Tensor) -> Tensor:
        y = self._check(y, "y")
        return ifft2c(y * self.mask.to(y.real.dtype))


MRI_MASKS = {
    "columns": variable_density_mask,
    "points": gaussian_2d_mask,
    "random": random_columns_mask,
    "equispaced": equispaced_columns_mask,
}
"""The sampling patterns by name: rimkit's variable-density columns and 2-D Gaussian points,
and fastMRI's random and equispaced columns."""
"""Mask name -> its generator: ``columns`` (1-D variable density), ``points`` (2-D Gaussian)."""
