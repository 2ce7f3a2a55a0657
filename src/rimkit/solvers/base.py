"""The common interface of the classical baselines, their result, and shared numerics.

Every baseline reconstructs from the same three things a RIM sees, ``(y, operator, sigma)``:

    result = baseline.reconstruct(y, operator, sigma)     # or baseline(y, operator, sigma)
    result.final                                           # (B, C, H, W)
    result.estimates                                       # [x_1, ..., x_K]
    result.objective                                       # [f(x_1), ..., f(x_K)], each (B,)

so evaluation code can treat a baseline's :class:`SolverResult` and a RIM's ``Trajectory`` alike
(both have ``estimates`` and ``.final``).

The variational baselines minimise ``f(x) = 1/2 ||A x - y||^2 + lambda R(x)`` over real images
``x``. For noise of standard deviation ``sigma`` this is the MAP objective
``1/(2 sigma^2) ||A x - y||^2 + lambda' R(x)`` multiplied by ``sigma^2``, with
``lambda = sigma^2 lambda'``; the form used here stays well defined at ``sigma = 0`` and its
``lambda`` is in the units of the data term. For a complex operator (MRI) acting on a real
image, gradients use the real part of the adjoint, ``Re(A^H r)``, which is the adjoint of ``A``
over the reals.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> from rimkit.solvers import ConjugateGradientTikhonov
    >>> y = torch.full((2, 1, 8, 8), 0.6, dtype=torch.float64)
    >>> result = ConjugateGradientTikhonov(weight=0.5, iterations=3)(y, Identity(), 0.1)
    >>> len(result), round(result.final[0, 0, 0, 0].item(), 6)   # y / (1 + lambda)
    (3, 0.4)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rimkit.models.rim import Trajectory
from rimkit.noise import warn_if_255_scale
from rimkit.operators.base import LinearOperator, inner

__all__ = [
    "Reconstructor",
    "SolverResult",
    "check_iterations",
    "check_measurement",
    "check_weight",
    "estimate_lipschitz",
]


@dataclass
class SolverResult(Trajectory):
    """The estimates ``x_1 .. x_K`` of a baseline and its objective ``f(x_k)`` per sample: a
    :class:`~rimkit.models.Trajectory` (``final``, ``stacked``) with the objective added.

    ``objective[k]`` has shape ``(B,)`` and belongs to ``estimates[k]``; it is empty for the
    direct (non-iterative) baselines. ``initial_objective`` is ``f(x_0)`` at the starting point,
    where the solver has one. A solver run with ``keep_estimates=False`` keeps only the final
    estimate, but still the whole objective.

    Example:
        >>> import torch
        >>> r = SolverResult([torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)])
        >>> len(r), r.final.sum().item(), r.stacked().shape
        (2, 4.0, torch.Size([2, 1, 1, 2, 2]))
    """

    objective: list[Tensor] = field(default_factory=list)
    initial_objective: Tensor | None = None

    def objective_stacked(self) -> Tensor:
        """The objective as one tensor ``(K, B)``."""
        if not self.objective:
            raise ValueError("this result has no objective: the baseline is not iterative")
        return torch.stack(self.objective)


def check_positive(value: object, name: str) -> float:
    """A finite number ``> 0`` (a step, a ratio); otherwise a ``ValueError`` naming ``name``.

    Example:
        >>> check_positive(0.5, "step")
        0.5
        >>> check_positive(float("inf"), "step_ratio")
        Traceback (most recent call last):
        ...
        ValueError: step_ratio must be a finite number > 0, got inf
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_weight(value: object) -> float:
    """A regularisation weight: a finite number ``> 0``; otherwise a ``ValueError``."""
    return check_positive(value, "weight (the regularisation weight lambda)")


def check_iterations(value: object, name: str = "iterations") -> int:
    """An iteration count: an ``int >= 1``; otherwise a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_operator(operator: object) -> LinearOperator:
    if not isinstance(operator, LinearOperator):
        raise ValueError(
            f"operator must be a rimkit LinearOperator (see rimkit.operators: Identity, Blur, "
            f"Inpainting, BicubicDownsample, CartesianMRI, random_projection, ...), "
            f"got {type(operator).__name__}"
        )
    return operator


def check_measurement(y: object) -> Tensor:
    """``y`` checked as a batch of measurements: a finite float or complex tensor ``(B, ...)``."""
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor (the measurement A x + n), got {type(y)}")
    if y.ndim < 2:
        raise ValueError(f"y must have a batch axis first, (B, ...), got shape {tuple(y.shape)}")
    accepted = (torch.float32, torch.float64, torch.complex64, torch.complex128)
    if y.dtype not in accepted:
        raise ValueError(f"y has dtype {y.dtype}; accepted: float32, float64, complex64/128")
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf; a measurement must be finite")
    return y


def _check_sigma(sigma: object, batch: int) -> Tensor:
    """``sigma`` as a float64 tensor ``(B,)``: a number or one value per sample, finite, >= 0."""
    try:
        s = torch.as_tensor(sigma, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"sigma must be a number or a (B,) tensor, got {sigma!r}") from err
    if s.ndim > 1 or s.numel() not in (1, batch):
        raise ValueError(f"sigma must be a number or {batch} values (one per sample), got {sigma}")
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    return s.reshape(-1).expand(batch)


def bcast(v: Tensor, like: Tensor) -> Tensor:
    """A per-sample ``(B,)`` tensor shaped ``(B, 1, ..., 1)`` to broadcast against ``like``."""
    return v.reshape((v.shape[0],) + (1,) * (like.ndim - 1))


def sq_norm(t: Tensor) -> Tensor:
    """``||t||^2`` per sample, real or complex; shape ``(B,)``."""
    return (t.abs() ** 2 if t.is_complex() else t * t).reshape(t.shape[0], -1).sum(dim=1)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Real inner product per sample of two real tensors; shape ``(B,)``."""
    return (a * b).reshape(a.shape[0], -1).sum(dim=1)


def real(t: Tensor) -> Tensor:
    return t.real if t.is_complex() else t


def adjoint_real(operator: LinearOperator, r: Tensor) -> Tensor:
    """``Re(A^H r)``: the adjoint of ``A`` restricted to real images."""
    return real(operator.adjoint(r))


def estimate_lipschitz(
    operator: LinearOperator, like: Tensor, iterations: int = 50, seed: int = 0
) -> Tensor:
    """``||A||^2`` per sample (the Lipschitz constant of ``grad 1/2 ||A x - y||^2``), ``(B,)``.

    Power iteration on ``Re(A^H A)`` from a seeded random start shaped like one real image of
    ``like``, the same for every sample, so a sample's estimate does not depend on its
    batch-mates; returns the last Rayleigh quotient, a lower bound that converges to
    ``||A||^2``. Solvers multiply it by a small safety factor.

    Example:
        >>> import torch
        >>> from rimkit.operators import Inpainting, random_mask
        >>> x = torch.zeros(2, 1, 16, 16, dtype=torch.float64)
        >>> mask = random_mask(x.shape, 0.5, torch.Generator().manual_seed(0))
        >>> estimate_lipschitz(Inpainting(mask), x).round(decimals=6).tolist()
        [1.0, 1.0]
    """
    check_iterations(iterations, "power iterations")
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(like.shape[1:], generator=gen, dtype=like.dtype)  # (C, H, W)
    v = start.expand(like.shape).to(like.device)  # (B, C, H, W)
    tiny = torch.finfo(like.dtype).tiny
    v = v / bcast(sq_norm(v).sqrt(), v)
    rayleigh = torch.zeros(like.shape[0], dtype=like.dtype, device=like.device)
    for _ in range(iterations):
        w = adjoint_real(operator, operator(v))  # (B, C, H, W)
        rayleigh = dot(v, w)
        v = w / bcast(sq_norm(w).sqrt().clamp_min(tiny), w)
    return rayleigh.clamp_min(tiny)


class Reconstructor:
    """Base class of every baseline: ``reconstruct(y, operator, sigma) -> SolverResult``.

    ``y`` is the measurement ``A x + n`` (any shape ``(B, ...)`` the operator produces),
    ``operator`` a :class:`~rimkit.operators.LinearOperator` and ``sigma`` the noise standard
    deviation (a number or one value per sample, in the units of the data). Iterative baselines
    also take ``x0``, a real starting image ``(B, C, H, W)``; by default ``Re(A^H y)`` scaled
    to fit ``y`` (:func:`solver_start`). Everything runs without autograd, on ``y``'s device,
    in ``y``'s (real) precision.

    ``sigma`` is used by the noise-aware baselines (BM3D); the variational ones take their
    ``weight`` in the units of ``1/2 ||A x - y||^2`` and do not rescale it with ``sigma``
    (for the MAP weight ``lambda'`` of ``1/(2 sigma^2) ||A x - y||^2 + lambda' R(x)`` pass
    ``weight = sigma**2 * lambda'``).

    Subclasses implement ``_solve`` and set ``name`` (the key in ``BASELINES``).
    """

    name: str = ""

    def reconstruct(
        self,
        y: Tensor,
        operator: LinearOperator,
        sigma: Tensor | float = 0.0,
        *,
        x0: Tensor | None = None,
    ) -> SolverResult:
        """Reconstruct ``x`` from ``y = A x + n``; see the class docstring."""
        operator = check_operator(operator)
        y = check_measurement(y)
        s = _check_sigma(sigma, y.shape[0])
        warn_if_255_scale(y, s, stacklevel=4)
        with torch.no_grad():
            result = self._solve(y, operator, s, x0)
        if not bool(torch.isfinite(result.final).all()):
            warnings.warn(
                f"{self.name or type(self).__name__}'s estimate holds NaN or Inf: its iterations "
                "diverged. An operator whose adjoint is not its adjoint does this: check a custom "
                "one with rimkit.operators.adjoint_mismatch(operator, x), about 1e-15 when right",
                UserWarning,
                stacklevel=3,
            )
        return result

    def __call__(
        self,
        y: Tensor,
        operator: LinearOperator,
        sigma: Tensor | float = 0.0,
        *,
        x0: Tensor | None = None,
    ) -> SolverResult:
        return self.reconstruct(y, operator, sigma, x0=x0)

    def _solve(
        self, y: Tensor, operator: LinearOperator, sigma: Tensor, x0: Tensor | None
    ) -> SolverResult:
        raise NotImplementedError


def solver_start(y: Tensor, operator: LinearOperator, x0: Tensor | None) -> Tensor:
    """``x0`` checked against the image shape of ``A^H y``, or by default ``c Re(A^H y)``
    with ``c`` per sample the least-squares fit ``argmin_c ||c A s - y||``, ``s = Re(A^H y)``:
    1 for denoising and inpainting, where ``A A^H`` keeps ``y`` (about 1 for MRI, whose real
    part drops a little); for an operator of large norm (a projector summing many pixels)
    ``A^H y`` alone starts ``||A||^2`` times too bright.

    Example:
        >>> from rimkit.operators import Identity
        >>> y = torch.rand(2, 1, 4, 4)
        >>> bool(torch.allclose(solver_start(y, Identity(), None), y))
        True
    """
    start = adjoint_real(operator, y)  # (B, C, H, W)
    if x0 is None:
        fitted = operator(start)
        energy = sq_norm(fitted)  # (B,)
        fit = inner(fitted, y) / energy.clamp_min(torch.finfo(energy.dtype).tiny)
        scale = torch.where(energy > 0, fit, torch.ones_like(fit))  # (B,)
        return start * bcast(scale, start)
    if not isinstance(x0, Tensor) or x0.is_complex():
        raise ValueError("x0 must be a real torch.Tensor (B, C, H, W)")
    if x0.shape != start.shape:
        raise ValueError(
            f"x0 has shape {tuple(x0.shape)} but the operator's images are {tuple(start.shape)}"
        )
    return x0.to(dtype=start.dtype, device=start.device)


class Recorder:
    """Collects estimates (all, or only the last) and the per-sample objective."""

    def __init__(self, keep_estimates: bool) -> None:
        self.keep = keep_estimates
        self.estimates: list[Tensor] = []
        self.objective: list[Tensor] = []

    def __call__(self, x: Tensor, objective: Tensor) -> None:
        if self.keep or not self.estimates:
            self.estimates.append(x)
        else:
            self.estimates[-1] = x
        self.objective.append(objective)

    def result(self, initial_objective: Tensor | None = None) -> SolverResult:
        return SolverResult(self.estimates, self.objective, initial_objective)


@dataclass(frozen=True)
class VariationalSolver(Reconstructor):
    """What the iterative MAP baselines share: the weight ``lambda`` of the prior, the number
    of iterations, the power iterations (and safety factor) behind the step size from
    ``||A||^2``, and whether to keep every iterate. Checked at construction."""

    weight: float = 0.01
    iterations: int = 100
    power_iterations: int = 50
    safety: float = 1.01
    keep_estimates: bool = True

    def __post_init__(self) -> None:
        check_weight(self.weight)
        check_iterations(self.iterations)
        check_iterations(self.power_iterations, "power_iterations")
        s = self.safety
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 1 <= s < 10:
            raise ValueError(f"safety must be a number in [1, 10), got {s!r}")
