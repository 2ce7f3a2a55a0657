"""Which classical baseline runs on which problem, with which tuned weight.

:func:`operator_setting` reads the tuning table's ``(task, level)`` off a forward model (the
super-resolution scale of a :class:`~rimkit.operators.BicubicDownsample`, the missing fraction
of an :class:`~rimkit.operators.Inpainting`, ...); :func:`run_baseline` runs a baseline with the
weight tuned for that setting; :func:`check_baselines` refuses a baseline that does not apply
to a task or whose optional extra is missing. The evaluation runner, ``rimkit reconstruct``
and ``rimkit demo`` all choose baselines here.

Example:
    >>> import torch
    >>> from rimkit.operators import Identity
    >>> setting = operator_setting(Identity(), 25 / 255, 256)
    >>> setting
    ('denoise', 25.0)
    >>> y = torch.rand(1, 1, 16, 16)
    >>> x = run_baseline("tv", setting, y, Identity(), 25 / 255)[-1]  # (1, 1, 16, 16)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rimkit.io import to_tensor
from rimkit.operators import (
    BicubicDownsample,
    Blur,
    CartesianMRI,
    ComplexAsChannels,
    Composition,
    FourierProjection,
    Identity,
    Inpainting,
    Lensing,
    LinearOperator,
    MatrixProjection,
    MultiCoilMRI,
)
from rimkit.reconstruct import in_model_dtype, initial_estimate

OWN_TASK = "own"
"""The task name of a forward model of one's own (no tuned weights: the caller gives them)."""


BASELINE_TASKS: dict[str, tuple[str, ...]] = {"bm3d": ("denoise",), "bicubic": ("sr",)}
"""Baselines that apply to some tasks only; the others accept any operator."""


BASELINE_EXTRAS: dict[str, str] = {"bm3d": "bm3d"}
"""Baseline name -> the optional extra it needs (``pip install 'rimkit[EXTRA]'``)."""


def operator_setting(op: LinearOperator, sigma: float, pixels: int) -> tuple[str, float]:
    """The tuning table's ``(task, level)`` of an operator and noise level ``sigma`` (0-1
    scale) on images of ``pixels`` values: denoising sigma (0-255), super-resolution scale,
    inpainting missing fraction, projection ensemble and ratio ``m / n``, lensing Einstein
    radius, MRI acceleration, deblurring sigma.

    Example:
        >>> from rimkit.operators import Identity
        >>> operator_setting(Identity(), 25 / 255, 64)
        ('denoise', 25.0)
    """
    if isinstance(op, Composition) and isinstance(op.outer, Inpainting):  # bad pixels of y
        return operator_setting(op.inner, sigma, pixels)
    if isinstance(op, BicubicDownsample):
        return "sr", float(op.scale)
    if isinstance(op, Inpainting):
        return "inpaint", float(1 - op.mask.float().mean())
    if isinstance(op, Blur):
        return "blur", sigma * 255.0
    lensing = _lensing_of(op)
    if lensing is not None:
        return "lensing", lensing.einstein_radius
    if isinstance(op, ComplexAsChannels) and isinstance(op.op, (CartesianMRI, MultiCoilMRI)):
        return "mri", op.op.mask.numel() / float(op.op.mask.sum())
    if isinstance(op, FourierProjection):
        return "fourier", op.rows.shape[1] / pixels
    if isinstance(op, MatrixProjection):
        magnitudes = op.matrix.abs()
        kind = "bernoulli" if torch.allclose(magnitudes, magnitudes.flatten()[0]) else "gaussian"
        return kind, op.matrix.shape[-2] / pixels
    if isinstance(op, Identity):
        return "denoise", sigma * 255.0
    raise ValueError(f"no tuned weights for {type(op).__name__}: {own_weight_hint('name')}")


def own_weight_hint(name: str) -> str:
    return (
        f"a forward model of one's own takes the baseline's weight from you, "
        f"baseline_method({name}, {OWN_TASK!r}, {{'weight': w}}) (find one with "
        "rimkit.solvers.tuning.grid_search on measurements of yours)"
    )


def _lensing_of(op: LinearOperator) -> Lensing | None:
    """The :class:`Lensing` inside ``op`` (itself, or a factor of a composition with a PSF)."""
    if isinstance(op, Lensing):
        return op
    if isinstance(op, Composition):
        return _lensing_of(op.outer) or _lensing_of(op.inner)
    return None


def run_baseline(
    name: str,
    setting: tuple[str, float] | None,
    y: Tensor | np.ndarray,
    operator: LinearOperator,
    sigma: float,
    like: Tensor | None = None,
    options: dict[str, Any] | None = None,
    x0: Tensor | None = None,
) -> list[Tensor]:
    """Baseline ``name`` with the weight tuned for ``setting`` (``(task, level)``, see
    :func:`operator_setting`; ``None``: the weight of ``options`` alone) at the noise level
    ``sigma`` (0-1 scale) and ``options``, started at ``x0`` or where the tuning started it;
    its estimates. ``y`` is in the operator's measurement shape (a numpy array is taken as
    such). ``like``: an image of ``x``'s shape, for operators whose start is flat.

    Example:
        >>> from rimkit.operators import Identity
        >>> y = torch.rand(1, 1, 16, 16)
        >>> out = run_baseline("tv", ("denoise", 25.0), y, Identity(), 25 / 255)
        >>> len(out) > 1, tuple(out[-1].shape)
        (True, (1, 1, 16, 16))
    """
    from rimkit.solvers import BASELINES, baseline, tuned_baseline

    if isinstance(y, np.ndarray):
        y = torch.from_numpy(np.ascontiguousarray(y))
    if not isinstance(y, Tensor):
        raise ValueError(
            f"y must be a torch.Tensor or a numpy array in the operator's measurement shape, got "
            f"{type(y).__name__}"
        )
    y = y.to(torch.complex64 if y.is_complex() else torch.float32)  # MRI: k-space
    operator = in_model_dtype(operator, torch.float32)  # a float64 operator of one's own
    if setting is None:
        solver = baseline(name, **(options or {}))
    else:
        solver = tuned_baseline(name, *setting, sigma=sigma * 255.0, **(options or {}))
    if "keep_estimates" not in {f.name for f in dataclasses.fields(BASELINES[name])}:
        return solver(y, operator, sigma).estimates  # not iterative: no start
    if x0 is None:
        x0 = initial_estimate(operator, y, like=None if like is None else like.to(torch.float32))
    return solver(y, operator, sigma, x0=x0.to(torch.float32)).estimates


def check_baselines(names: Sequence[str], task: str) -> None:
    """Every name a known baseline that applies to ``task`` and whose extra is installed;
    otherwise a ``ValueError`` that says which (and which extra to install)."""
    from rimkit.solvers import BASELINES

    for name in names:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
        allowed = BASELINE_TASKS.get(name)
        if allowed is not None and task not in allowed:
            raise ValueError(
                f"baseline {name!r} applies to {', '.join(allowed)} only, not to {task}"
            )
        extra = BASELINE_EXTRAS.get(name)
        if extra is not None:
            _check_extra(name, extra)


def _check_extra(name: str, extra: str) -> None:
    from rimkit.solvers import bm3d_adapter

    importers = {"bm3d": bm3d_adapter.import_bm3d}
    try:
        importers[extra]()
    except ImportError:
        raise ValueError(
            f"baseline {name!r} needs the optional extra '{extra}', which is not installed: "
            f"pip install 'rimkit[{extra}]'"
        ) from None


def baseline_run(
    name: str, operator: LinearOperator, sigma: float, shape: tuple[int, ...]
) -> Callable[[np.ndarray | Tensor], list[Tensor]]:
    """``run(y) -> [x]``: baseline ``name``'s final estimate of an image of ``shape`` from a
    measurement array ``y`` (or tensor), with the weight tuned for ``operator`` at ``sigma``
    (0-1 scale): what :func:`rimkit.pipeline.restore` runs for ``baseline=name``.

    Example:
        >>> import numpy as np
        >>> from rimkit.operators import Identity
        >>> run = baseline_run("tv", Identity(), 25 / 255, (16, 16))
        >>> [tuple(x.shape) for x in run(np.random.rand(16, 16))]
        [(1, 1, 16, 16)]
    """
    from rimkit.solvers import BASELINES

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    setting = operator_setting(operator, sigma, int(np.prod(shape)))
    iterative = "keep_estimates" in {f.name for f in dataclasses.fields(BASELINES[name])}
    options = {"keep_estimates": False} if iterative else {}  # the final estimate only

    def run(y: np.ndarray | Tensor) -> list[Tensor]:
        y = y if isinstance(y, Tensor) else to_tensor(y)  # MRI: k-space (1, coils, H, W)
        return run_baseline(name, setting, y, operator, sigma, options=options)[-1:]

    return run
