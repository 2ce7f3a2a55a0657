"""The evaluation engine: protocols x images x methods -> scores and curves.

:func:`evaluate` runs :class:`~rimkit.evaluate.methods.Method` objects (a RIM, a baseline) on
every case that the protocols make of the images and returns an :class:`Evaluation`: per-image
rows, the mean PSNR at every step ``t`` (convergence), and one example case per setting for
figures. The benchmark scripts use it directly; ``rimkit eval`` is
:func:`rimkit.evaluate.request.run_eval`, which checks a request, runs :func:`evaluate` and
writes the files of :mod:`rimkit.evaluate.outputs`.

Baselines get the weights and iteration counts tuned on training images for the nearest task
setting (:func:`rimkit.evaluate.methods.tuned_setting`, :mod:`rimkit.solvers.tuned`) and start
at the task's usual initial estimate; override them with ``baseline_options``.

Example:
    >>> import numpy as np
    >>> from rimkit.evaluate.methods import baseline_method
    >>> from rimkit.evaluate.protocols import DenoiseProtocol
    >>> images = [("flat", np.full((16, 16), 0.5))]
    >>> result = evaluate(images, [DenoiseProtocol(25)], [baseline_method("tv", "denoise")])
    >>> [(r["setting"], r["method"]) for r in result.rows]
    [('sigma=25', 'tv')]
"""

from __future__ import annotations

import importlib
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rimkit.evaluate.defaults import (
    DEFAULT_BASELINES,
    DEFAULT_SIGMAS,
    JOURNAL,
    PATCH_TASKS,
    TASKS,
)
from rimkit.evaluate.methods import Method
from rimkit.evaluate.metrics import quantize
from rimkit.evaluate.protocols import (
    Case,
    Protocol,
)
from rimkit.io import INTEGER_RANGES, check_image_range, from_tensor, to_tensor
from rimkit.solvers.selection import (
    BASELINE_EXTRAS,
    BASELINE_TASKS,
    check_baselines,
    operator_setting,
    run_baseline,
)
from rimkit.zoo.loading import trained_scales

__all__ = [
    "BASELINE_EXTRAS",
    "BASELINE_TASKS",
    "DEFAULT_BASELINES",
    "DEFAULT_SIGMAS",
    "JOURNAL",
    "PATCH_TASKS",
    "TASKS",
    "Evaluation",
    "Method",
    "check_baselines",
    "evaluate",
    "operator_setting",
    "run_baseline",
    "trained_scales",
]

_MOVED_TO = {
    "methods": (
        "Start", "baseline_method", "blind_method", "measured_noise_level", "rim_method",
        "tuned_setting",
    ),
    "request": (
        "EvalSpec", "convert_channels", "load_images", "load_models", "make_protocols",
        "run_eval", "trained_sigma_range",
    ),
    "outputs": ("eval_title", "summary_tables", "write_outputs"),
}  # fmt: skip
MOVED: dict[str, str] = {name: module for module, names in _MOVED_TO.items() for name in names}
"""Names this module held before the methods, the ``rimkit eval`` request and its output
files became modules of their own; still importable from here."""


def __dir__() -> list[str]:
    return sorted({*globals(), *MOVED})


def __getattr__(name: str) -> Any:
    module = MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"rimkit.evaluate.{module}"), name)


PSNR_CEILING = 100.0
"""The most a PSNR (dB) counts for in a mean over images or patches. An 8-bit output can equal
the truth (a flat patch measured well enough): its PSNR is infinite and would make the mean
infinite, so it counts as the ceiling. Every 8-bit output that is not exact scores below it up to
481x321 pixels (one pixel one level off: 78.2 dB in a 32x32 patch, 100.0 in a 481x321 image).
The per-image rows keep their own values (``inf``)."""


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
        PSNR (an estimate with NaN or Inf values) makes the PSNR and SSIM means NaN; an exact
        match's infinite PSNR counts as :data:`PSNR_CEILING`."""
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
                    "psnr": math.nan if failed else _mean([_capped(r["psnr"]) for r in rows]),
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


def _capped(value: float) -> float:
    """A PSNR capped at :data:`PSNR_CEILING` (an exact match's ``inf`` counts as it)."""
    return min(value, PSNR_CEILING)


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

    ``images`` are ``(name, array)`` pairs in a fixed order: the index of an image seeds its noise
    and masks. Each array is a real float image in ``[0, 1]``, ``(H, W)`` or ``(H, W, C)`` with
    ``C`` 1 or 3, as :func:`rimkit.evaluate.request.load_images` returns them (MRI: gray magnitude
    images); integer arrays (divide ``uint8`` by 255), other scales, channels first and NaN are
    refused before any work with a ``ValueError`` naming the image. ``methods`` need distinct
    names. ``progress`` shows a tqdm bar over the (setting, image) pairs.

    ``journal``: a file that records each finished (setting, image) at once and, when it
    exists, supplies those already finished (:mod:`rimkit.evaluate.journal`), so that a run
    stopped part-way resumes where it stopped with the same result. The caller deletes it once
    the result is written out. A journal knows a method by its name and ``fingerprint``: give
    a method of your own a fingerprint that changes with its code or options (see
    :class:`Method`), or a changed method resumes with the old one's rows.
    """
    from rimkit.evaluate.journal import Journal

    for given, what in ((protocols, "protocols"), (methods, "methods")):
        if isinstance(given, Method) or hasattr(given, "cases"):  # one item, not a list
            raise ValueError(f"{what} is a list: give [{type(given).__name__}(...)], not one")
    if not methods:
        raise ValueError("nothing to evaluate: give a model and/or baselines")
    _check_methods(methods)
    images = _checked_images(images)
    for protocol in protocols:  # an image a protocol cannot use stops the run before any work
        check = getattr(protocol, "check_image", None)
        for name, image in images if check is not None else ():
            check(image, name)
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
    noted: set[str] = set()
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
                        added += _run_case(case, methods, result, sums, curves, examples, noted)
                    if log is not None:
                        log.record(protocol.setting, name, result.rows[rows:], added)
                bar.update(1)
    finally:
        bar.close()
        if log is not None:
            log.close()
    for (setting, method), values in sums.items():
        curve = np.mean(np.minimum(values, PSNR_CEILING), axis=0)  # NaN stays NaN
        result.curves.setdefault(setting, {})[method] = list(curve)
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
        _run_case(case, methods, result, {}, False, True, set())
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
    noted: set[str],
) -> list[list[Any]]:
    """Run the methods on one case; record its rows (and example). Returns the
    ``[method, curve]`` pairs it added to ``sums``. ``noted``: the methods whose estimates were
    noted as on another scale (:func:`_note_other_scale`), once each."""
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
            if method.name not in noted:
                noted.update(_note_other_scale(method.name, case, final))
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


def _note_other_scale(name: str, case: Case, estimate: Tensor) -> set[str]:
    """Warn where ``estimate`` lies far above the truth's scale (beyond 2 and 20 times the
    truth's peak), as a method's own code working on the 0-255 scale returns it; it is scored as
    any estimate is, clipped to ``[0, 1]``. Returns ``{name}`` when it warned."""
    peak = float(estimate.abs().max())
    if not (peak > 2 and peak > 20 * float(case.truth.abs().max())):
        return set()
    warnings.warn(
        f"method {name!r} returned an estimate up to {peak:.4g} on image {case.image!r} "
        f"({case.setting}), where the truth peaks at {float(case.truth.abs().max()):.3g}: images "
        "are scored on [0, 1] (estimates clipped to it); if the method works on the 0-255 scale, "
        "divide its estimates by 255",
        RuntimeWarning,
        stacklevel=4,
    )
    return {name}


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


# ----------------------------------------------------------------------------- outputs
