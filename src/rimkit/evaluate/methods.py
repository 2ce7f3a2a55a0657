"""Methods the evaluation runner scores: a RIM (:func:`rim_method`), a classical baseline with
the weights tuned for each case's setting (:func:`baseline_method`), either one told a noise
level estimated from the measurement (:func:`blind_method`), or a :class:`Method` of one's own:
a name and ``run(case) -> estimates``.

Example:
    >>> import torch
    >>> from rimkit.evaluate.protocols import Case
    >>> from rimkit.operators import Identity
    >>> tv = baseline_method("tv", "denoise")
    >>> y = torch.rand(1, 1, 16, 16)
    >>> case = Case("a", "sigma=25", y, Identity(), y, 25 / 255, task="denoise")
    >>> tuple(tv.run(case)[-1].shape)
    (1, 1, 16, 16)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rimkit.evaluate.defaults import TASKS
from rimkit.evaluate.protocols import (
    Case,
)
from rimkit.noise_level import IMAGE_TASKS, METHODS, estimate_noise_level
from rimkit.operators import (
    LinearOperator,
    RealImages,
)
from rimkit.self_ensemble import SelfEnsemble, check_size
from rimkit.solvers.selection import (
    OWN_TASK,
    check_baselines,
    operator_setting,
    own_weight_hint,
    run_baseline,
)


@dataclass
class Method:
    """A named method: ``run(case)`` returns the list of its estimates ``x_1 .. x_K`` of
    ``case.truth`` (tensors ``(1, C, H, W)``, or arrays ``(H, W)`` / ``(H, W, C)``; a method
    with one result returns ``[x]``); the result is estimate ``report_step`` (1-based; default
    the last), the others feed the convergence curve. An estimate with NaN or Inf values
    scores NaN (with a warning).

    For MRI the truth is the complex image as channels ``(1, 2, H, W)`` (real, imaginary) and
    its magnitude is scored; an estimate may be that, or a magnitude or complex image
    ``(H, W)`` / ``(1, 1, H, W)``.

    ``fingerprint``: what its results depend on besides its name (a RIM's weights and steps,
    a baseline's options), so that a journal is never resumed with another model.
    :func:`rim_method` and :func:`baseline_method` set it; a method of your own that is run
    with a ``journal`` should set it too (e.g. a version string of its code and options), or
    a journal resumes it, changed, with the rows of the old one.

    Example, a method of one's own (a Gaussian filter of the noisy image) scored beside TV:
        >>> import numpy as np
        >>> from skimage.filters import gaussian
        >>> from rimkit.evaluate.protocols import DenoiseProtocol
        >>> from rimkit.evaluate.runner import evaluate
        >>> from rimkit.io import from_tensor
        >>> def smooth(case):  # case.y: the noisy image, a tensor (1, 1, H, W)
        ...     return [gaussian(from_tensor(case.y), sigma=1)]  # one estimate, (H, W)
        >>> mine = Method("gauss", smooth, fingerprint="gaussian sigma=1")
        >>> tv = baseline_method("tv", "denoise", {"iterations": 5})
        >>> image = np.linspace(0, 1, 32 * 32).reshape(32, 32)  # floats in [0, 1]
        >>> result = evaluate([("ramp", image)], [DenoiseProtocol(25)], [mine, tv])
        >>> [(row["method"], round(row["psnr"])) for row in result.summary()]  # dB
        [('gauss', 30), ('tv', 34)]
    """

    name: str
    run: Callable[[Case], list[Tensor]]
    report_step: int | None = None
    trained_steps: int | None = None
    fingerprint: str = ""


def rim_method(
    model: torch.nn.Module,
    name: str = "rim",
    steps: int | None = None,
    curve_steps: int | None = None,
    tile: int | None = None,
    ensemble: int = 1,
    start: Start | None = None,
) -> Method:
    """A RIM as a :class:`Method`: run ``max(steps, curve_steps)`` steps (``steps`` defaults to
    the trained ``T``) and report step ``steps``; the later steps feed the convergence curve.
    ``ensemble``: average the restorations of that many flips and rotations of each measurement
    (:class:`rimkit.self_ensemble.SelfEnsemble`; 1, 2, 4 or 8). ``start(operator, y) -> x0``:
    where each run starts (e.g. the ``x0`` a task of one's own trained from); by default
    :func:`rimkit.reconstruct.initial_estimate`.

    Example:
        >>> from rimkit.models import build_rim
        >>> m = rim_method(build_rim(features=4, hidden=4, train_steps=2), curve_steps=4)
        >>> m.report_step, m.trained_steps
        (2, 2)
    """
    from rimkit.reconstruct import RIMReconstructor, _network

    model = _network(model, "rim_method")  # a loaded model's network
    trained = int(model.train_steps)
    report = trained if steps is None else int(steps)
    if report < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    total = max(report, curve_steps or 0)
    method = RIMReconstructor(model, steps=total, tile=tile)
    _check_start_callable(start)
    if start is not None and (tile is not None or check_size(ensemble) > 1):
        raise ValueError(
            "start is for a whole image: not with tile (each tile starts from the task's "
            "estimate) or a self-ensemble (each flip from its own)"
        )
    if check_size(ensemble) > 1:
        method = SelfEnsemble(method, ensemble)

    def run(case: Case) -> list[Tensor]:
        if case.task == "mri" and model.channels == 1:
            if start is not None:
                raise ValueError("start is not used by a gray model on MRI; leave it out")
            return _real_image_mri(method, case)
        if start is not None:  # the reconstructor moves x0 to the model's device and dtype
            return method(case.y, case.operator, case.sigma, x0=_started(start, case)).estimates
        return method(case.y, case.operator, case.sigma).estimates

    from rimkit.train.checkpoint import weights_digest

    fingerprint = f"weights {weights_digest(model)[:16]}, steps {report}/{total}, tile {tile}"
    if ensemble > 1:
        fingerprint += f", self-ensemble {ensemble}"
    return Method(name, run, report, trained, _with_start(fingerprint, start))


Start = Callable[[LinearOperator, Tensor], Tensor]
"""``start(operator, y) -> x0``: where a method starts, an image ``(1, C, H, W)``."""


def _check_start_callable(start: object) -> None:
    if start is not None and not callable(start):
        raise ValueError(
            f"start must be a callable (operator, y) -> x0, got {type(start).__name__}"
        )


def _start_name(start: Start) -> str:
    """A start's name and, for a function, where it is defined (two lambdas differ)."""
    name = getattr(start, "__qualname__", type(start).__name__)
    code = getattr(start, "__code__", None)
    return name if code is None else f"{name} ({Path(code.co_filename).name}:{code.co_firstlineno})"


def _with_start(fingerprint: str, start: Start | None) -> str:
    """A method's fingerprint with its start, where one is given (journals tell them apart)."""
    return fingerprint if start is None else f"{fingerprint}, start {_start_name(start)}"


def _started(start: Start, case: Case) -> Tensor:
    """``start(case.operator, case.y)``, checked to be a real image of the truth's shape."""
    x0 = start(case.operator, case.y)
    if not isinstance(x0, Tensor) or x0.is_complex() or x0.shape != case.truth.shape:
        got = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
        raise ValueError(
            f"start {_start_name(start)} returned {got} for {case.image!r}; give a real image of "
            f"the truth's shape {tuple(case.truth.shape)}"
        )
    return x0


def _real_image_mri(method: Callable, case: Case) -> list[Tensor]:
    """A one-channel model on an MRI case: the image is taken as real (a magnitude image), the
    model sees ``Re(A^H (y - A x))`` through :class:`~rimkit.operators.RealImages`, and its
    estimates come back as complex images in channels (real, zero imaginary part)."""
    operator = RealImages(case.operator.op)
    estimates = method(case.y, operator, case.sigma).estimates
    return [torch.cat([x, torch.zeros_like(x)], dim=1) for x in estimates]


def tuned_setting(case: Case) -> tuple[str, float]:
    """The tuning table's ``(task, level)`` nearest to a case, read off its operator
    (:func:`operator_setting`).

    Example:
        >>> import torch
        >>> from rimkit.operators import BicubicDownsample
        >>> case = Case("a", "x3", torch.zeros(1, 1, 6, 6), BicubicDownsample(3), None, 0.0)
        >>> tuned_setting(case)
        ('sr', 3.0)
    """
    return operator_setting(case.operator, case.sigma, case.truth[0].numel())


def baseline_method(
    name: str,
    task: str,
    options: dict[str, Any] | None = None,
    keep_estimates: bool = True,
    start: Start | None = None,
) -> Method:
    """A baseline from :data:`rimkit.solvers.BASELINES` as a :class:`Method`, with the tuned
    weight and iterations of each case's setting (:func:`tuned_setting`), updated by
    ``options``.

    ``task`` (one of :data:`TASKS`, or ``"own"`` for the cases of
    :class:`~rimkit.evaluate.protocols.OperatorProtocol`) is checked: a baseline that does not
    apply to it (``bm3d`` denoises only) or whose optional extra is missing is refused here
    (:func:`check_baselines`), not at the first image. A forward model of one's own has no
    tuned weight: ``options`` gives it (``{"weight": w}``).

    ``keep_estimates=False`` keeps only the last iterate (no convergence curve, less memory).
    ``start(operator, y) -> x0``: where an iterative baseline starts (by default where the
    tuning started it, :func:`rimkit.reconstruct.initial_estimate`).

    Example:
        >>> baseline_method("bm3d", "sr")
        Traceback (most recent call last):
        ...
        ValueError: baseline 'bm3d' applies to denoise only, not to sr
    """
    from rimkit.solvers import BASELINES, baseline

    if task not in (*TASKS, OWN_TASK):
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}, {OWN_TASK}")
    check_baselines([name], task)
    fields = {f.name for f in dataclasses.fields(BASELINES[name])}  # type: ignore[arg-type]
    extra = dict(options or {})
    if task == OWN_TASK and "weight" in fields and "weight" not in extra:
        raise ValueError(f"baseline {name!r} has no tuned weight: {own_weight_hint(repr(name))}")
    if "keep_estimates" in fields and "keep_estimates" not in extra:
        extra["keep_estimates"] = keep_estimates
    baseline(name, **extra)  # check the options now, not at the first image
    _check_start_callable(start)

    def run(case: Case) -> list[Tensor]:
        setting = None if task == OWN_TASK else tuned_setting(case)
        x0 = None if start is None else _started(start, case)
        return run_baseline(
            name, setting, case.y, case.operator, case.sigma, case.truth, extra, x0=x0
        )

    return Method(name, run, fingerprint=_with_start(repr(sorted(extra.items())), start))


def blind_method(method: Method, estimator: str = "pca") -> Method:
    """``method`` told the noise level estimated from each measurement instead of the true one
    (:func:`rimkit.noise_level.estimate_noise_level`, ``estimator`` its ``method``): blind
    denoising and restoration. Measurements must be images (tasks
    :data:`rimkit.noise_level.IMAGE_TASKS`); inpainting holes are left out of the estimate.

    Example:
        >>> m = blind_method(baseline_method("tv", "denoise"))
        >>> m.name, m.fingerprint.endswith("sigma estimated (pca)")
        ('tv', True)
    """
    if estimator not in METHODS:
        raise ValueError(
            f"unknown noise-level estimator {estimator!r}; known: {', '.join(METHODS)}"
        )

    def run(case: Case) -> list[Tensor]:
        return method.run(dataclasses.replace(case, sigma=measured_noise_level(case, estimator)))

    fingerprint = f"{method.fingerprint}, sigma estimated ({estimator})"
    return dataclasses.replace(method, run=run, fingerprint=fingerprint)


def measured_noise_level(case: Case, estimator: str = "pca") -> float:
    """The noise level of ``case.y`` (an image ``(1, C, H, W)``) estimated from ``y`` alone."""
    if case.task not in IMAGE_TASKS or case.y.is_complex() or case.y.dim() != 4:
        raise ValueError(
            f"the noise level is estimated from image measurements ({', '.join(IMAGE_TASKS)})"
            f"; {case.task or 'this task'} has none: leave --sigma-estimate out"
        )
    image = case.y[0].permute(1, 2, 0).cpu().double().numpy()  # (H, W, C)
    mask = getattr(case.operator, "mask", None) if case.task == "inpaint" else None
    if mask is not None:
        mask = mask[0, 0].cpu().numpy()  # (H, W), nonzero = observed
    return estimate_noise_level(image, mask=mask, method=estimator)
