"""The evaluation runner: protocols x images x methods -> scores, curves, files.

Two layers:

* :func:`evaluate` runs :class:`Method` objects (a RIM, a baseline) on every case that the
  protocols make of the images and returns an :class:`Evaluation`: per-image rows, the mean
  PSNR at every step ``t`` (convergence), and one example case per setting for figures. The
  benchmark scripts use this layer directly.
* :func:`run_eval` is ``rimkit eval``: it checks the request (:class:`EvalSpec`) before any
  work, loads the model and the images, runs :func:`evaluate` and writes ``results.csv``,
  ``summary.md``, ``summary.json``, ``convergence.csv`` (+ ``convergence.png`` with
  matplotlib), one crop grid per setting (``grid-SETTING.png``) and ``report.html``.

Baselines get the weights and iteration counts tuned on training images for the nearest task
setting (:func:`tuned_setting`, :mod:`rimkit.solvers.tuning`) and start at the task's usual
initial estimate; override them with ``baseline_options``.

Example:
    >>> import numpy as np
    >>> from rimkit.evaluate.protocols import DenoiseProtocol
    >>> images = [("flat", np.full((16, 16), 0.5))]
    >>> result = evaluate(images, [DenoiseProtocol(25)], [baseline_method("tv", "denoise")])
    >>> [(r["setting"], r["method"]) for r in result.rows]
    [('sigma=25', 'tv')]
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rimkit.evaluate.benchmarking import machine_info
from rimkit.evaluate.figures import convergence_figure, crop_grid
from rimkit.evaluate.journal import JournalMismatch, kept_for_resume, stopped
from rimkit.evaluate.metrics import as_image, quantize
from rimkit.evaluate.protocols import (
    Case,
    DeblurProtocol,
    DenoiseProtocol,
    InpaintProtocol,
    LensingProtocol,
    MRIProtocol,
    ProjectionProtocol,
    Protocol,
    SuperResolutionProtocol,
)
from rimkit.evaluate.report import atomic_write_bytes, atomic_write_text, markdown_table
from rimkit.evaluate.report import write_report as _write_report
from rimkit.io import INTEGER_RANGES, check_image_range, from_tensor, to_tensor
from rimkit.noise_level import IMAGE_TASKS, METHODS, estimate_noise_level
from rimkit.operators import (
    DEFAULT_KERNEL,
    PROJECTION_KINDS,
    LinearOperator,
    RealImages,
)
from rimkit.self_ensemble import ENSEMBLE_TASKS, SelfEnsemble, check_size
from rimkit.solvers.selection import (
    BASELINE_EXTRAS,
    OWN_TASK,
    check_baselines,
    operator_setting,
    own_weight_hint,
    run_baseline,
)
from rimkit.tasks import TASKS as TRAINING_TASKS
from rimkit.zoo.loading import trained_scales

__all__ = [
    "BASELINE_EXTRAS",
    "DEFAULT_BASELINES",
    "DEFAULT_SIGMAS",
    "TASKS",
    "EvalSpec",
    "Evaluation",
    "Method",
    "baseline_method",
    "blind_method",
    "check_baselines",
    "convert_channels",
    "evaluate",
    "load_images",
    "make_protocols",
    "measured_noise_level",
    "operator_setting",
    "rim_method",
    "run_baseline",
    "run_eval",
    "trained_scales",
    "trained_sigma_range",
    "tuned_setting",
]

TASKS = ("denoise", "sr", "inpaint", "blur", "projection", "lensing", "mri")
PATCH_TASKS = ("projection", "lensing")
"""Tasks evaluated on small patches with a global operator: run whole, drawn at 4x."""
DEFAULT_BASELINES: dict[str, tuple[str, ...]] = {
    "denoise": ("tv",),
    "sr": ("bicubic",),
    "inpaint": ("tv",),
    "blur": ("tv",),
    "projection": ("tv",),
    "lensing": ("tv",),
    "mri": ("zero-filled", "tv"),
}
"""Baselines run when none are named: cheap ones (BM3D takes seconds per image)."""

DEFAULT_SIGMAS: dict[str, tuple[float, ...]] = {
    "denoise": (15.0, 25.0, 50.0),
    "blur": (2.55, 7.65),
}
"""Noise levels (0-255) when none are given: the published ones; other tasks are noiseless."""


JOURNAL = "journal.jsonl"
"""``rimkit eval`` records finished images in ``OUT/journal.jsonl`` until it writes results."""


# ----------------------------------------------------------------------------- methods


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
        >>> from rimkit.io import from_tensor
        >>> def smooth(case):  # case.y: the noisy image, a tensor (1, 1, H, W)
        ...     return [gaussian(from_tensor(case.y), sigma=1)]  # one estimate, (H, W)
        >>> mine = Method("gauss", smooth, fingerprint="gaussian sigma=1")
        >>> tv = baseline_method("tv", "denoise", {"iterations": 5})
        >>> image = np.linspace(0, 1, 32 * 32).reshape(32, 32)  # floats in [0, 1]
        >>> result = evaluate([("ramp", image)], [DenoiseProtocol(25)], [mine, tv])
        >>> [(row["method"], round(row["psnr"])) for row in result.summary()]  # dB
        [('gauss', 30), ('tv', 33)]
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

    from rimkit.train.loop import weights_digest

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


# ----------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """What :func:`evaluate` measured.

    ``rows``: one dict per (case, method): image, setting, method, psnr, ssim, seconds (psnr
    and ssim NaN for an estimate with NaN or Inf values).
    ``curves``: setting -> method -> mean PSNR at each step ``t = 1, 2, ...`` (methods with
    more than one estimate). ``examples``: setting -> the first case and each method's result,
    for figures.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Mean PSNR, SSIM and seconds per (setting, method), in run order.

        NaN SSIMs (images smaller than the 11 x 11 window) are left out of the mean; a NaN
        PSNR (an estimate with NaN or Inf values) makes the PSNR and SSIM means NaN."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in self.rows:
            groups.setdefault((row["setting"], row["method"]), []).append(row)
        out = []
        for (setting, method), rows in groups.items():
            failed = any(math.isnan(r["psnr"]) for r in rows)  # an estimate with NaN or Inf
            out.append(
                {
                    "setting": setting,
                    "method": method,
                    "images": len(rows),
                    "psnr": math.nan if failed else _mean([r["psnr"] for r in rows]),
                    "ssim": math.nan if failed else _mean([r["ssim"] for r in rows]),
                    "seconds": _mean([r["seconds"] for r in rows]),
                }
            )
        return out

    def mean(self, setting: str, method: str, metric: str = "psnr") -> float:
        """The mean of ``metric`` over the images of one setting and method (NaN if absent)."""
        for row in self.summary():
            if row["setting"] == setting and row["method"] == method:
                return row[metric]
        return math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate(
    images: Sequence[tuple[str, np.ndarray]],
    protocols: Sequence[Protocol],
    methods: Sequence[Method],
    *,
    curves: bool = True,
    progress: bool = False,
    examples: bool = True,
    journal: str | Path | None = None,
) -> Evaluation:
    """Run every method on every case of every protocol; see :class:`Evaluation`.

    ``images`` are ``(name, array)`` pairs in a fixed order: the index of an image seeds its
    noise and masks. Each array is a real float image in ``[0, 1]``, ``(H, W)`` or ``(H, W,
    C)`` with ``C`` 1 or 3, as :func:`load_images` returns them (MRI: gray magnitude images);
    integer arrays (divide ``uint8`` by 255), other scales, channels first and NaN are refused
    before any work with a ``ValueError`` naming the image. ``methods`` need distinct names.
    ``progress`` shows a tqdm bar over the (setting, image) pairs.

    ``journal``: a file that records each finished (setting, image) at once and, when it
    exists, supplies those already finished (:mod:`rimkit.evaluate.journal`), so that a run
    stopped part-way resumes where it stopped with the same result. The caller deletes it once
    the result is written out. A journal knows a method by its name and ``fingerprint``: give
    a method of your own a fingerprint that changes with its code or options (see
    :class:`Method`), or a changed method resumes with the old one's rows.
    """
    from rimkit.evaluate.journal import Journal

    if not methods:
        raise ValueError("nothing to evaluate: give a model and/or baselines")
    _check_methods(methods)
    images = _checked_images(images)
    if not images:
        raise ValueError("no images to evaluate")
    settings = [p.setting for p in protocols]
    twice = sorted({s for s in settings if settings.count(s) > 1})
    if twice:
        raise ValueError(
            f"two protocols share the setting {twice[0]!r}, so their rows would merge; give them "
            "different settings (OperatorProtocol: a name each)"
        )
    result = Evaluation(settings=settings, methods=[m.name for m in methods])
    identity = {
        "settings": result.settings,
        "methods": [[m.name, m.fingerprint] for m in methods],
        "images": [name for name, _ in images],
        "curves": curves,
    }
    log = Journal(journal, identity) if journal is not None else None
    sums: dict[tuple[str, str], list[np.ndarray]] = {}
    bar = _progress(len(protocols) * len(images), progress)
    try:
        for protocol in protocols:
            for index, (name, image) in enumerate(images):
                done = log.get(protocol.setting, name) if log is not None else None
                if done:
                    _resume(done, protocol, index, image, name, methods, result, sums, examples)
                else:
                    rows, added = len(result.rows), []
                    for case in protocol.cases(image, index, name):
                        added += _run_case(case, methods, result, sums, curves, examples)
                    if log is not None:
                        log.record(protocol.setting, name, result.rows[rows:], added)
                bar.update(1)
    finally:
        bar.close()
        if log is not None:
            log.close()
    for (setting, method), values in sums.items():
        result.curves.setdefault(setting, {})[method] = list(np.mean(values, axis=0))
    return result


def _check_methods(methods: Sequence[Method]) -> None:
    """Every method a :class:`Method`, each name once (rows are grouped by name)."""
    for method in methods:
        if not isinstance(method, Method):
            raise ValueError(
                f"methods are Method objects, got {type(method).__name__}: wrap a function of "
                "your own as Method('name', run), run(case) returning a list of estimates"
            )
    names = [m.name for m in methods]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise ValueError(
            f"two or more methods are named {', '.join(map(repr, shared))} (methods: "
            f"{', '.join(names)}), so their scores would be merged; name them apart: "
            "rim_method(model, name=...), Method(name, run) or "
            "dataclasses.replace(method, name=...) (e.g. for a baseline_method)"
        )


RANGE_TOLERANCE = 1e-6
"""How far outside ``[0, 1]`` an evaluation image may reach (rounding errors)."""


def _checked_images(images: Sequence[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """``images`` as a list of ``(name, array)``, each array checked by :func:`_checked_image`
    (a ``(1, C, H, W)`` tensor becomes an array)."""
    if isinstance(images, (np.ndarray, Tensor)):
        raise ValueError(
            "images are a list of (name, array) pairs, e.g. [('camera', img)]; got one "
            f"{type(images).__name__}"
        )
    out = []
    for item in images:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(
                "images are (name, array) pairs, e.g. [('camera', img)]; got an item of type "
                f"{type(item).__name__}"
            )
        name, image = item
        if not isinstance(name, str):
            raise ValueError(
                f"an image's name is a string, got {type(name).__name__} {name!r}: e.g. "
                "(str(path), img) or (path.name, img)"
            )
        out.append((name, _checked_image(name, image)))
    names = [name for name, _ in out]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(
            f"two or more images are named {', '.join(map(repr, twice))}; rows and journals "
            "are keyed by image name: name them apart"
        )
    return out


def _checked_image(name: str, image: np.ndarray | Tensor) -> np.ndarray:
    """A real float image in ``[0, 1]``, ``(H, W)`` or ``(H, W, C)`` with ``C`` 1 or 3, else a
    ``ValueError`` that names it and says what to do.

    Example:
        >>> _checked_image("c", np.full((4, 4), 128, np.uint8))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: image 'c' holds uint8 values: give floats in [0, 1] (img / 255), as ...
    """
    what = f"image {name!r}"
    if isinstance(image, Tensor):
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(
                f"{what} is a tensor of shape {tuple(image.shape)}; give an array (H, W) or "
                "(H, W, C), or one image tensor (1, C, H, W)"
            )
        image = from_tensor(image)
    array = np.asarray(image)
    if np.issubdtype(array.dtype, np.integer):
        top = INTEGER_RANGES.get(array.dtype.newbyteorder("="))
        scale = f"img / {top:g}" if top is not None else "divide it by its maximum value"
        raise ValueError(
            f"{what} holds {array.dtype} values: give floats in [0, 1] ({scale}), as "
            "rimkit.evaluate.load_images returns"
        )
    if np.iscomplexobj(array):
        raise ValueError(
            f"{what} holds complex values; evaluation images are real (MRI takes magnitude "
            "images: np.abs(img) scaled to [0, 1])"
        )
    if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_):
        raise ValueError(f"{what} holds {array.dtype} values; give floats in [0, 1]")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] > 4:
            hint = "; for channels first, np.moveaxis(img, 0, -1)"
        elif array.ndim == 3 and array.shape[2] in (2, 4):
            hint = "; drop the alpha channel: img[..., :-1]"
        raise ValueError(
            f"{what} has shape {array.shape}; evaluation images are (H, W) or (H, W, C) with "
            f"C = 1 or 3{hint}"
        )
    if array.size == 0:
        raise ValueError(f"{what} is empty (shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or Inf values; replace them before use")
    check_image_range(array, what, data_units=False)  # e.g. floats of 0-255: divide by 255
    low, high = float(array.min()), float(array.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"{what} holds values from {low:g} to {high:g}; evaluation images are in [0, 1] "
            "(estimates are scored clipped to [0, 1]): rescale it, or np.clip(img, 0, 1)"
        )
    return array


def _resume(
    done: dict[str, Any],
    protocol: Protocol,
    index: int,
    image: np.ndarray,
    name: str,
    methods: Sequence[Method],
    result: Evaluation,
    sums: dict[tuple[str, str], list[np.ndarray]],
    examples: bool,
) -> None:
    """Take a finished (setting, image) from the journal; run its first case again only when
    it is the setting's example for the figures (its rows are in the journal already)."""
    result.rows += done["rows"]
    for method, curve in done["curves"]:
        sums.setdefault((protocol.setting, method), []).append(np.array(curve))
    if examples and protocol.setting not in result.examples:
        case = protocol.cases(image, index, name)[0]
        _run_case(case, methods, result, {}, False, True)
        del result.rows[-len(methods) :]


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="image", file=sys.stderr, leave=False)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _run_case(
    case: Case,
    methods: Sequence[Method],
    result: Evaluation,
    sums: dict[tuple[str, str], list[np.ndarray]],
    curves: bool,
    examples: bool,
) -> list[list[Any]]:
    """Run the methods on one case; record its rows (and example). Returns the
    ``[method, curve]`` pairs it added to ``sums``."""
    added: list[list[Any]] = []
    example = None
    if examples and case.setting not in result.examples:
        example = {"case": case, "results": {}}
        result.examples[case.setting] = example
    for method in methods:
        start = time.perf_counter()
        returned = method.run(case)
        seconds = time.perf_counter() - start
        estimates = _estimates(method, case, returned)
        step = method.report_step or len(estimates)
        if step < 1:
            raise ValueError(f"method {method.name!r} has report_step {step}; it counts from 1")
        if step > len(estimates):
            raise ValueError(
                f"method {method.name!r} reports estimate {step} (report_step) but returned "
                f"{len(estimates)} on image {case.image!r} ({case.setting})"
            )
        final = estimates[step - 1]
        if bool(torch.isfinite(final).all()):
            scores = case.score(final)
        else:
            warnings.warn(
                f"method {method.name!r} returned an estimate with NaN or Inf values on image "
                f"{case.image!r} ({case.setting}): its PSNR and SSIM are NaN, as are its means",
                RuntimeWarning,
                stacklevel=3,
            )
            scores = {"psnr": math.nan, "ssim": math.nan}
        result.rows.append(
            {
                "image": case.image,
                "setting": case.setting,
                "method": method.name,
                "psnr": scores["psnr"],
                "ssim": scores["ssim"],
                "seconds": seconds,
            }
        )
        if curves and len(estimates) > 1:
            curve = np.array([_curve_psnr(case, x) for x in estimates])
            sums.setdefault((case.setting, method.name), []).append(curve)
            added.append([method.name, curve.tolist()])
        if example is not None:
            shown = quantize(case.view(torch.nan_to_num(final)))
            example["results"][method.name] = (shown, scores["psnr"])
    return added


def _estimates(method: Method, case: Case, estimates: Any) -> list[Tensor]:
    """What ``method.run(case)`` returned, checked: a non-empty list of estimates of
    ``case.truth``'s shape, tensors ``(1, C, H, W)`` (arrays ``(H, W[, C])`` are converted;
    MRI: also a magnitude or complex image, :func:`_mri_channels`)."""
    where = f"on image {case.image!r} ({case.setting})"
    if not isinstance(estimates, (list, tuple)):
        raise ValueError(
            f"{method.name}.run must return a list of estimates, got a "
            f"{type(estimates).__name__} {where}; return [x] for a single estimate"
        )
    if not estimates:
        raise ValueError(
            f"method {method.name!r} returned no estimates {where}; its run must return a list "
            "of at least one"
        )
    shape = tuple(case.truth.shape)  # (1, C, H, W)
    if case.task == "mri" and shape[1] == 2:  # a magnitude or complex image is scored too
        estimates = [_mri_channels(x, shape) for x in estimates]
    layout = (*shape[2:], shape[1])  # as an array (H, W, C)
    arrays = (shape[2:], layout) if shape[1] == 1 else (layout,)
    out = []
    for x in estimates:
        if isinstance(x, np.ndarray) and x.shape in arrays and x.dtype.kind in "biufc":
            x = to_tensor(x, torch.float64)  # (H, W[, C]) -> (1, C, H, W)
        if not isinstance(x, Tensor) or tuple(x.shape) != shape:
            got = f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
            raise ValueError(
                f"method {method.name!r} returned an estimate of {got} {where}; estimates are "
                f"tensors {shape} or arrays {arrays[0]}, the truth's shape"
            )
        out.append(x)
    return out


def _mri_channels(x: Any, shape: tuple[int, ...]) -> Any:
    """An MRI estimate given as a magnitude or a complex image, ``(H, W)`` or ``(1, 1, H, W)``
    (array or tensor), as the truth's ``(1, 2, H, W)`` channels (real, imaginary); what is
    scored, the magnitude, is the same. Anything else is returned as it is."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "biufc":
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor) or x.shape not in (shape[2:], (1, 1, *shape[2:])):
        return x
    x = x.reshape(1, 1, *shape[2:])
    parts = (x.real, x.imag) if x.is_complex() else (x, torch.zeros_like(x))
    return torch.cat(parts, dim=1).to(torch.float64)


def _curve_psnr(case: Case, estimate: Tensor) -> float:
    """:meth:`Case.psnr`, NaN for an estimate with NaN or Inf values."""
    return case.psnr(estimate) if bool(torch.isfinite(estimate).all()) else math.nan


# ----------------------------------------------------------------------------- rimkit eval


@dataclass
class EvalSpec:
    """Everything ``rimkit eval`` needs; ``None`` means the task's default.

    ``sigmas`` (0-255 scale): denoising default 15, 25, 50; otherwise 0. ``baselines``:
    default :data:`DEFAULT_BASELINES`; an empty tuple runs none. ``baseline_options``: name ->
    constructor options. ``steps``: the RIM's reported step (default its trained ``T``);
    ``curve_steps``: run the RIM that far for the convergence curve (default ``steps``).
    ``ensemble``: average the RIM over that many flips and rotations of each measurement.
    ``sigma_estimate``: tell every method the noise level estimated from each measurement by
    this :func:`~rimkit.noise_level.estimate_noise_level` method (``pca``, ``wavelet``) instead
    of the true one (blind restoration; image tasks only).
    """

    task: str
    data: Path
    out: Path | None = None
    model: str | Sequence[str] | None = None
    label: str | Sequence[str] | None = None
    sigmas: tuple[float, ...] | None = None
    scales: tuple[int, ...] = (2, 3, 4)
    fractions: tuple[float, ...] = (0.5,)
    kernels: tuple[str, ...] = (DEFAULT_KERNEL,)
    boundary: str = "circular"
    kinds: tuple[str, ...] = PROJECTION_KINDS
    ratios: tuple[float, ...] = (0.1, 0.3, 0.5)
    patch: int = 32
    patches: int | None = None
    einstein_radii: tuple[float, ...] = (0.45,)
    psf: float = 0.0
    accelerations: tuple[float, ...] = (4.0,)
    mask: str = "columns"
    coils: int = 1
    measured: bool = False
    quantize: bool = False
    baselines: tuple[str, ...] | None = None
    baseline_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: int | None = None
    curve_steps: int | None = None
    limit: int | None = None
    seed: int = 0
    tile: int | None = None
    ensemble: int = 1
    sigma_estimate: str | None = None
    crop: int = 96
    force: bool = False
    resume: bool = False
    quiet: bool = False

    @property
    def models(self) -> tuple[str, ...]:
        """The models to evaluate, in order (``model`` as a tuple)."""
        if self.model is None:
            return ()
        models = [self.model] if isinstance(self.model, str | Path) else self.model
        return tuple(str(m) for m in models)

    @property
    def labels(self) -> tuple[str, ...]:
        """The table names given for the models, in order (``label`` as a tuple; empty when
        none is given: then each model gets its default name, see :func:`load_models`)."""
        if self.label is None:
            return ()
        return (self.label,) if isinstance(self.label, str) else tuple(map(str, self.label))

    def __post_init__(self) -> None:
        one_name = not self.models and len(self.labels) == 1  # baselines only: the folder's
        if self.labels and len(self.labels) != len(self.models) and not one_name:
            raise ValueError(
                f"{len(self.labels)} --label for {len(self.models)} --model: give one --label "
                "per --model, in the same order, or none"
            )

    def model_record(self) -> dict[str, Any]:
        """``model`` and ``label`` as ``summary.json`` records them: a string for one model
        given as one, else a list (``None`` where not given)."""
        one = not isinstance(self.model, list | tuple)
        return {
            "model": (self.models[0] if one else list(self.models)) if self.models else None,
            "label": (self.labels[0] if one else list(self.labels)) if self.labels else None,
        }

    def command_line(self) -> str:
        """The ``rimkit eval`` command that reproduces this evaluation."""
        parts = ["rimkit", "eval", "--task", self.task, "--data", str(self.data)]
        for model in self.models:
            parts += ["--model", model]
        for label in self.labels:
            parts += ["--label", label]
        if self.sigmas is not None:
            parts += ["--sigma", *(f"{s:g}" for s in self.sigmas)]
        if self.task == "sr":
            parts += ["--scale", *map(str, self.scales)]
        if self.task == "inpaint":
            parts += ["--fraction", *(f"{f:g}" for f in self.fractions)]
        if self.task == "blur":
            parts += ["--kernel", *self.kernels]
            if self.boundary != "circular":
                parts += ["--boundary", self.boundary]
        if self.task == "projection":
            parts += ["--kinds", *self.kinds, "--ratio", *(f"{r:g}" for r in self.ratios)]
        if self.task == "lensing":
            parts += ["--einstein-radius", *(f"{r:g}" for r in self.einstein_radii)]
            parts += ["--psf", f"{self.psf:g}"]
        if self.task == "mri":
            parts += ["--acceleration", *(f"{r:g}" for r in self.accelerations)]
            parts += ["--mask", self.mask]
            if self.coils > 1:
                parts += ["--coils", str(self.coils)]
            if self.measured:
                parts.append("--measured")
        if self.quantize:
            parts.append("--quantize")
        if self.baselines is not None:
            parts += ["--baselines", ",".join(self.baselines) or "none"]
        for name, opts in self.baseline_options.items():
            for key, value in opts.items():
                parts += ["--baseline-option", f"{name}.{key}={value}"]
        for flag, value in (
            ("--steps", self.steps),
            ("--curve-steps", self.curve_steps),
            ("--limit", self.limit),
            ("--tile", self.tile),
            ("--patches", self.patches),
            ("--ensemble", self.ensemble if self.ensemble != 1 else None),
            ("--sigma-estimate", self.sigma_estimate),
        ):
            if value is not None:
                parts += [flag, str(value)]
        parts += ["--seed", str(self.seed)]
        if self.out is not None:
            parts += ["--out", str(self.out)]
        return " ".join(shlex.quote(p) for p in parts)


def make_protocols(spec: EvalSpec) -> list[Protocol]:
    """The protocols of a request, one per setting (noise level, scale, fraction, ...)."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r}; known: {', '.join(TASKS)}")
    sigmas = spec.sigmas
    if sigmas is None:
        sigmas = DEFAULT_SIGMAS.get(spec.task, (0.0,))
    if not sigmas:
        raise ValueError("give at least one noise level (--sigma)")
    if spec.quantize and spec.task != "denoise":
        raise ValueError(
            "--quantize is the denoising protocol's 8-bit variant; use it with denoise"
        )
    seed = spec.seed
    if spec.task == "denoise":
        return [DenoiseProtocol(float(s), spec.quantize, seed) for s in sigmas]
    if spec.task == "sr":
        if not spec.scales:
            raise ValueError("give at least one scale (--scale)")
        for s in sigmas:
            if s:
                raise ValueError("the super-resolution protocol has no added noise; drop --sigma")
        return [SuperResolutionProtocol(_int_scale(s), seed) for s in spec.scales]
    if spec.task == "inpaint":
        patches = spec.patches or 1
        patch = spec.patch if spec.patches else None
        return [
            InpaintProtocol(float(f), float(s), seed, patch, patches)
            for f in spec.fractions
            for s in sigmas
        ]
    if spec.task == "blur":
        if not spec.kernels:
            raise ValueError(f"give at least one kernel (--kernel), e.g. {DEFAULT_KERNEL}")
        return [
            DeblurProtocol(k, float(s), seed, spec.boundary) for k in spec.kernels for s in sigmas
        ]
    if spec.task == "mri":
        if not spec.accelerations:
            raise ValueError("give at least one acceleration (--acceleration)")
        return [
            MRIProtocol(float(r), spec.mask, float(s), seed, spec.coils)
            for r in spec.accelerations
            for s in sigmas
        ]
    if spec.task == "lensing":
        return [
            LensingProtocol(
                float(r), float(s), float(spec.psf), seed, spec.patch, spec.patches or 4
            )
            for r in spec.einstein_radii
            for s in sigmas
        ]
    return [
        ProjectionProtocol(k, float(r), float(s), seed, spec.patch, spec.patches or 4)
        for k in spec.kinds
        for r in spec.ratios
        for s in sigmas
    ]


def _int_scale(scale: object) -> int:
    if isinstance(scale, bool) or not float(scale).is_integer() or float(scale) < 2:  # type: ignore[arg-type]
        raise ValueError(f"scale must be an integer >= 2, got {scale}")
    return int(scale)  # type: ignore[arg-type]


def load_images(
    folder: str | Path, limit: int | None = None, channels: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """The images of ``folder`` (sorted by path; the first ``limit``), as ``(name, array)``.
    ``folder`` may also be a 3-D volume file (``.npz`` / ``.npy``, e.g. MRI, or a fastMRI
    ``.h5``) or a folder of fastMRI files: the slices along the last axis, each volume scaled
    by its maximum and rounded to 8 bits, as gray images.

    ``channels=1`` converts RGB to gray (ITU-R 601 luma, rounded to 8 bits), ``3`` gray to
    RGB, ``None`` keeps each image as stored. An empty or missing folder, or an unreadable
    file, is a ``ValueError`` naming it.

    Example:
        >>> load_images("/no/such/folder")
        Traceback (most recent call last):
        ...
        ValueError: image folder '/no/such/folder' does not exist; ...
    """
    from rimkit.data.images import list_images, read_folder_image
    from rimkit.data.volumes import fastmri_folder, is_volume_file, volume_planes

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    folder = Path(folder)
    volumes = [folder] if is_volume_file(folder) else fastmri_folder(folder)
    if volumes:
        planes = [
            (f"{volume.stem}/{name}", plane[0] / 255.0)
            for volume in volumes
            for name, plane in volume_planes(volume, axes=(2,), min_fill=0.0)
        ]
        return planes[:limit]
    files = list_images(folder)[:limit]
    out = []
    for path in files:
        array = read_folder_image(path)
        if array.ndim == 3 and array.shape[2] != 3:
            raise ValueError(f"{str(path)!r} has {array.shape[2]} channels; expected gray or RGB")
        out.append((path.relative_to(folder).as_posix(), convert_channels(array, channels)))
    return out


def convert_channels(array: np.ndarray, channels: int | None) -> np.ndarray:
    """RGB to gray (ITU-R 601 luma rounded to 8 bits) for ``channels=1``, gray to RGB for
    ``3``; unchanged for ``None`` or when it already fits."""
    if channels == 1 and array.ndim == 3:
        return quantize(array @ np.array([0.299, 0.587, 0.114]))
    if channels == 3 and array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    return array


def trained_sigma_range(
    config: dict[str, Any], card: Any = None, task: str = "denoise"
) -> tuple[float, float] | None:
    """The noise range (0-255) a model was trained for on ``task`` (``denoise`` or ``blur``),
    when its card (denoising) or config says; ``None`` otherwise.

    Example:
        >>> trained_sigma_range({"tasks": [{"name": "blur", "sigma": [0, 15]}]}, task="blur")
        (0.0, 15.0)
    """
    if task == "denoise" and card is not None and getattr(card, "sigma_range", None):
        return tuple(card.sigma_range)  # type: ignore[return-value]
    for entry in config.get("tasks") or []:
        if isinstance(entry, dict) and entry.get("name") == task:
            low, high = entry.get("sigma", TRAINING_TASKS[task]().sigma)  # else its default
            return float(low), float(high)
    return None


def _check_out(spec: EvalSpec) -> Path:
    out = spec.out
    if out is None:
        names = spec.labels or [_folder_name(m) for m in spec.models] or ["baselines"]
        out = Path("evals") / f"{_slug('_'.join(names))}-{spec.task}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder")
    data = Path(spec.data).resolve()
    if out.resolve() == data or data in out.resolve().parents:
        raise ValueError(f"--out {str(out)!r} lies inside --data; write the results elsewhere")
    journal = out / JOURNAL
    if spec.resume:
        if not journal.is_file():
            raise ValueError(
                f"nothing to resume: {str(journal)!r} does not exist (it is kept only while a "
                "run is unfinished); run without --resume"
            )
    elif out.is_dir() and any(out.iterdir()):
        if not spec.force:
            hint = " or --resume to continue the stopped run" if journal.is_file() else ""
            raise ValueError(
                f"output folder {str(out)!r} exists and holds results; pass --force to "
                f"overwrite them{hint}, or choose another --out"
            )
        journal.unlink(missing_ok=True)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).replace("/", "_").strip("_") or "x"


def _folder_name(model: str | os.PathLike) -> str:
    """What names a model in the default output folder: a shipped model's name, else its
    folder's name and its own (``runs/denoise-gray``: ``runs_denoise-gray``; never a shipped
    name, whose results it would meet)."""
    from rimkit.zoo import list_models

    if isinstance(model, str) and model in {card.name for card in list_models()}:
        return model
    return f"{Path(model).resolve().parent.name}_{_file_or_folder_name(model)}"


def _file_or_folder_name(model: str | os.PathLike) -> str:
    """What names a model given by path in a table: a file's stem, a folder's name
    (``runs/v1.2``: ``v1.2``)."""
    path = Path(model)
    return path.stem if path.is_file() else path.resolve().name


def load_models(spec: EvalSpec) -> list[tuple[str, Any]]:
    """``(label, loaded)`` for each model of ``spec``, in order: the label given, else a
    shipped model's name, else ``rim`` for a lone model and the file or folder name of one of
    several."""
    from rimkit.zoo import load_model

    labels = (spec.labels if spec.models else ()) or (None,) * len(spec.models)
    found = []
    for name, label in zip(spec.models, labels, strict=True):
        loaded = load_model(name)
        if not label:
            label = (loaded.card.name if loaded.card else None) or (
                "rim" if len(spec.models) == 1 else _file_or_folder_name(name)
            )
        found.append((label, loaded))
    return found


def _check_model(spec: EvalSpec, name: str, loaded: Any, notes: list[str]) -> int | None:
    """The channel count images get for model ``name``; errors and notes for what does not
    fit."""
    model, config = loaded.model, loaded.config
    cell = (config.get("model") or {}).get("cell")
    trained_on = _training_overlap(spec.data, config.get("data") or {})
    if trained_on is not None:
        _note(
            notes,
            f"--data {str(spec.data)!r} overlaps the images model {name!r} was trained or "
            f"validated on ({trained_on}): its scores there say how well it fits, not how it "
            "generalises",
        )
    mri_model = cell == "mri" or model.channels == 2
    if mri_model and spec.task != "mri":
        raise ValueError(f"model {name!r} is an MRI model; use it with --task mri")
    if spec.task == "mri":
        if model.channels == 3:
            raise ValueError(
                f"model {name!r} restores RGB images; MRI takes an MRI model (complex images "
                "as 2 channels) or a gray one (magnitude images as real)"
            )
        if not mri_model:
            _note(notes, f"model {name!r} is a gray model: it reconstructs the images as real")
        return None
    if spec.task == "sr":
        if model.channels != 1:
            raise ValueError(
                f"super-resolution is reconstructed and measured on the Y channel; model "
                f"{name!r} has {model.channels} channels, give a gray (1-channel) model"
            )
        scales = trained_scales(config, loaded.card)
        if scales:
            other = [s for s in spec.scales if int(s) not in scales]
            if other:
                raise ValueError(
                    f"model {name!r} was trained for scales {', '.join(map(str, scales))}, not "
                    f"{', '.join(map(str, other))}; choose --scale among those"
                )
        else:
            why = "no super-resolution" if scales == () else "no record of its scales"
            _note(notes, f"model {name!r} has {why}; scales {spec.scales} are not checked")
    if spec.task in DEFAULT_SIGMAS:
        bounds = trained_sigma_range(config, loaded.card, spec.task)
        sigmas = spec.sigmas or DEFAULT_SIGMAS[spec.task]
        if bounds is not None:
            outside = [s for s in sigmas if not bounds[0] <= s <= bounds[1]]
            if outside:
                _note(
                    notes,
                    f"model {name!r} was trained for sigma {bounds[0]:g}-{bounds[1]:g}; "
                    f"sigma {', '.join(f'{s:g}' for s in outside)} lies outside",
                )
    if spec.task == "sr":
        return None  # the protocol makes the Y channel of each image itself
    return int(model.channels)


def _training_overlap(data: Path, config_data: dict[str, Any]) -> str | None:
    """The training or validation source (``data.train`` / ``data.val`` of a run's config) that
    holds the evaluation folder ``data`` or lies inside it, where it can be found on this
    machine; else ``None``."""
    from rimkit.train.config import DataConfig, resolve_folder

    sources = config_data.get("train") or ()
    sources = [sources] if isinstance(sources, str) else list(sources)
    sources += [config_data["val"]] if config_data.get("val") else []
    here = Path(data).resolve()
    root = config_data.get("root")
    for source in sources:
        try:
            folder = resolve_folder(DataConfig(root=root), str(source)).resolve()
        except (ValueError, OSError):
            continue  # its data root is not on this machine
        if folder.exists() and (folder == here or folder in here.parents or here in folder.parents):
            return str(source)
    return None


def _note(notes: list[str], text: str) -> None:
    notes.append(text)
    warnings.warn(text, stacklevel=3)


def run_eval(spec: EvalSpec) -> Path:
    """Run ``rimkit eval``; returns the output folder (see the module docstring)."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r}; known: {', '.join(TASKS)}")
    check_size(spec.ensemble)
    if spec.ensemble > 1 and spec.task not in ENSEMBLE_TASKS:
        raise ValueError(
            "--ensemble needs an operator that commutes with flips and rotations (denoise, sr, "
            f"inpaint); {spec.task} does not: leave --ensemble out"
        )
    if spec.boundary != "circular" and spec.task != "blur":
        raise ValueError(f"--boundary applies to --task blur only, not {spec.task}")
    if spec.sigma_estimate is not None and spec.task not in IMAGE_TASKS:
        raise ValueError(
            f"--sigma-estimate estimates the noise of image measurements "
            f"({', '.join(IMAGE_TASKS)}); {spec.task} has none: leave it out"
        )
    out = _check_out(spec)
    names = DEFAULT_BASELINES[spec.task] if spec.baselines is None else spec.baselines
    unknown_opts = sorted(set(spec.baseline_options) - set(names))
    if unknown_opts:
        raise ValueError(
            f"options given for baseline(s) {', '.join(unknown_opts)} that are not run; "
            f"running: {', '.join(names) or 'none'}"
        )
    check_baselines(names, spec.task)
    if not spec.models and not names:
        raise ValueError("nothing to evaluate: give --model and/or --baselines")
    if spec.measured:
        from rimkit.evaluate.measured import run_measured

        return run_measured(spec, out, names, [])
    protocols = make_protocols(spec)
    notes: list[str] = []
    methods: list[Method] = []
    model_channels: dict[str, int | None] = {}
    trained: dict[str, int | None] = {}
    patch_task = spec.task in PATCH_TASKS
    if spec.tile and patch_task and spec.models:
        _note(notes, f"--tile is ignored for {spec.task} (its patches run whole)")
    for (label, loaded), name in zip(load_models(spec), spec.models, strict=True):
        notes.append(_weights_note(loaded, label if len(spec.models) > 1 else None))
        model_channels[name] = _check_model(spec, name, loaded, notes)
        tile = None if patch_task else spec.tile
        method = rim_method(loaded.model, label, spec.steps, spec.curve_steps, tile, spec.ensemble)
        trained[label] = method.trained_steps
        methods.append(method)
    if len(set(model_channels.values())) > 1:
        raise ValueError(
            "the models restore images of different channels ("
            + ", ".join(f"{n!r}: {c}" for n, c in model_channels.items())
            + "); evaluate them in separate runs"
        )
    channels = next(iter(model_channels.values()), None)
    methods += [baseline_method(n, spec.task, spec.baseline_options.get(n)) for n in names]
    if len({m.name for m in methods}) != len(methods):
        raise ValueError(f"two methods share a name: {[m.name for m in methods]}; use --label")
    if spec.sigma_estimate is not None:
        methods = [blind_method(m, spec.sigma_estimate) for m in methods]
    images = load_images(spec.data, spec.limit)
    if spec.task == "mri":
        channels = 1
    if channels is not None and any((a.ndim == 3) != (channels == 3) for _, a in images):
        what = "gray (ITU-R 601 luma, 8 bits)" if channels == 1 else "RGB"
        whom = "MRI" if spec.task == "mri" else f"the {channels}-channel model"
        notes.append(f"images were converted to {what} for {whom}")
        images = [(n, convert_channels(a, channels)) for n, a in images]
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    journal = out / JOURNAL
    try:
        result = evaluate(images, protocols, methods, progress=not spec.quiet, journal=journal)
    except JournalMismatch:
        raise kept_for_resume(journal) from None
    except KeyboardInterrupt:
        raise stopped(journal) from None
    except ValueError:  # bad input met mid-run: a rerun meets it again, so nothing to resume
        journal.unlink(missing_ok=True)
        if fresh and not any(out.iterdir()):
            out.rmdir()
        raise
    write_outputs(result, out, spec, protocols, trained, notes, len(images))
    journal.unlink()
    return out


# ----------------------------------------------------------------------------- outputs


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _num(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.{digits}f}")


def summary_tables(result: Evaluation) -> tuple[list[list[object]], list[list[object]]]:
    """Two tables (rows, header first): PSNR / SSIM per method and setting; seconds per image."""
    scores = [["method", *(f"{s} PSNR / SSIM" for s in result.settings)]]
    timing = [["method", *(f"{s} s/image" for s in result.settings)]]
    for method in result.methods:
        row: list[object] = [method]
        secs: list[object] = [method]
        for setting in result.settings:
            p, s = result.mean(setting, method), result.mean(setting, method, "ssim")
            row.append(f"{p:.2f} / {s:.4f}" if not math.isnan(p) else "-")
            secs.append(f"{result.mean(setting, method, 'seconds'):.3f}")
        scores.append(row)
        timing.append(secs)
    return scores, timing


def eval_title(spec: EvalSpec, head: str) -> str:
    """``head``, then the models' names (their labels, else as given), if any.

    Example:
        >>> eval_title(EvalSpec("denoise", Path("x"), model=["a", "runs/b"]), "rimkit eval")
        'rimkit eval, a, runs/b'
    """
    names = spec.labels or spec.models
    return head + (f", {', '.join(names)}" if names else "")


def _weights_note(loaded: Any, label: str | None = None) -> str:
    """Which weights were measured (as ``label`` in the tables, when given): a shipped
    model's name, else the file and its iteration (a run folder loads ``model``, or ``best`` /
    ``last`` of an unfinished run)."""
    head = f"RIM weights{f' of {label}' if label else ''}: "
    if loaded.card is not None:
        return f"{head}the shipped model {loaded.card.name!r}"
    from rimkit.train.checkpoint import read_meta

    try:
        iteration = read_meta(loaded.source).get("iteration")
    except ValueError:
        iteration = None
    return f"{head}{loaded.source}" + (f" (iteration {iteration})" if iteration else "")


def write_outputs(
    result: Evaluation,
    out: Path,
    spec: EvalSpec,
    protocols: Sequence[Protocol],
    trained_steps: dict[str, int | None],
    notes: list[str],
    n_images: int,
) -> dict[str, Path]:
    """Write every result file of ``rimkit eval`` into ``out`` (each atomically);
    ``trained_steps``: each RIM's trained ``T`` by its name in the tables."""
    files: dict[str, Path] = {}
    info = machine_info()
    command = spec.command_line()
    rows = [
        [
            r["image"],
            r["setting"],
            r["method"],
            _num(r["psnr"]),
            _num(r["ssim"], 5),
            _num(r["seconds"]),
        ]
        for r in result.rows
    ]
    header = ["image", "setting", "method", "psnr", "ssim", "seconds"]
    files["results"] = atomic_write_text(out / "results.csv", _csv_text(header, rows))

    curve_rows = [
        [setting, method, t + 1, _num(v)]
        for setting, by_method in result.curves.items()
        for method, values in by_method.items()
        for t, v in enumerate(values)
    ]
    curve_csv = _csv_text(["setting", "method", "step", "psnr"], curve_rows)
    files["convergence_csv"] = atomic_write_text(out / "convergence.csv", curve_csv)
    images: list[tuple[str, Path]] = []
    marks = sorted({t for t in trained_steps.values() if t})
    png = convergence_figure(result.curves, marks) if result.curves else None
    if png is not None:
        files["convergence_png"] = atomic_write_bytes(out / "convergence.png", png)
        images.append(("PSNR against step t (mean over images)", files["convergence_png"]))
    elif result.curves:
        notes.append(
            "convergence.png skipped: matplotlib is not installed (pip install 'rimkit[plot]'); "
            "the curves are in convergence.csv"
        )
    for setting, example in result.examples.items():
        case: Case = example["case"]
        truth = as_image(case.view(case.truth))
        panels = [("truth", truth), ("measurement", case.display)]
        for method, (estimate, value) in example["results"].items():
            panels.append((f"{method}\n{value:.2f} dB", estimate))
        crop = truth.shape[0] if spec.task in PATCH_TASKS else spec.crop
        zoom = 4 if spec.task in PATCH_TASKS else 2
        path = out / f"grid-{_slug(setting)}.png"
        files[f"grid:{setting}"] = atomic_write_bytes(path, crop_grid(panels, crop, zoom))
        images.append((f"{setting}: {case.image} (crop)", path))

    scores, timing = summary_tables(result)
    title = eval_title(spec, "rimkit eval: " + spec.task)
    provenance = [
        f"machine: {info['cpu']}, {info['cores']} cores ({info['threads']} torch threads), "
        f"torch {info['torch']}",
        f"date: {info['date']}",
        f"command: {command}",
        f"seed: {spec.seed}; images: {n_images} from {spec.data}",
    ]
    if len(trained_steps) == 1:
        provenance.append(f"RIM trained for T = {next(iter(trained_steps.values()))} steps")
    elif trained_steps:
        each = ", ".join(f"{t} ({name})" for name, t in trained_steps.items())
        provenance.append(f"RIMs trained for T = {each} steps")
    if spec.sigma_estimate is not None:
        provenance.append(
            f"blind: every method was told the noise level estimated from each measurement "
            f"({spec.sigma_estimate}), not the sigma of the column"
        )
    md = [f"# {title}", "", *(f"- {line}" for line in provenance), ""]
    md += ["## Mean PSNR (dB) / SSIM", "", markdown_table(scores), ""]
    md += ["## Seconds per image", "", markdown_table(timing), ""]
    if notes:
        md += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    files["summary_md"] = atomic_write_text(out / "summary.md", "\n".join(md))
    summary = {
        "title": title,
        "task": spec.task,
        **spec.model_record(),
        "command": command,
        "seed": spec.seed,
        "images": n_images,
        "data": str(spec.data),
        "machine": info,
        "protocols": [p.describe() for p in protocols],
        "settings": result.settings,
        "methods": result.methods,
        "trained_steps": next(iter(trained_steps.values())) if len(trained_steps) == 1 else None,
        "models": [
            {"model": model, "label": label, "trained_steps": steps}
            for model, (label, steps) in zip(spec.models, trained_steps.items(), strict=True)
        ],
        "summary": [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in row.items()
            }
            for row in result.summary()
        ],
        "notes": notes,
        "files": [*sorted(p.name for p in files.values()), "report.html", "summary.json"],
    }
    files["summary_json"] = atomic_write_text(
        out / "summary.json", json.dumps(summary, indent=2) + "\n"
    )
    files["report"] = _write_report(
        out / "report.html",
        title,
        [("Mean PSNR (dB) / SSIM", scores), ("Seconds per image", timing)],
        images,
        notes=[*provenance, *notes],
    )
    written = {p.resolve() for p in files.values()}
    for stale in [*out.glob("grid-*.png"), out / "convergence.png"]:
        if stale.is_file() and stale.resolve() not in written:  # from an earlier --force run
            stale.unlink()
    return files
