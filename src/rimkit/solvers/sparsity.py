"""Sparsity in an orthonormal wavelet basis: ISTA and FISTA.

Both minimise, per sample,

    f(x) = 1/2 ||A x - y||^2 + lambda ||M W x||_1

with ``W`` the orthonormal multi-level 2-D wavelet transform of
:class:`~rimkit.solvers.wavelets.WaveletTransform` and ``M`` a 0/1 mask that leaves the coarsest
approximation coefficients unpenalised (``penalize_approximation=False``, the default; they carry
the local mean) or penalises all (``True``). Since ``W`` is orthonormal the proximal map is the
closed form ``prox_{t lambda ||M W .||_1}(v) = W^T soft_{t lambda}(W v)`` (soft threshold on the
masked coefficients), and each step is

    x_{k+1} = prox_{t lambda ||M W .||_1}(z_k - t Re A^H (A z_k - y)),      t = 1 / ||A||^2

with ``z_k = x_k`` (ISTA, monotone) or FISTA's extrapolation
``z_k = x_k + (t_{k-1} - 1) / t_k (x_k - x_{k-1})`` (``O(1/k^2)``, not monotone). The monotone
variant MFISTA (Beck & Teboulle 2009) keeps ``x_{k+1} = x_k`` whenever the prox step would raise
``f``.

Image sizes that are not multiples of ``2^levels``: ``levels`` is first limited to
``floor(log2(min(H, W)))``; then the problem is solved on the image extended to the next multiple
(right and bottom, started from edge-replicated values) with the forward model
``A o crop``. The added pixels are unobserved and filled by the prior alone; the estimate is
cropped back. ``W`` stays exactly orthonormal, so the prox stays exact.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> y = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    >>> r = FISTAWavelet(weight=0.05, iterations=5, wavelet="haar", levels=2)(y, Identity())
    >>> r.final.shape, len(r.objective)
    (torch.Size([1, 1, 16, 16]), 5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from rimkit.operators.base import LinearOperator
from rimkit.solvers.base import (
    Recorder,
    SolverResult,
    VariationalSolver,
    adjoint_real,
    bcast,
    estimate_lipschitz,
    solver_start,
    sq_norm,
)
from rimkit.solvers.wavelets import WaveletTransform, max_levels, padded_size

__all__ = ["FISTAWavelet", "ISTAWavelet", "soft_threshold"]


def soft_threshold(v: Tensor, threshold: Tensor | float) -> Tensor:
    """``sign(v) max(|v| - threshold, 0)``: the proximal map of ``threshold ||.||_1``.

    Example:
        >>> import torch
        >>> soft_threshold(torch.tensor([-2.0, 0.5, 3.0]), 1.0).tolist()
        [-1.0, 0.0, 2.0]
    """
    return torch.sign(v) * torch.clamp(v.abs() - threshold, min=0)


class _Extended(LinearOperator):
    """``A o crop``: the operator on the image extended to ``(H', W')``; adjoint zero-pads."""

    def __init__(self, op: LinearOperator, size: tuple[int, int], padded: tuple[int, int]):
        super().__init__()
        self.op, self.size, self.padded = op, size, padded

    def crop(self, z: Tensor) -> Tensor:
        return z[..., : self.size[0], : self.size[1]]

    def forward(self, z: Tensor) -> Tensor:
        return self.op(self.crop(z))

    def adjoint(self, r: Tensor) -> Tensor:
        g = self.op.adjoint(r)  # (B, C, H, W)
        return F.pad(g, (0, self.padded[1] - self.size[1], 0, self.padded[0] - self.size[0]))


@dataclass(frozen=True)
class _WaveletProximalGradient(VariationalSolver):
    """Shared parts of :class:`ISTAWavelet` and :class:`FISTAWavelet`."""

    weight: float = 0.05
    iterations: int = 100
    wavelet: str = "db4"
    levels: int = 4
    penalize_approximation: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        WaveletTransform(self.wavelet, self.levels)  # checks the name and the levels

    def _acceleration(self) -> str:
        raise NotImplementedError

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        start = solver_start(y, operator, x0)  # (B, C, H, W)
        size = (start.shape[-2], start.shape[-1])
        levels = max_levels(size, self.levels)
        padded = padded_size(size, levels)
        op = _Extended(operator, size, padded)
        wt = WaveletTransform(self.wavelet, levels).to(start.device)
        mask = wt.detail_mask(padded, start.device)  # (H', W')
        if self.penalize_approximation:
            mask = torch.ones_like(mask)
        lam = self.weight

        def objective(ax: Tensor, coeffs: Tensor) -> Tensor:  # (B,) from A x and W x
            l1 = (coeffs.abs() * mask).reshape(coeffs.shape[0], -1).sum(dim=1)
            return 0.5 * sq_norm(ax - y) + lam * l1

        def prox(v: Tensor, threshold: Tensor) -> tuple[Tensor, Tensor]:
            c = wt(v)  # (B, C, H', W') packed coefficients
            c = torch.where(mask, soft_threshold(c, threshold), c)
            return wt.adjoint(c), c  # the prox point and its coefficients (W is orthonormal)

        pad = (0, padded[1] - size[1], 0, padded[0] - size[0])
        x = F.pad(start, pad, mode="replicate") if any(pad) else start  # (B, C, H', W')
        lipschitz = estimate_lipschitz(op, x, self.power_iterations) * self.safety
        step = bcast(1.0 / lipschitz, x)  # (B, 1, 1, 1)
        threshold = step * lam
        ax = op(x)
        fx = objective(ax, wt(x))  # (B,)
        initial = fx
        z, az = x, ax  # where the gradient is taken, and A z (tracked by linearity)
        t = 1.0
        accel = self._acceleration()
        record = Recorder(self.keep_estimates)
        for _ in range(self.iterations):
            u, cu = prox(z - step * adjoint_real(op, az - y), threshold)  # (B, C, H', W')
            au = op(u)
            fu = objective(au, cu)
            if accel == "mfista":
                better = fu <= fx  # (B,)
                x_new = torch.where(bcast(better, u), u, x)
                ax_new = torch.where(bcast(better, au), au, ax)
                fx_new = torch.where(better, fu, fx)
            else:
                x_new, ax_new, fx_new = u, au, fu
            if accel == "none":
                z, az = x_new, ax_new
            else:
                t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
                a, b = t / t_new, (t - 1.0) / t_new
                # FISTA has u = x_new: z = x_new + b (x_new - x); MFISTA adds a (u - x_new)
                z = x_new + a * (u - x_new) + b * (x_new - x)
                az = ax_new + a * (au - ax_new) + b * (ax_new - ax)
                t = t_new
            x, ax, fx = x_new, ax_new, fx_new
            record(op.crop(x), fx)
        return record.result(initial)


@dataclass(frozen=True)
class ISTAWavelet(_WaveletProximalGradient):
    """ISTA on ``1/2 ||A x - y||^2 + lambda ||M W x||_1``; the objective decreases monotonically.

    Args:
        weight: ``lambda > 0``. Default ``0.05``, a generic value for images in ``[0, 1]``.
        iterations: steps ``K >= 1`` (default 100).
        wavelet: an orthogonal PyWavelets name (default ``'db4'``).
        levels: decomposition levels (default 4; limited for small images, see the module).
        penalize_approximation: also threshold the coarsest approximation (default False).
        power_iterations, safety: the ``||A||^2`` estimate for the step ``1 / ||A||^2``.
        keep_estimates: keep every ``x_k`` (default) or only the last.

    Example:
        >>> import torch
        >>> from rimkit.operators import Identity
        >>> y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
        >>> r = ISTAWavelet(weight=0.1, iterations=5, wavelet="db2", levels=2)(y, Identity())
        >>> bool((r.objective_stacked().diff(dim=0) <= 1e-12).all())
        True
    """

    name = "ista-wavelet"

    def _acceleration(self) -> str:
        return "none"


@dataclass(frozen=True)
class FISTAWavelet(_WaveletProximalGradient):
    """FISTA on ``1/2 ||A x - y||^2 + lambda ||M W x||_1``; ``monotone=True`` is MFISTA.

    Same arguments as :class:`ISTAWavelet`, plus ``monotone`` (default False): plain FISTA is
    not monotone; MFISTA keeps the previous iterate when the step would raise the objective and
    keeps FISTA's ``O(1/k^2)`` rate.

    Example:
        >>> import torch
        >>> from rimkit.operators import Inpainting, random_mask
        >>> x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
        >>> op = Inpainting(random_mask(x.shape, 0.3, torch.Generator().manual_seed(0)))
        >>> fista = FISTAWavelet(weight=0.02, iterations=5, wavelet="haar", monotone=True)
        >>> r = fista(op(x), op)
        >>> bool((r.objective_stacked().diff(dim=0) <= 0).all())
        True
    """

    monotone: bool = False
    name = "fista-wavelet"

    def _acceleration(self) -> str:
        return "mfista" if self.monotone else "fista"
