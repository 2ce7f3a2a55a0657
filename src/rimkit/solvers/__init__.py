"""Classical baselines: MAP reconstructions and reference denoisers, all with one interface.

Every baseline is a :class:`Reconstructor`: ``baseline(y, operator, sigma)`` returns a
:class:`SolverResult` with the estimates ``x_1 .. x_K``, the per-sample objective at each of them
and ``.final``, like a RIM's ``Trajectory``. Weights and iteration counts are constructor
arguments; :data:`BASELINES` maps a name to its class.

=================  ==========================================================  ===============
name               method                                                      objective
=================  ==========================================================  ===============
``gd-tikhonov``    gradient descent, step ``1 / (||A||^2 + lambda)``           Tikhonov
``cg-tikhonov``    conjugate gradients on ``(A^H A + lambda I) x = A^H y``     Tikhonov
``ista-wavelet``   ISTA, soft thresholding of orthonormal wavelet coefficients  wavelet l1
``fista-wavelet``  FISTA (``monotone=True``: MFISTA)                           wavelet l1
``tv``             Chambolle-Pock primal-dual                                  isotropic TV
``zero-filled``    ``A^H y`` (MRI: zero-filled; ``magnitude=True``: ``|.|``)   --
``bm3d``           BM3D / CBM3D, denoising only (extra ``rimkit[bm3d]``)      --
``bicubic``        bicubic up-sampling, super-resolution only                  --
=================  ==========================================================  ===============

For a forward model that is not linear, :class:`MAPDescent` (``rimkit.solvers.map_descent``)
minimises ``1/2 ||f(x) - y||^2 + lambda R(x)`` (Tikhonov or smoothed TV) by projected gradient
descent with backtracking on any likelihood: ``MAPDescent(weight)(likelihood, x0)``.

with ``Tikhonov: 1/2 ||A x - y||^2 + lambda/2 ||x||^2``, ``wavelet l1: 1/2 ||A x - y||^2 +
lambda ||W x||_1`` and ``isotropic TV: 1/2 ||A x - y||^2 + lambda TV(x)`` over real images.

The class defaults of ``weight`` are generic. Weights tuned on training images per task and
noise level (:mod:`rimkit.solvers.tuning` finds them, table ``defaults.json``) come from
``default_weight(name, task, level)``, and ``tuned_baseline(name, task, level)`` builds the
baseline with them, e.g. ``tuned_baseline("tv", "denoise", 25)`` (:mod:`rimkit.solvers.tuned`).
They are tuned for a fixed iteration count from the task's start, not always the minimiser of
the objective (see :mod:`rimkit.solvers.tuning`). :mod:`rimkit.solvers.selection` reads a
forward model's tuning setting and runs the baseline for it, as ``rimkit eval``, ``compare`` and
:func:`rimkit.pipeline.restore` do.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> y = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    >>> results = {
    ...     name: BASELINES[name](iterations=3)(y, Identity(), 0.1)
    ...     for name in ("gd-tikhonov", "cg-tikhonov", "ista-wavelet", "fista-wavelet", "tv")
    ... }
    >>> sorted({len(r.estimates) for r in results.values()})
    [3]
"""

from __future__ import annotations

import dataclasses

from rimkit.solvers.base import (
    Reconstructor,
    SolverResult,
    check_iterations,
    check_weight,
    estimate_lipschitz,
)
from rimkit.solvers.bm3d_adapter import BM3D
from rimkit.solvers.direct import BicubicUpsampling, ZeroFilled
from rimkit.solvers.map_descent import MAP_PRIORS, MAPDescent
from rimkit.solvers.sparsity import FISTAWavelet, ISTAWavelet, soft_threshold
from rimkit.solvers.tikhonov import (
    ConjugateGradientTikhonov,
    GradientDescentTikhonov,
    tikhonov_objective,
)
from rimkit.solvers.tv import TotalVariation, gradient, gradient_adjoint, total_variation
from rimkit.solvers.wavelets import WaveletTransform, padded_size

BASELINES: dict[str, type[Reconstructor]] = {
    "gd-tikhonov": GradientDescentTikhonov,
    "cg-tikhonov": ConjugateGradientTikhonov,
    "ista-wavelet": ISTAWavelet,
    "fista-wavelet": FISTAWavelet,
    "tv": TotalVariation,
    "zero-filled": ZeroFilled,
    "bm3d": BM3D,
    "bicubic": BicubicUpsampling,
}


def __dir__() -> list[str]:
    return sorted({*globals(), *("default_weight", "tuned_baseline")})


def __getattr__(name: str) -> object:
    """``default_weight`` and ``tuned_baseline``, imported from :mod:`rimkit.solvers.tuned`
    on first use (it reads the tuned-weight table)."""
    if name in ("default_weight", "tuned_baseline"):
        from rimkit.solvers import tuned

        return getattr(tuned, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def baseline(name: str, **options: object) -> Reconstructor:
    """The baseline ``BASELINES[name](**options)``; an unknown name is a ``ValueError``.

    Example:
        >>> baseline("tv", weight=0.1).weight
        0.1
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    cls = BASELINES[name]
    accepted = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for baseline {name!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return cls(**options)


__all__ = [
    "BASELINES",
    "BM3D",
    "MAP_PRIORS",
    "BicubicUpsampling",
    "ConjugateGradientTikhonov",
    "FISTAWavelet",
    "GradientDescentTikhonov",
    "ISTAWavelet",
    "MAPDescent",
    "Reconstructor",
    "SolverResult",
    "TotalVariation",
    "WaveletTransform",
    "ZeroFilled",
    "baseline",
    "check_iterations",
    "check_weight",
    "default_weight",
    "estimate_lipschitz",
    "gradient",
    "gradient_adjoint",
    "padded_size",
    "soft_threshold",
    "tikhonov_objective",
    "total_variation",
    "tuned_baseline",
]
