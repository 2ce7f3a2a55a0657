"""Photon-counting (Poisson-Gaussian) noise made Gaussian: the generalised Anscombe transform.

A camera or detector that counts photons records ``z = gain * p + offset + n`` with ``p``
Poisson (the photons) and ``n ~ N(0, read_noise^2)``: the noise grows with the signal, which
a denoiser trained on Gaussian noise of one sigma does not expect. The generalised Anscombe
transform (Starck, Murtagh & Bijaoui 1998)

    f(z) = 2 / gain * sqrt(max(gain * (z - offset) + 3/8 gain^2 + read_noise^2, 0))

makes it nearly Gaussian with sigma 1 everywhere (for a few photons and more). Denoise
``f(z)`` at sigma 1, then map back with the closed-form approximation of the exact unbiased
inverse (Makitalo & Foi 2011, 2013), which keeps dark regions unbiased where the algebraic
inverse ``(D / 2)^2 - 3/8`` would not:

    I(D) = D^2 / 4 + sqrt(3/2) / (4 D) - 11 / (8 D^2) + 5 sqrt(3/2) / (8 D^3) - 1/8
    z = gain * (I(D) - read_noise^2 / gain^2) + offset

Example:
    >>> import numpy as np
    >>> photons = PhotonNoise(gain=2.0, read_noise=3.0)
    >>> rng = np.random.default_rng(0)
    >>> z = 2.0 * rng.poisson(20.0, 100_000) + rng.normal(0, 3.0, 100_000)   # 20 photons
    >>> round(float(photons.stabilise(z).std()), 2)
    1.0
    >>> mean = photons.stabilise(z).mean()
    >>> round(float(photons.unstabilise(np.array([mean]))[0]), 1)   # the mean, 2 * 20
    40.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PhotonNoise"]


@dataclass(frozen=True)
class PhotonNoise:
    """A photon-counting detector's noise: ``gain`` (counts per photon), the Gaussian
    ``read_noise`` (std, in counts) and the ``offset`` (the dark level, in counts) its counts
    carry. ``PhotonNoise()`` is pure Poisson noise of photon counts."""

    gain: float = 1.0
    read_noise: float = 0.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not (_number(self.gain) and self.gain > 0):
            raise ValueError(f"gain (counts per photon) must be a number > 0, got {self.gain!r}")
        if not (_number(self.read_noise) and self.read_noise >= 0):
            raise ValueError(f"read_noise must be a number >= 0, got {self.read_noise!r}")
        if not _number(self.offset):
            raise ValueError(f"offset must be a finite number, got {self.offset!r}")

    def stabilise(self, counts: np.ndarray) -> np.ndarray:
        """``f(z)``: counts to values whose noise is nearly Gaussian with sigma 1."""
        z = np.asarray(counts, dtype=np.float64)
        inside = self.gain * (z - self.offset) + 0.375 * self.gain**2 + self.read_noise**2
        return 2.0 / self.gain * np.sqrt(np.maximum(inside, 0.0))

    def unstabilise(self, stabilised: np.ndarray) -> np.ndarray:
        """Counts from denoised stabilised values: the closed-form unbiased inverse of
        :meth:`stabilise`; values below ``f`` of no photons, ``2 sqrt(3/8)``, count none."""
        root = math.sqrt(1.5)
        d = np.maximum(np.asarray(stabilised, dtype=np.float64), root)  # root = 2 sqrt(3/8)
        photons = d**2 / 4 + root / (4 * d) - 11 / (8 * d**2) + 5 * root / (8 * d**3) - 0.125
        photons = np.maximum(photons - (self.read_noise / self.gain) ** 2, 0.0)
        return self.gain * photons + self.offset


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
