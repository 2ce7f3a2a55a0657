"""Compare methods on one measurement of your own: ``rimkit compare``.

Each method, a RIM (a shipped model's name, a run folder or a ``.safetensors`` file) or a
classical baseline (:data:`rimkit.solvers.BASELINES`, with the weight tuned for the task), restores
the same measurement through :func:`rimkit.pipeline.restore`, the path of ``rimkit
reconstruct``; each result is timed and, when the clean image is known, scored (PSNR and SSIM
of the 8-bit output). :func:`write_comparison` writes every result, a figure of crops side by
side, a Markdown table and a self-contained HTML report.

Example:
    >>> import numpy as np
    >>> noisy = np.full((32, 32), 0.5) + np.random.default_rng(0).normal(0, 0.1, (32, 32))
    >>> [r.label for r in compare(noisy, "denoise", ["tv", "cg-tikhonov"], sigma=25.5)]
    ['tv', 'cg-tikhonov']
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rimkit.degrade import crop_noting
from rimkit.evaluate.figures import crop_grid
from rimkit.evaluate.metrics import psnr, ssim, to_8bit
from rimkit.evaluate.report import (
    atomic_write_bytes,
    atomic_write_text,
    markdown_table,
    write_report,
)
from rimkit.fastmri import center_crop
from rimkit.io import check_image_range
from rimkit.noise import UnitScaleWarning
from rimkit.operators.blur import blur_kernel, valid_margins
from rimkit.pipeline import restore
from rimkit.restore_mri import estimate_coil_maps
from rimkit.writing import check_output_folder, write_image


@dataclass
class Compared:
    """One method's result: its label, the restored image, seconds, PSNR (dB) / SSIM against
    the clean image when one was given (else ``None``), the noise level it was told and the
    background subtracted (in the call's units: the 0-255 scale, or the data's)."""

    label: str
    image: np.ndarray
    seconds: float
    psnr: float | None = None
    ssim: float | None = None
    sigma: float | np.ndarray = 0.0
    background: float | np.ndarray = 0.0


def compare(
    image: np.ndarray,
    task: str,
    methods: Sequence[str],
    *,
    truth: np.ndarray | None = None,
    fit_scale: bool = True,
    device: str = "cpu",
    precision: str = "fp32",
    progress: bool = False,
    **restore_options: Any,
) -> list[Compared]:
    """Restore ``image`` (a ``task`` measurement) with every method in ``methods`` (model
    names or paths, or baseline names); ``restore_options`` go to
    :func:`rimkit.pipeline.restore` (``sigma``, ``scale``, ``mask``, ``kernel``, ...).
    ``truth``, the clean image (values in ``[0, 1]``, the restored size), adds the scores.
    With ``units="data"`` (:data:`rimkit.pipeline.UNITS`) the truth is in the data's units,
    and the scores are PSNR and SSIM of floats with the truth's maximum as the data range.

    For ``mri`` the scores follow fastMRI: PSNR and SSIM of the magnitudes as floats with the
    truth's maximum as the data range. K-space has any scale, so each result is first scaled
    by the least-squares factor ``<x, t> / <x, x>`` onto the truth ``t`` (and kept so), unless
    ``fit_scale=False`` (a truth in the k-space's own units, such as a fastMRI file's
    reference image). A truth smaller than the results (fastMRI's references are the central
    320 x 320 of an image over-sampled along the readout) scores and keeps their central crop.
    Multi-coil k-space has its coil maps estimated once for all methods, outside their times.
    The models run on ``device`` in ``precision`` (:mod:`rimkit.precision`).
    A noise level ``"auto"`` is estimated by the first method's run and told to them all."""
    if not methods:
        raise ValueError("give at least one method to compare (a model or a baseline name)")
    if len(set(methods)) != len(methods):
        raise ValueError(f"a method is named twice: {list(methods)}")
    truth = comparable_truth(truth, image, task, **restore_options)
    if task == "mri":  # one estimate of the coil maps serves every method
        restore_options["maps"] = estimate_coil_maps(
            image, restore_options.get("mask"), restore_options.get("maps")
        )
    results: list[Compared] = []
    given_sigma = restore_options.get("sigma")
    # every method loaded (so known) before any runs
    loaded = {name: _load_method(name, device, precision) for name in methods}
    for name in methods:
        model = loaded[name]  # it keeps the SR scales it was trained for (trained_scales)
        estimated = bool(results) and (given_sigma is None or isinstance(given_sigma, str))
        tic = time.perf_counter()
        with warnings.catch_warnings():
            if estimated:
                warnings.simplefilter("ignore", UnitScaleWarning)
            restored = restore(
                image,
                task,
                model,
                baseline=None if model is not None else name,
                progress=progress,
                **restore_options,
            )
        seconds = time.perf_counter() - tic
        if restore_options.get("photons") is None:  # photon noise follows the counts
            restore_options["sigma"] = restored.sigma  # estimated once, if "auto"; told all
        result = restored.image
        if task == "mri" and truth is not None:  # fastMRI scores the reference's central crop
            result = center_crop(result, truth.shape)
            if fit_scale and result.shape == truth.shape:  # in the truth's units
                result = result * _least_squares_scale(result, truth)
        in_units = task == "mri" or restore_options.get("units") == "data"
        scores = _scores(result, truth, in_units)
        told = (restored.sigma, restored.background)
        results.append(Compared(name, result, seconds, *scores, *told))
    return results


def comparable_truth(
    truth: np.ndarray | None, image: np.ndarray, task: str, **restore_options: Any
) -> np.ndarray | None:
    """The clean image cropped as the measurement ``image`` was made from it, with a note, and
    checked against the restored size where that is known: a super-resolution truth cropped
    to a multiple of the scale (as ``rimkit degrade`` and the SR protocol crop it), a valid
    blur's truth to the measurement's field of view (the restored image keeps that view).
    :func:`compare` scores against it; give the same to :func:`write_comparison`.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     comparable_truth(np.zeros((9, 9)), np.zeros((4, 4)), "sr", scale=2).shape
        (8, 8)
    """
    if truth is None:
        return None
    if not isinstance(truth, np.ndarray):
        raise TypeError(f"truth is a numpy array (H, W) or (H, W, C), got {type(truth).__name__}")
    if restore_options.get("units") == "data" or task == "mri":  # any scale
        if not np.isfinite(truth).all():
            raise ValueError("the clean image holds NaN or Inf values; replace them first")
    else:
        check_image_range(truth, "the clean image", data_units=True)
    scale = restore_options.get("scale") or 2
    if task == "mri" or not float(scale).is_integer():  # size unknown
        return truth
    factor = int(scale) if task == "sr" else 1
    shape = (image.shape[0] * factor, image.shape[1] * factor, *image.shape[2:])
    if task == "sr":
        truth = _crop_sr_truth(truth, shape, factor)
    if task == "blur" and restore_options.get("boundary") == "valid":
        truth = _crop_valid_truth(truth, shape, restore_options.get("kernel"))
    _check_truth_shape(truth, shape)
    return truth


def _crop_valid_truth(truth: np.ndarray, shape: tuple[int, ...], kernel: Any) -> np.ndarray:
    """A valid blur's clean image cropped to the measurement's field of view, where it is the
    image the measurement was made from (larger by the kernel's footprint)."""
    with warnings.catch_warnings():  # the kernel's notes come once, from restore
        warnings.simplefilter("ignore")
        top, bottom, left, right = valid_margins(tuple(blur_kernel(kernel).shape[-2:]))
    if truth.shape != (shape[0] + top + bottom, shape[1] + left + right, *shape[2:]):
        return truth
    warnings.warn(
        f"the clean image is cropped from {truth.shape[0]}x{truth.shape[1]} to the valid "
        f"blur's field of view, {shape[0]}x{shape[1]} from row {top} and column {left} "
        "(counted from 0), which the restored image keeps",
        UserWarning,
        stacklevel=3,
    )
    return truth[top : top + shape[0], left : left + shape[1]]


def _crop_sr_truth(truth: np.ndarray, shape: tuple[int, ...], scale: int) -> np.ndarray:
    """The high-resolution truth cropped to a multiple of ``scale`` (as ``rimkit degrade`` and
    the SR protocol crop it before down-sampling), with a note, where that gives ``shape``."""
    extra = (truth.shape[0] - shape[0], truth.shape[1] - shape[1])
    if truth.shape[2:] != shape[2:] or not all(0 <= e < scale for e in extra):
        return truth
    return crop_noting(truth, scale, "the clean image", "as degrade cropped it")


def _check_truth_shape(truth: np.ndarray, shape: tuple[int, ...]) -> None:
    if truth.shape != tuple(shape):
        raise ValueError(
            f"the clean image is {truth.shape} but the restored one {tuple(shape)}; give the "
            "clean image the measurement was made from (for valid blur: y's field of view)"
        )


def _scores(image: np.ndarray, truth: np.ndarray | None, in_units: bool) -> tuple[Any, Any]:
    """PSNR and SSIM of 8-bit outputs, or ``in_units`` (MRI magnitudes, data of any scale) of
    floats with the truth's maximum as the data range."""
    if truth is None:
        return None, None
    _check_truth_shape(truth, image.shape)
    if in_units:
        peak = max(float(truth.max()), np.finfo(float).tiny)
        return psnr(image, truth, peak), ssim(image, truth, data_range=peak)
    estimate = to_8bit(image) / 255.0
    return psnr(estimate, truth), ssim(estimate, truth)


SAME_GRID_TASKS = ("denoise", "inpaint", "blur")
"""Tasks whose measurement lies on the clean image's pixel grid (a valid blur's restored image
is cropped back to it): it can be scored too, and a FITS output keeps its sky coordinates."""


def _load_method(name: str, device: str, precision: str) -> Any:
    """A method of :func:`compare`: ``None`` for a baseline, else the model; an unknown name
    names what is known."""
    from rimkit.solvers import BASELINES
    from rimkit.zoo import list_models, load_model

    if name in BASELINES:
        return None
    try:
        loaded = load_model(name, device=device, precision=precision)
    except ValueError as err:
        if not str(err).startswith("unknown model"):
            raise
        models = ", ".join(card.name for card in list_models())
        raise ValueError(
            f"unknown method {name!r}: not a baseline ({', '.join(BASELINES)}), a shipped "
            f"model ({models}), a run folder or a .safetensors file"
        ) from None
    return loaded.model


def measurement_scores(
    image: np.ndarray, truth: np.ndarray | None, task: str, units: str = "image"
) -> tuple[float, float] | None:
    """PSNR and SSIM of the measurement itself against ``truth``, scored as the results are,
    where it lies on the truth's grid (denoising, inpainting, deblurring of that size): the
    mark a method must beat. ``None`` elsewhere.

    Example:
        >>> truth = np.full((16, 16), 0.5)
        >>> round(measurement_scores(truth + 0.1, truth, "denoise")[0], 1)
        20.0
    """
    if truth is None or task not in SAME_GRID_TASKS or np.iscomplexobj(image):
        return None
    if np.shape(image) != np.shape(truth):
        return None
    return _scores(np.asarray(image, dtype=np.float64), truth, units == "data")


def _least_squares_scale(image: np.ndarray, truth: np.ndarray) -> float:
    """``a`` minimising ``||a x - t||``: ``<x, t> / <x, x>`` (1 for an all-zero ``x``)."""
    energy = float(np.vdot(image, image))
    return float(np.vdot(image, truth)) / energy if energy > 0 else 1.0


def write_comparison(
    out: str | os.PathLike,
    results: Sequence[Compared],
    shown: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    *,
    title: str = "rimkit compare",
    crop: int = 96,
    peak: float | None = None,
    force: bool = False,
    values: str | None = None,
    header: Any = None,
    measured: tuple[float, float] | None = None,
    scoring: str | None = None,
) -> dict[str, Path]:
    """Write each result as ``OUT/<label>.png``, ``figure.png`` (crops of the measurement
    ``shown`` at the results' size, the results and the ``truth``, side by side),
    ``results.md`` and ``report.html``; returns the written paths by name. ``peak`` is the
    value drawn white in the pictures of results and truth (MRI magnitudes and data in their
    own units have any scale);
    by default 1, or each result's maximum where it is above 1. ``values`` (``".npy"`` or
    ``".fits"``, the latter with ``header``) also writes each result's values as they are, as
    ``OUT/<label>-values.npy`` (or ``.fits``): data in their own units, which the pictures only
    show. ``measured``, the measurement's own scores (:func:`measurement_scores`), adds its
    row to the table; ``scoring``, a sentence on how the scores were taken, goes under it
    (:func:`scoring_note`)."""
    if values not in (None, ".npy", ".fits"):
        raise ValueError(f"values is '.npy', '.fits' or None, got {values!r}")
    out = check_output_folder(out, force)
    out.mkdir(parents=True, exist_ok=True)
    pictures = [r.image / (peak or max(float(r.image.max()), 1.0)) for r in results]
    written = {}
    for result, picture in zip(results, pictures, strict=True):
        path = out / f"{_slug(result.label)}.png"
        write_image(path, picture, force=True)
        written[result.label] = path
        if values is not None:
            kept = out / f"{_slug(result.label)}-values{values}"
            write_image(kept, result.image, True, header if values != ".npy" else None)
            written[f"{result.label} values"] = kept
    panels = [] if shown is None or shown.shape != results[0].image.shape else [("input", shown)]
    panels += [(r.label, picture) for r, picture in zip(results, pictures, strict=True)]
    panels += [] if truth is None else [("clean", truth / (peak or 1.0))]
    size = min(crop, *results[0].image.shape[:2])
    figure = crop_grid(panels, crop=size)
    written["figure"] = atomic_write_bytes(out / "figure.png", figure)
    table = _table(results, measured)
    under = f"\n\n{scoring}\n" if scoring else "\n"
    written["results"] = atomic_write_text(out / "results.md", markdown_table(table) + under)
    heading = "Results" + (" against the clean image" if truth is not None else "")
    written["report"] = write_report(
        out / "report.html",
        title,
        [(heading + (f". {scoring}" if scoring else ""), table)],
        [(f"Crops side by side (zoom 2); full results: {', '.join(_files(results))}", figure)],
    )
    return written


def scoring_note(task: str, truth: np.ndarray | None, units: str = "image") -> str | None:
    """How :func:`compare` scored against ``truth``, where a reader could take it for a
    published protocol's score: super-resolution is scored on every channel of the whole
    image, not on the Y channel with the border shaved.

    Example:
        >>> scoring_note("sr", np.zeros((8, 8, 3)))[:40]
        'Scores: PSNR and SSIM of the 8-bit resul'
    """
    if truth is None or task != "sr" or units == "data":
        return None
    channels = "every channel" if truth.ndim == 3 else "the image"
    return (
        f"Scores: PSNR and SSIM of the 8-bit results on {channels}, borders included; "
        "`rimkit eval --task sr` scores the published protocol (the Y channel, the scale's "
        "width shaved from each border), which its tables and BENCHMARKS.md quote."
    )


def _table(
    results: Sequence[Compared], measured: tuple[float, float] | None = None
) -> list[list[str]]:
    scored = any(r.psnr is not None for r in results)
    rows = [["method", "seconds"] + (["PSNR (dB)", "SSIM"] if scored else [])]
    if scored and measured is not None:
        rows.append(["the measurement itself", "-", f"{measured[0]:.2f}", f"{measured[1]:.4f}"])
    for r in results:
        cells = [r.label, f"{r.seconds:.2f}"]
        if scored:
            cells += [f"{r.psnr:.2f}", f"{r.ssim:.4f}"]
        rows.append(cells)
    return rows


def _files(results: Sequence[Compared]) -> list[str]:
    return [f"{_slug(r.label)}.png" for r in results]


def _slug(label: str) -> str:
    """A file name for a method label: ``runs/denoise-gray`` -> ``runs-denoise-gray``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "method"
