"""MAP with a Gaussian (Tikhonov) prior: gradient descent and conjugate gradients.

Both minimise the same quadratic, per sample of the batch,

    f(x) = 1/2 ||A x - y||^2 + lambda/2 ||x||^2,

whose minimiser solves the normal equations ``(A^H A + lambda I) x = A^H y`` (real parts for a
complex operator acting on real images). Conjugate gradients reach it in a few dozen
iterations; gradient descent may stay far from it (on inpainting with a small weight the missing
pixels barely move from the start), so the two differ as run with their tuned iteration counts
(:mod:`rimkit.solvers.tuning`). This is the MAP estimate for noise ``N(0, sigma^2)``
and prior ``x ~ N(0, sigma^2 / lambda)``; see :mod:`rimkit.solvers.base` for the convention.

Example:
    >>> import torch
    >>> from rimkit.operators import Inpainting
    >>> mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]], dtype=torch.float64)
    >>> y = Inpainting(mask)(torch.ones(1, 1, 2, 2, dtype=torch.float64))
    >>> x = ConjugateGradientTikhonov(weight=1.0, iterations=2)(y, Inpainting(mask)).final
    >>> x[0, 0].tolist()    # observed pixels y / (1 + lambda), the missing one 0
    [[0.5, 0.0], [0.5, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rimkit.operators.base import LinearOperator
from rimkit.solvers.base import (
    Reconstructor,
    Recorder,
    SolverResult,
    VariationalSolver,
    adjoint_real,
    bcast,
    check_iterations,
    check_weight,
    dot,
    estimate_lipschitz,
    solver_start,
    sq_norm,
)

__all__ = ["ConjugateGradientTikhonov", "GradientDescentTikhonov", "tikhonov_objective"]


def tikhonov_objective(ax: Tensor, y: Tensor, x: Tensor, weight: float) -> Tensor:
    """``1/2 ||A x - y||^2 + weight/2 ||x||^2`` per sample from ``A x``; shape ``(B,)``."""
    return 0.5 * sq_norm(ax - y) + 0.5 * weight * sq_norm(x)


@dataclass(frozen=True)
class GradientDescentTikhonov(VariationalSolver):
    """Gradient descent on ``1/2 ||A x - y||^2 + lambda/2 ||x||^2`` with step ``1 / L``.

    ``L = ||A||^2 + lambda`` is the Lipschitz constant of the gradient, with ``||A||^2`` from
    ``power_iterations`` steps of power iteration (times ``safety``). With this step the
    objective decreases monotonically and the error contracts by ``1 - lambda / L`` per step.

    Args:
        weight: ``lambda > 0``. Default ``0.01``, a mild prior for images in ``[0, 1]``.
        iterations: number of steps ``K >= 1`` (default 100).
        power_iterations: power-iteration steps for ``||A||^2`` (default 50).
        safety: factor ``>= 1`` on the estimated ``||A||^2`` (default 1.01).
        keep_estimates: keep every ``x_k`` (default) or only the last.

    Example:
        >>> import torch
        >>> from rimkit.operators import Identity
        >>> y = torch.ones(1, 1, 4, 4, dtype=torch.float64)
        >>> r = GradientDescentTikhonov(weight=1.0, iterations=60)(y, Identity())
        >>> round(r.final.mean().item(), 6), bool((r.objective_stacked().diff(dim=0) <= 0).all())
        (0.5, True)
    """

    name = "gd-tikhonov"

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        lam = self.weight
        x = solver_start(y, operator, x0)  # (B, C, H, W)
        lipschitz = estimate_lipschitz(operator, x, self.power_iterations) * self.safety + lam
        step = bcast(1.0 / lipschitz, x)  # (B, 1, 1, 1)
        ax = operator(x)  # measurement shape
        record = Recorder(self.keep_estimates)
        initial = tikhonov_objective(ax, y, x, lam)
        for _ in range(self.iterations):
            grad = adjoint_real(operator, ax - y) + lam * x  # (B, C, H, W)
            x = x - step * grad
            ax = operator(x)
            record(x, tikhonov_objective(ax, y, x, lam))
        return record.result(initial)


@dataclass(frozen=True)
class ConjugateGradientTikhonov(Reconstructor):
    """Conjugate gradients on ``(A^H A + lambda I) x = A^H y``, batched.

    Each sample has its own step ``alpha_k = <r, r> / <p, M p>`` and ``beta_k``, with
    ``M = Re(A^H A) + lambda I`` symmetric positive definite over real images. CG minimises the
    quadratic ``f`` over growing Krylov spaces, so ``f(x_k)`` decreases monotonically. A sample
    stops moving once its residual ``||r||`` falls below ``tol * ||A^H y||`` (no host sync;
    every run takes ``iterations`` steps). Each estimate is the best iterate so far: round-off
    in float32 on an ill-conditioned ``M`` loses CG its conjugacy and can raise ``f``.

    Args:
        weight: ``lambda > 0``. Default ``0.01``.
        iterations: CG steps ``K >= 1`` (default 50).
        tol: relative residual at which a sample stops (default ``1e-10``).
        keep_estimates: keep every ``x_k`` (default) or only the last.

    Example:
        >>> import torch
        >>> from rimkit.operators import Blur, gaussian_kernel
        >>> op = Blur(gaussian_kernel(1.0))
        >>> y = op(torch.rand(2, 1, 16, 16, dtype=torch.float64))
        >>> r = ConjugateGradientTikhonov(weight=1e-2, iterations=5)(y, op)
        >>> r.final.shape, r.objective_stacked().shape
        (torch.Size([2, 1, 16, 16]), torch.Size([5, 2]))
    """

    weight: float = 0.01
    iterations: int = 50
    tol: float = 1e-10
    keep_estimates: bool = True
    name = "cg-tikhonov"

    def __post_init__(self) -> None:
        check_weight(self.weight)
        check_iterations(self.iterations)
        if not (isinstance(self.tol, (int, float)) and 0 <= self.tol < 1):
            raise ValueError(f"tol must be a number in [0, 1), got {self.tol!r}")

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        lam = self.weight
        b = adjoint_real(operator, y)  # (B, C, H, W) right-hand side A^H y
        x = solver_start(y, operator, x0)
        ax = operator(x)  # tracked as A x_k = A x_0 + sum alpha_j A p_j
        r = b - adjoint_real(operator, ax) - lam * x  # (B, C, H, W) residual b - M x
        p = r
        rr = sq_norm(r)  # (B,)
        stop = (self.tol**2) * sq_norm(b)  # (B,)
        zero = torch.zeros_like(rr)
        record = Recorder(self.keep_estimates)
        initial = tikhonov_objective(ax, y, x, lam)
        best_x, best = x, initial  # (B, C, H, W), (B,)
        for _ in range(self.iterations):
            ap = operator(p)
            mp = adjoint_real(operator, ap) + lam * p  # (B, C, H, W)
            pmp = dot(p, mp)  # (B,)
            active = (rr > stop) & (pmp > 0)
            alpha = torch.where(active, rr / torch.where(active, pmp, 1.0), zero)  # (B,)
            x = x + bcast(alpha, x) * p
            ax = ax + bcast(alpha, ap) * ap
            r = r - bcast(alpha, mp) * mp
            rr_new = sq_norm(r)
            beta = torch.where(active, rr_new / torch.where(active, rr, 1.0), zero)
            p = r + bcast(beta, p) * p
            rr = torch.where(active, rr_new, rr)
            objective = tikhonov_objective(ax, y, x, lam)
            lower = objective <= best  # float32 round-off can raise it on an ill-posed M
            best_x = torch.where(bcast(lower, x), x, best_x)
            best = torch.where(lower, objective, best)
            record(best_x, best)
        return record.result(initial)
