"""The baselines' tuned regularisation weights, looked up for a task setting.

:mod:`rimkit.solvers.tuning` finds the weights on training images and writes them to
``defaults.json`` beside this module; this module reads that table. :func:`tuned_entry` picks
the row nearest to a setting (the nearest level on a log scale, then the nearest noise level),
:func:`default_weight` its weight (or the baseline's class default), and
:func:`tuned_baseline` builds the baseline with that weight and iteration count.

Example:
    >>> default_weight("tv", "denoise", 25) > 0
    True
    >>> tuned_baseline("tv", "sr", 3).weight == default_weight("tv", "sr", 3)
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rimkit.solvers.base import Reconstructor

DEFAULTS_PATH = Path(__file__).with_name("defaults.json")
"""The tuned-weight table read when no ``path`` is given. It is read from this module at each
call, so ``rimkit.solvers.tuned.DEFAULTS_PATH = other`` redirects every reader; the name
:mod:`rimkit.solvers.tuning` re-exports is a copy (setting it there redirects nothing)."""


PROJECTIONS = ("gaussian", "bernoulli", "fourier")


TASK_NAMES = ("denoise", "sr", "inpaint", *PROJECTIONS, "lensing", "mri", "blur")


NOISY_TASKS = ("denoise", "blur")


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> tuple[dict[str, Any], ...]:
    try:
        return tuple(json.loads(Path(path).read_text())["results"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read tuned weights from {path!r}: {err}") from None


def _class_default(name: str) -> float:
    from rimkit.solvers import BASELINES

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    fields = {f.name: f for f in dataclasses.fields(BASELINES[name])}  # type: ignore[arg-type]
    if "weight" not in fields:
        raise ValueError(f"baseline {name!r} has no regularisation weight")
    return float(fields["weight"].default)


def canonical_task(task: str) -> str:
    task = task.removeprefix("projection-").removeprefix("projection:")
    return task.split("-x")[0]  # "sr-x2" (a measurement's name) -> "sr"


def tuned_entry(
    baseline_name: str,
    task: str,
    level: float,
    path: str | os.PathLike | None = None,
    sigma: float | None = None,
) -> dict[str, Any] | None:
    """The row of the table nearest to ``(baseline_name, task, level, sigma)``, or ``None``.

    Among the tuned levels of that baseline and task, the nearest on a log scale (``level <= 0``
    picks the lowest; ties go to the lower level); among that level's rows, the one tuned at the
    noise level (0-255 scale) nearest to ``sigma`` on the scale ``log(1 + sigma)`` (``None``:
    the lowest, noiseless where the table has it). Denoising's and deblurring's noise level is
    their level.

    Example:
        >>> tuned_entry("tv", "sr", 3, sigma=4)["sigma"], tuned_entry("tv", "sr", 3)["sigma"]
        (5.0, 0.0)
    """
    rows = _rows(baseline_name, task, path)
    if not rows:
        return None
    noise = 0.0 if sigma is None or not sigma > 0 else float(sigma)
    if not level > 0:
        level = min(r["level"] for r in rows)
    nearest = min(rows, key=lambda r: (abs(math.log(level / r["level"])), r["level"]))
    rows = [r for r in rows if r["level"] == nearest["level"]]

    def noise_gap(row: dict[str, Any]) -> tuple[float, float]:
        return abs(math.log1p(noise) - math.log1p(row_sigma(row))), row_sigma(row)

    return min(rows, key=noise_gap)


def _rows(
    baseline_name: str, task: str, path: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """The table's rows of one baseline and task (none without the table)."""
    path = Path(DEFAULTS_PATH if path is None else path)
    if not path.is_file():
        return []
    task = canonical_task(task)
    _check_setting(task)
    return [
        r
        for r in _load(str(path), path.stat().st_mtime)
        if r["baseline"] == baseline_name and r["task"] == task
    ]


UNTUNED_NOISE_FACTOR = 2.0
"""A baseline given no weight of its own at a noise level over this many times the highest its
weight was tuned at (for its task) gets a note: the weight it takes is likely too weak."""


def _note_untuned_noise(name: str, task: str, sigma: float | None, rows: list[dict]) -> None:
    highest = max(row_sigma(r) for r in rows)
    noise = 0.0 if sigma is None or not sigma > 0 else float(sigma)
    if highest > 0 and noise > UNTUNED_NOISE_FACTOR * highest:
        warnings.warn(
            f"{name}'s weight for {task} is tuned at noise levels up to sigma {highest:g}; at "
            f"sigma {noise:.3g} it takes that one, likely too weak: give it a weight of yours "
            f"(baseline({name!r}, weight=W), rimkit eval --baseline-option {name}.weight=W; "
            "rimkit.solvers.tuning.grid_search finds one on measurements of yours)",
            UserWarning,
            stacklevel=3,
        )


def _check_setting(task: str) -> None:
    """Warn where a lookup would quietly fall back to the class default: a task no weight is
    tuned for (a slip such as ``"deblur"`` for ``"blur"``)."""
    if task not in TASK_NAMES:
        warnings.warn(
            f"no baseline weights are tuned for task {task!r} (tuned: {', '.join(TASK_NAMES)}); "
            "the baseline's class default is used",
            UserWarning,
            stacklevel=4,
        )


def row_sigma(row: dict[str, Any]) -> float:
    """A table row's noise level; rows written before it was recorded: denoising's and
    deblurring's level, 0 for the others."""
    if "sigma" in row:
        return float(row["sigma"])
    return float(row["level"]) if row["task"] in NOISY_TASKS else 0.0


def default_weight(
    baseline_name: str,
    task: str,
    level: float,
    path: str | os.PathLike | None = None,
    sigma: float | None = None,
) -> float:
    """The tuned weight of ``baseline_name`` for ``task`` at ``level`` and noise ``sigma``
    (0-255 scale), or its class default.

    The nearest tuned level of that baseline and task is used (on a log scale), then the
    nearest tuned noise level (see :func:`tuned_entry`). Without a tuned entry for the
    baseline and task (or without the table) the class default ``weight`` is returned.
    ``task`` is one of ``denoise``, ``sr``, ``inpaint``, ``gaussian``, ``bernoulli``,
    ``fourier``, ``lensing``, ``mri``, ``blur`` (also accepted: ``projection-<kind>`` and
    measurement names such as ``sr-x2``); ``path`` defaults to the shipped ``defaults.json``.

    Example:
        >>> default_weight("cg-tikhonov", "denoise", 20) in (
        ...     default_weight("cg-tikhonov", "denoise", 15),
        ...     default_weight("cg-tikhonov", "denoise", 25))
        True
        >>> default_weight("bm3d", "denoise", 25)
        Traceback (most recent call last):
        ...
        ValueError: baseline 'bm3d' has no regularisation weight
    """
    fallback = _class_default(baseline_name)
    entry = tuned_entry(baseline_name, task, level, path, sigma)
    return fallback if entry is None else float(entry["weight"])


def tuned_baseline(
    name: str,
    task: str,
    level: float,
    path: str | os.PathLike | None = None,
    sigma: float | None = None,
    **options: object,
) -> Reconstructor:
    """``baseline(name, **options)`` with the ``weight`` and ``iterations`` tuned for ``task``
    at ``level`` and noise ``sigma`` (0-255 scale; :func:`tuned_entry`) unless given.

    Without a tuned entry the class defaults stay. Baselines without a weight (``bm3d``,
    ``zero-filled``, ``bicubic``) are built as they are. Start the solver where the tuning
    did, at the task's ``x0`` (:func:`rimkit.reconstruct.initial_estimate`).

    Example:
        >>> solver = tuned_baseline("tv", "denoise", 25)
        >>> solver.weight == default_weight("tv", "denoise", 25)
        True
    """
    from rimkit.solvers import baseline

    try:
        _class_default(name)
    except ValueError as err:
        if "no regularisation weight" not in str(err):
            raise
        return baseline(name, **options)
    entry = tuned_entry(name, task, level, path, sigma)
    if entry is not None and "weight" not in options:
        noisy = canonical_task(task) in NOISY_TASKS  # denoising's and deblurring's level
        told = level if sigma is None and noisy else sigma
        _note_untuned_noise(name, canonical_task(task), told, _rows(name, task, path))
    if entry is not None:
        options.setdefault("weight", float(entry["weight"]))
        options.setdefault("iterations", int(entry["iterations"]))
    return baseline(name, **options)
