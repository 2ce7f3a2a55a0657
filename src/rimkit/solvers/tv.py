"""Total variation: ``min_x 1/2 ||A x - y||^2 + lambda TV(x)`` by Chambolle-Pock.

Isotropic TV per channel with forward differences and Neumann boundary (the last difference in
each direction is zero):

    TV(x) = sum_{c, i, j} sqrt((D_h x)_{cij}^2 + (D_v x)_{cij}^2),      ||D||^2 <= 8.

The primal-dual algorithm (Chambolle & Pock 2011) is applied to ``F(K x) + G(x)`` with the
stacked operator ``K = [A; D]``, ``F(u, v) = 1/2 ||u - y||^2 + lambda ||v||_{2,1}`` and
``G = 0``, so any linear ``A`` works through its forward and adjoint only:

    p <- (p + s (A x_bar - y)) / (1 + s)                      (prox of s F_1*)
    q <- proj_{|q_ij| <= lambda}(q + s D x_bar)               (prox of s F_2*)
    x_new <- x - tau (Re A^H p + D^T q)
    x_bar <- 2 x_new - x

with ``tau = 0.99 r / ||K||``, ``s = 0.99 / (r ||K||)`` and ``||K||^2 <= ||A||^2 + 8``
(``||A||^2`` by power iteration), which satisfies ``tau s ||K||^2 < 1`` for any ratio ``r``.
The ratio decides how fast it converges: the image is of order 1 while the TV dual ``q`` is
bounded by ``lambda``, so the default balances the two scales,

    r = clip(0.5 / sqrt(lambda), 1, 30),

which takes low-noise deblurring (``lambda`` near 0.002) to its minimiser in about 100 steps,
where ``r = 1`` is still 2.4 dB short (BENCHMARKS.md, tv-convergence: 9 px motion blur).
Where ``||A||`` is large (random projections at small ``m / n``) or the weight tiny (noiseless
lensing) 100 steps can be 0.4-4 dB short of the minimiser's PSNR; give more ``iterations`` (the
tuned weights of those tasks are for 1000: ``rimkit.solvers.tuning.TASK_ITERATIONS``) or a
larger ``step_ratio``. The objective is not monotone along the iterates but decreases overall.
``A x_bar = 2 A x_new - A x`` by linearity, so each step costs one forward and one adjoint.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> y = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    >>> y[..., 4:12, 4:12] = 1.0
    >>> r = TotalVariation(weight=0.01, iterations=50)(y, Identity())
    >>> bool(r.objective[-1] < r.initial_objective + 1e-12)
    True
"""

from __future__ import annotations

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
    check_positive,
    estimate_lipschitz,
    solver_start,
    sq_norm,
)

__all__ = ["TotalVariation", "gradient", "gradient_adjoint", "total_variation"]


def gradient(x: Tensor) -> Tensor:
    """Forward differences with Neumann boundary: ``(B, C, H, W)`` to ``(B, C, 2, H, W)``.

    Channel 0 of the new axis is the horizontal difference ``x[.., j+1] - x[.., j]`` and 1 the
    vertical one; both are zero on the last column / row.

    Example:
        >>> import torch
        >>> gradient(torch.tensor([[[[0.0, 1.0, 3.0]]]]))[0, 0, 0].tolist()
        [[1.0, 2.0, 0.0]]
    """
    dh = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))  # (B, C, H, W)
    dv = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))  # (B, C, H, W)
    return torch.stack([dh, dv], dim=2)


def gradient_adjoint(q: Tensor) -> Tensor:
    """``D^T q`` (minus the divergence): ``(B, C, 2, H, W)`` to ``(B, C, H, W)``."""
    qh = q[:, :, 0, :, :-1]  # (B, C, H, W-1) the entries D can reach
    qv = q[:, :, 1, :-1, :]  # (B, C, H-1, W)
    return (F.pad(qh, (1, 0)) - F.pad(qh, (0, 1))) + (
        F.pad(qv, (0, 0, 1, 0)) - F.pad(qv, (0, 0, 0, 1))
    )


def total_variation(x: Tensor) -> Tensor:
    """Isotropic TV per sample, summed over channels; shape ``(B,)``.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> x[..., :, 2:] = 1.0           # a vertical edge of height 4
        >>> total_variation(x).item()
        4.0
    """
    g = gradient(x)  # (B, C, 2, H, W)
    return (g * g).sum(dim=2).sqrt().reshape(x.shape[0], -1).sum(dim=1)


@dataclass(frozen=True)
class TotalVariation(VariationalSolver):
    """Chambolle-Pock on ``1/2 ||A x - y||^2 + lambda TV(x)`` for any linear ``A``.

    Args:
        weight: ``lambda > 0``. Default ``0.05``: for images in ``[0, 1]`` a value near the
            noise standard deviation is a fair start for denoising.
        iterations: primal-dual steps ``K >= 1`` (default 200).
        step_ratio: ``r``, the primal step over ``0.99 / ||K||`` (the dual step is that over
            ``r``); ``None`` (default) balances it with the weight as above.
        power_iterations, safety: the ``||A||^2`` estimate behind the step sizes.
        keep_estimates: keep every ``x_k`` (default) or only the last.

    Example:
        >>> import torch
        >>> from rimkit.operators import Inpainting, random_mask
        >>> op = Inpainting(random_mask((2, 1, 8, 8), 0.3, torch.Generator().manual_seed(0)))
        >>> r = TotalVariation(weight=0.02, iterations=10)(op(torch.rand(2, 1, 8, 8)), op)
        >>> len(r), r.objective[-1].shape
        (10, torch.Size([2]))
    """

    weight: float = 0.05
    iterations: int = 200
    step_ratio: float | None = None
    name = "tv"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.step_ratio is not None:
            check_positive(self.step_ratio, "step_ratio (or None)")

    @property
    def ratio(self) -> float:
        """The primal / dual step ratio ``r`` in use (see the module docstring).

        Example:
            >>> TotalVariation(weight=0.0025).ratio, TotalVariation(weight=1.0).ratio
            (10.0, 1.0)
        """
        if self.step_ratio is not None:
            return float(self.step_ratio)
        return min(max(0.5 / self.weight**0.5, 1.0), 30.0)

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        lam = self.weight
        x = solver_start(y, operator, x0)  # (B, C, H, W)
        norm_k = (estimate_lipschitz(operator, x, self.power_iterations) * self.safety + 8).sqrt()
        r = self.ratio
        tau = 0.99 * r / norm_k  # (B,) primal step
        s = 0.99 / (r * norm_k)  # (B,) dual step, tau * s * ||K||^2 < 1
        tau_x, s_q = bcast(tau, x), bcast(s, x)[..., None]  # (B,1,1,1), (B,1,1,1,1)
        ax = operator(x)  # measurement shape
        s_p = bcast(s, ax)
        p = torch.zeros_like(ax)  # dual of the data term, measurement shape
        q = torch.zeros_like(gradient(x))  # (B, C, 2, H, W) dual of the TV term
        x_bar, ax_bar = x, ax
        record = Recorder(self.keep_estimates)
        initial = 0.5 * sq_norm(ax - y) + lam * total_variation(x)
        for _ in range(self.iterations):
            p = (p + s_p * (ax_bar - y)) / (1 + s_p)
            q = q + s_q * gradient(x_bar)
            q = q / torch.clamp(q.norm(dim=2, keepdim=True) / lam, min=1.0)  # |q_ij| <= lambda
            x_new = x - tau_x * (adjoint_real(operator, p) + gradient_adjoint(q))
            ax_new = operator(x_new)
            x_bar, ax_bar = 2 * x_new - x, 2 * ax_new - ax
            x, ax = x_new, ax_new
            record(x, 0.5 * sq_norm(ax - y) + lam * total_variation(x))
        return record.result(initial)
