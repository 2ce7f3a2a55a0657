"""Regularisation weights of the variational baselines, tuned on training images only.

For each baseline ``b`` (``gd-tikhonov``, ``cg-tikhonov``, ``ista-wavelet``, ``fista-wavelet``,
``tv``) and each task setting ``s`` (a forward model and a noise level), the weight is the
grid value with the highest mean PSNR over a few training crops ``x_i``:

    lambda*(b, s) = argmax_{lambda in grid} 1/N sum_i PSNR(clip(x_hat_i(lambda), 0, 1), x_i)
    x_hat_i(lambda) = b_lambda(y_i, A_i, sigma; start x0_i),    y_i = A_i x_i + n_i

with a log-spaced grid and a fixed iteration count per baseline and task
(:func:`tuning_iterations`), started where the task starts
(:func:`rimkit.reconstruct.initial_estimate`). The weight is tuned for that budget and start: a
baseline run so is "K iterations from x0 at weight lambda", not always the minimiser of its
objective. In noisy settings the two agree; where the measurement leaves much unseen
(noiseless inpainting, super-resolution and MRI) the tuning may pick a weight at the grid's low
edge that is good only because K iterations keep the estimate near its start (gradient-descent
Tikhonov keeps the mean-filled start of inpainting; the conjugate-gradient one, which converges
in its 30 iterations, fills the holes with 0 and scores 5-8 dB lower). TV balances its primal
and dual steps with its weight, which brings it near its minimiser within its 100 iterations
except on the 32x32 patch tasks (projections at small m / n, lensing: 0.4-3.7 dB short;
BENCHMARKS.md, tv-convergence), where it runs 1000 (:data:`TASK_ITERATIONS`); its rows were
re-tuned so on 2026-12-02. The results and how
they were found (grid, images, iterations, seed, date, PSNR at every grid value) are saved as
``defaults.json`` next to this module; :func:`default_weight` reads them, and
:func:`tuned_baseline` builds a baseline with its tuned weight.

Task settings (``level`` units): ``denoise`` (sigma on the 0-255 scale), ``sr`` (scale),
``inpaint`` (missing fraction), ``gaussian`` / ``bernoulli`` / ``fourier`` (random projections,
ratio ``m / n``), ``lensing`` (Einstein radius), ``mri`` (acceleration), ``blur`` (sigma on the
0-255 scale, Gaussian and motion kernels). Denoising and deblurring are tuned at their noise
levels; the other tasks without noise and with noise of sigma 5 and 15 (0-255 scale), since the
best weight grows with the noise: a measurement takes the weight of the nearest level, then of
the nearest noise level (:func:`tuned_entry`).

MRI is tuned on slices of the MRI training volume (``--mri-volume``), the brains the MRI models
learned from, the other tasks on natural training images (``--folder``).

Regenerate the shipped table (about an hour on one CPU core), or re-tune some tasks in it::

    python -m rimkit.solvers.tuning --data ../shared/data --out src/rimkit/solvers/defaults.json
    python -m rimkit.solvers.tuning --data ../shared/data --tasks mri --levels 2 --update

Example:
    >>> default_weight("tv", "denoise", 25) > 0
    True
    >>> default_weight("tv", "blur", 5.0) == default_weight("tv", "blur", 7.65)  # the nearest
    True
    >>> default_weight("tv", "mri", 2, sigma=15) > default_weight("tv", "mri", 2)  # noisy k-space
    True
    >>> from rimkit.solvers import TotalVariation
    >>> default_weight("tv", "untuned-task", 1.0) == TotalVariation().weight   # class default
    True
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rimkit.evaluate.metrics import psnr_per_sample as psnr
from rimkit.solvers.tuned import (
    DEFAULTS_PATH,
    NOISY_TASKS,
    PROJECTIONS,
    TASK_NAMES,
    canonical_task,
    default_weight,
    row_sigma,
    tuned_baseline,
    tuned_entry,
)

__all__ = [
    "DEFAULTS_PATH",
    "DENOISE_GRID",
    "ITERATIONS",
    "NOISELESS_GRID",
    "PATCH_TASKS",
    "SETTINGS",
    "TASK_ITERATIONS",
    "TUNED_BASELINES",
    "GridResult",
    "Setting",
    "default_weight",
    "grid_search",
    "load_training_crops",
    "main",
    "psnr",
    "report",
    "tune",
    "tuned_baseline",
    "tuned_entry",
    "tuning_iterations",
]


TUNED_BASELINES: tuple[str, ...] = (
    "gd-tikhonov",
    "cg-tikhonov",
    "ista-wavelet",
    "fista-wavelet",
    "tv",
)

ITERATIONS: dict[str, int] = {
    "gd-tikhonov": 100,
    "cg-tikhonov": 30,
    "ista-wavelet": 50,
    "fista-wavelet": 50,
    "tv": 100,
}
"""Iterations per baseline while tuning (modest, to keep the tuning run to minutes); the
weights are tuned for these counts and :func:`tuned_baseline` uses them by default."""

PATCH_TASKS: tuple[str, ...] = (*PROJECTIONS, "lensing")
"""The tasks tuned and measured on 32x32 patches (random projections, lensing)."""

TASK_ITERATIONS: dict[tuple[str, str], int] = {("tv", task): 1000 for task in PATCH_TASKS}
"""Iterations that replace :data:`ITERATIONS` for a baseline on a task. TV on the 32x32 patch
tasks: there its 100 steps stay 0.4-3.7 dB short of its minimiser (Gaussian projections at
m / n 0.1, lensing; BENCHMARKS.md, tv-convergence), and 1000 steps on a 32x32 patch cost less
than 100 on a 481x321 image."""


def tuning_iterations(name: str, task: str) -> int:
    """The iterations baseline ``name`` is tuned for (and run with) on ``task``.

    Example:
        >>> tuning_iterations("tv", "denoise"), tuning_iterations("tv", "gaussian")
        (100, 1000)
    """
    if name not in ITERATIONS:
        raise ValueError(f"baseline {name!r} is not tuned; tuned: {', '.join(TUNED_BASELINES)}")
    return TASK_ITERATIONS.get((name, canonical_task(task)), ITERATIONS[name])


def _logspace(start: float, stop: float, count: int) -> tuple[float, ...]:
    step = (stop - start) / (count - 1)
    return tuple(float(f"{10 ** (start + step * k):.3g}") for k in range(count))


DENOISE_GRID: tuple[float, ...] = _logspace(-3, 0, 10)
"""Weights tried for denoising: 10 from ``10^-3`` to ``1``, a factor ``10^(1/3) ~ 2.15`` apart."""

NOISELESS_GRID: tuple[float, ...] = _logspace(-5, -0.5, 10)
"""Weights tried for the noiseless tasks: 10 from ``10^-5`` to ``10^-0.5``, half a decade apart."""

NOISY_GRID: tuple[float, ...] = _logspace(-5, 0, 11)
"""Weights tried for the other tasks with noise: 11 from ``10^-5`` to ``1``, half a decade apart."""

SOURCES = ("natural", "mri")
"""The images a setting is tuned on: natural ones (``--folder``) or slices of an MRI training
volume (``--mri-volume``), the data the MRI models learned from."""
MRI_VOLUME = "mri/mni152_t1_2009a.npz"
"""The MRI training volume (inside ``--data``) whose slices the MRI settings are tuned on."""


@dataclass(frozen=True)
class Setting:
    """One task setting: ``task`` (a name of :data:`TASK_NAMES`), its ``level``, the side of
    the square training crops it is tuned on, how many crops each image gives, and the noise
    ``sigma`` (0-255 scale) of the tasks whose level is not a noise level: 0 (noiseless) unless
    given. Denoising and deblurring take theirs from ``level``. ``source``: the images it is
    tuned on (:data:`SOURCES`; ``"mri"``: slices of the MRI training volume).

    Example:
        >>> import torch
        >>> m = Setting("sr", 3, crop=24).measure(torch.rand(2, 1, 24, 24), torch.Generator())
        >>> m.y.shape, m.name
        (torch.Size([2, 1, 8, 8]), 'sr-x3')
        >>> Setting("sr", 3, sigma=5).noise, Setting("blur", 7.65).noise
        (5.0, 7.65)
    """

    task: str
    level: float
    crop: int = 64
    crops_per_image: int = 1
    sigma: float | None = None
    source: str = "natural"

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASK_NAMES)}")
        if not (isinstance(self.crop, int) and self.crop >= 8):
            raise ValueError(f"crop must be an int >= 8, got {self.crop!r}")
        if not (isinstance(self.crops_per_image, int) and self.crops_per_image >= 1):
            raise ValueError(f"crops_per_image must be an int >= 1, got {self.crops_per_image!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.sigma is not None:
            if self.task in NOISY_TASKS:
                raise ValueError(f"{self.task}'s noise level is its level; leave sigma out")
            if not (isinstance(self.sigma, (int, float)) and 0 <= self.sigma <= 255):
                raise ValueError(f"sigma must be a number in [0, 255], got {self.sigma!r}")

    @property
    def noise(self) -> float:
        """The noise level sigma (0-255 scale) of the measurements."""
        if self.task in NOISY_TASKS:
            return float(self.level)
        return float(self.sigma or 0.0)

    @property
    def grid(self) -> tuple[float, ...]:
        """The weights tried: :data:`DENOISE_GRID` (denoising, deblurring),
        :data:`NOISELESS_GRID` (the other tasks without noise) or :data:`NOISY_GRID`."""
        if self.task in NOISY_TASKS:
            return DENOISE_GRID
        return NOISY_GRID if self.noise > 0 else NOISELESS_GRID

    def measure(self, x: Tensor, generator: torch.Generator):  # -> rimkit.tasks.Measurement
        """A measurement of the clean batch ``x`` ``(B, C, H, W)`` with the tasks' samplers."""
        from rimkit import tasks

        level, noise = float(self.level), (self.noise, self.noise)
        if self.task == "denoise":
            task: Any = tasks.DenoiseTask(sigma=noise)
        elif self.task == "sr":
            task = tasks.SuperResolutionTask(scales=(int(level),), sigma=noise)
        elif self.task == "inpaint":
            task = tasks.InpaintTask(fraction=(level, level), sigma=noise)
        elif self.task == "lensing":
            task = tasks.LensingTask(einstein_radius=(level, level), sigma=noise)
        elif self.task == "mri":
            task = tasks.MRITask(acceleration=(level, level), sigma=noise)
        elif self.task == "blur":
            task = tasks.BlurTask(sigma=noise)
        else:
            task = tasks.ProjectionTask(kinds=(self.task,), ratio=(level, level), sigma=noise)
        return task.sample(x, generator)


_FIRST_SETTINGS: tuple[Setting, ...] = (
    Setting("denoise", 15),
    Setting("denoise", 25),
    Setting("denoise", 50),
    Setting("sr", 2),
    Setting("sr", 3),
    Setting("sr", 4),
    Setting("inpaint", 0.5),
    Setting("inpaint", 0.8),
    Setting("gaussian", 0.25, crop=32, crops_per_image=8),
    Setting("bernoulli", 0.25, crop=32, crops_per_image=8),
    Setting("fourier", 0.25, crop=32, crops_per_image=8),
    Setting("lensing", 0.45, crop=32, crops_per_image=8),
    Setting("mri", 4.0, crop=128, source="mri"),
    Setting("mri", 8.0, crop=128, source="mri"),
    Setting("blur", 2.55, crops_per_image=4),
    Setting("blur", 7.65, crops_per_image=4),
    Setting("lensing", 0.3, crop=32, crops_per_image=8),
    Setting("lensing", 0.6, crop=32, crops_per_image=8),
)

NOISY_SIGMAS: tuple[float, ...] = (5.0, 15.0)
"""The noise levels (0-255 scale) at which the tasks that are noiseless by default are tuned
too; a measurement's weight comes from the nearest of 0 and these (:func:`tuned_entry`)."""


def _with_noise(settings: tuple[Setting, ...]) -> tuple[Setting, ...]:
    """The settings of the tasks that are noiseless by default at each of NOISY_SIGMAS."""
    return tuple(
        dataclasses.replace(s, sigma=sigma)
        for s in settings
        if s.task not in NOISY_TASKS
        for sigma in NOISY_SIGMAS
    )


_LATE_SETTINGS: tuple[Setting, ...] = (Setting("mri", 2.0, crop=128, source="mri"),)

_LOW_NOISE_SETTINGS: tuple[Setting, ...] = (Setting("denoise", 5), Setting("denoise", 10))
"""Denoising below sigma 15, added later still: sigma 15's TV weight over-smoothed sigma 5 below
the noisy input (29.1 dB against 34.2 on BSD68)."""

SETTINGS: tuple[Setting, ...] = (
    _FIRST_SETTINGS
    + _with_noise(_FIRST_SETTINGS)
    + _LATE_SETTINGS
    + _with_noise(_LATE_SETTINGS)
    + _LOW_NOISE_SETTINGS
)
"""The tuned settings: one 64x64 crop per image; eight 32x32 crops per image for the random
projections (the paper's patch size), whose PSNR varies much from crop to crop (a random
Fourier ensemble of 256 rows misses the mean, the DC coefficient, 3 times in 4), and for
lensing, whose lenses differ from crop to crop. MRI is scored on the magnitude image.
Deblurring (``level``: sigma on the 0-255 scale) takes four 64x64 crops per image, each blurred
by its own kernel drawn as :class:`rimkit.tasks.BlurTask` draws them (Gaussian or motion).
Every setting of the other tasks is tuned noiseless and again at each of :data:`NOISY_SIGMAS`
(appended, so the seeds of the first settings, drawn from their index, stay as they were);
settings added later (MRI at R = 2) come last, with their noisy copies, then denoising at
sigma 5 and 10.
MRI is tuned on 128x128 crops of slices of the MRI training volume (:data:`MRI_VOLUME`), the
brains the MRI models learned from, not on natural images."""


@dataclass(frozen=True)
class GridResult:
    """Mean PSNR of one baseline at every grid weight, for one task setting."""

    baseline: str
    task: str
    level: float
    grid: tuple[float, ...]
    psnr: tuple[float, ...]
    iterations: int
    sigma: float = 0.0

    @property
    def best_index(self) -> int:
        """The index of the best grid value (the smaller weight on ties)."""
        return max(range(len(self.psnr)), key=lambda i: (self.psnr[i], -i))

    @property
    def weight(self) -> float:
        """The chosen weight ``argmax_lambda PSNR``."""
        return self.grid[self.best_index]

    @property
    def best_psnr(self) -> float:
        return self.psnr[self.best_index]

    @property
    def at_edge(self) -> bool:
        """Whether the best value is the first or last of the grid (the grid may be too short)."""
        return self.best_index in (0, len(self.grid) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "task": self.task,
            "level": self.level,
            "sigma": self.sigma,
            "weight": self.weight,
            "psnr": round(self.best_psnr, 3),
            "at_edge": self.at_edge,
            "iterations": self.iterations,
            "grid": list(self.grid),
            "psnr_grid": [round(p, 3) for p in self.psnr],
        }


def grid_search(
    name: str,
    measurement: Any,
    grid: Sequence[float],
    iterations: int | None = None,
    level: float = math.nan,
) -> GridResult:
    """Run baseline ``name`` at every weight of ``grid`` on one batch ``measurement``
    (a :class:`rimkit.tasks.Measurement`) and record the mean PSNR of its final estimate.

    The baseline starts where the RIM does, at the task's ``measurement.x0`` (``y`` for
    denoising, bicubic up-sampling, the mean-filled image for inpainting, 0.5 for random
    projections; see :func:`rimkit.reconstruct.initial_estimate`). ``iterations`` defaults
    to :func:`tuning_iterations` for the measurement's task.

    Example:
        >>> import torch
        >>> from rimkit.tasks import DenoiseTask
        >>> m = DenoiseTask(sigma=(25, 25)).sample(torch.rand(2, 1, 16, 16),
        ...                                        torch.Generator().manual_seed(0))
        >>> r = grid_search("cg-tikhonov", m, grid=[0.01, 0.1, 1.0], iterations=10)
        >>> r.weight in (0.01, 0.1, 1.0), r.best_psnr == max(r.psnr)
        (True, True)
    """
    from rimkit.operators import magnitude
    from rimkit.solvers import baseline

    if name not in ITERATIONS:
        raise ValueError(f"baseline {name!r} is not tuned; tuned: {', '.join(TUNED_BASELINES)}")
    grid = tuple(float(w) for w in grid)
    if not grid or any(not (w > 0 and math.isfinite(w)) for w in grid):
        raise ValueError(f"the grid must hold finite weights > 0, got {grid}")
    task = canonical_task(measurement.name)
    iterations = tuning_iterations(name, task) if iterations is None else iterations
    scores = []
    for weight in grid:
        solver = baseline(name, weight=weight, iterations=iterations, keep_estimates=False)
        result = solver(measurement.y, measurement.operator, measurement.sigma, x0=measurement.x0)
        final, target = result.final, measurement.target
        if measurement.name == "mri":  # complex images as two channels: score the magnitude
            final, target = magnitude(final), magnitude(target)
        scores.append(float(psnr(final, target).mean()))
    sigma = round(float(measurement.sigma.double().mean()) * 255.0, 4)  # 0-255 scale
    return GridResult(name, task, float(level), grid, tuple(scores), iterations, sigma)


def load_training_crops(
    folder: str | os.PathLike, count: int, seed: int = 0
) -> tuple[list[Tensor], list[Path]]:
    """``count`` gray images ``(1, H, W)`` picked at random (seeded) from ``folder``.

    Refuses any folder inside an ``eval`` directory: the weights are tuned on training images.
    """
    from rimkit.data import ImageFolder, list_images

    folder = Path(folder)
    if "eval" in folder.resolve().parts:
        raise ValueError(
            f"{str(folder)!r} is an evaluation folder; tune on training images only "
            "(e.g. train/Train400 or train/BSDS500-test)"
        )
    files = list_images(folder)
    if not 1 <= count <= len(files):
        raise ValueError(f"asked for {count} images but {str(folder)!r} holds {len(files)}")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
    chosen = sorted(files[int(i)] for i in order[:count])
    images = ImageFolder(folder, gray=True, files=chosen)
    return [images[i] for i in range(len(images))], chosen


def load_mri_slices(
    path: str | os.PathLike, count: int, seed: int = 0, min_fill: float = 0.3
) -> tuple[list[Tensor], list[str]]:
    """``count`` slices ``(1, H, W)`` in ``[0, 1]`` picked at random (seeded) from the MRI
    volume ``path`` (:func:`rimkit.data.volumes.volume_planes`: along each axis, those with at
    least ``min_fill`` of their pixels above 5 % of the maximum), and their names
    (``axis1-120``). Refuses a volume inside an ``eval`` directory."""
    from rimkit.data.volumes import volume_planes

    path = Path(path)
    if "eval" in path.resolve().parts:
        raise ValueError(f"{str(path)!r} is an evaluation volume; tune on training data only")
    if not path.is_file():
        raise ValueError(
            f"MRI volume {str(path)!r} does not exist; the MRI settings are tuned on slices of "
            f"an MRI training volume (--mri-volume, default {MRI_VOLUME} inside --data)"
        )
    planes = volume_planes(path, min_fill=min_fill)
    if not 1 <= count <= len(planes):
        raise ValueError(f"asked for {count} slices but {str(path)!r} gives {len(planes)}")
    order = torch.randperm(len(planes), generator=torch.Generator().manual_seed(seed))
    chosen = sorted(int(i) for i in order[:count])
    images = [torch.from_numpy(planes[i][1].astype(np.float32) / 255.0) for i in chosen]
    return images, [planes[i][0] for i in chosen]


def _crops(
    images: list[Tensor], size: int, generator: torch.Generator, per_image: int = 1
) -> Tensor:
    """``per_image`` random ``size x size`` crops of each image: ``(N * per_image, 1, S, S)``."""
    crops = []
    for img in images:
        h, w = img.shape[-2:]
        if h < size or w < size:
            raise ValueError(f"an image of {h}x{w} pixels is smaller than the {size}px crop")
        for _ in range(per_image):
            top = int(torch.randint(h - size + 1, (1,), generator=generator))
            left = int(torch.randint(w - size + 1, (1,), generator=generator))
            crops.append(img[..., top : top + size, left : left + size])
    return torch.stack(crops)


def tune(
    images: list[Tensor],
    settings: Sequence[Setting] = SETTINGS,
    baselines: Sequence[str] = TUNED_BASELINES,
    grid: Sequence[float] | None = None,
    iterations: dict[str, int] | None = None,
    seed: int = 0,
    thin: int = 1,
    progress: bool = False,
    mri_images: list[Tensor] | None = None,
    divide: int = 1,
) -> list[GridResult]:
    """Grid-search every baseline on every setting over crops of ``images`` (``(1, H, W)``),
    or of ``mri_images`` for the settings whose ``source`` is ``"mri"``.

    ``grid`` defaults to each setting's own (:attr:`Setting.grid`), of which every ``thin``-th
    value is tried. Each baseline runs :func:`tuning_iterations` on each task, divided by
    ``divide`` (a smoke test), unless ``iterations`` names a count for it (every task). Each
    setting draws its crops and measurement from generators seeded by ``(seed, setting
    index)``, its index in :data:`SETTINGS` (others: after those), so its result depends
    neither on which baselines run nor on which other settings.
    """
    from rimkit.data import seeded

    iterations = iterations or {}
    results = []
    for position, setting in enumerate(settings):
        index = SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS) + position
        source = images if setting.source == "natural" else mri_images
        if source is None:
            raise ValueError(f"setting {setting} is tuned on MRI slices: give mri_images")
        x = _crops(source, setting.crop, seeded(seed, index, 0), setting.crops_per_image)
        measurement = setting.measure(x, seeded(seed, index, 1))
        weights = tuple(setting.grid if grid is None else grid)[::thin]
        for name in baselines:
            tic = time.perf_counter()
            count = iterations.get(name) or tuning_iterations(name, setting.task) // divide
            r = grid_search(name, measurement, weights, max(1, count), float(setting.level))
            results.append(r)
            if progress:
                print(
                    f"{name:14s} {setting.task:9s} {setting.level:<5g} sigma {r.sigma:<5g} "
                    f"weight {r.weight:<8.3g} "
                    f"PSNR {r.best_psnr:6.2f}{' (grid edge)' if r.at_edge else ''} "
                    f"[{time.perf_counter() - tic:.1f}s]",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def _iterations_summary(rows: Sequence[dict[str, Any]]) -> dict[str, int | dict[str, int]]:
    """Iterations per baseline of the table's ``rows``, or per task where a baseline's tasks
    ran different counts: ``{"tv": {"denoise": 100, "gaussian": 1000, ...}, "cg-tikhonov": 30}``.
    """
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["baseline"], {})[row["task"]] = int(row["iterations"])
    return {b: c.popitem()[1] if len(set(c.values())) == 1 else c for b, c in counts.items()}


def grid_key(task: str, sigma: float) -> str:
    """The key of the provenance's ``grid`` for a task at a noise level: the task's name, with
    ``", sigma > 0"`` for the noisy settings of the tasks that are noiseless by default."""
    return task if task in NOISY_TASKS or not sigma > 0 else f"{task}, sigma > 0"


def report(
    results: list[GridResult],
    files: Sequence[Path],
    data_root: Path,
    settings: Sequence[Setting],
    seed: int,
    quick: bool,
    wall_time_s: float,
    mri_slices: Sequence[str] = (),
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON-ready table: the results and how they were found (``mri_slices``: the names
    of the MRI volume's slices the MRI settings were tuned on, as ``VOLUME:axis1-120``)."""
    import rimkit

    def rel(p: Path) -> str:
        try:
            return p.resolve().relative_to(data_root.resolve()).as_posix()
        except ValueError:
            return p.name

    grids: dict[str, list[float]] = {}
    for r in results:
        grids.setdefault(grid_key(r.task, r.sigma), list(r.grid))
    return {
        "format": 1,
        "provenance": {
            "method": (
                "grid search: for each baseline and task setting, the grid weight with the "
                "highest mean PSNR (peak 1, estimate clipped to [0, 1]) of the final estimate "
                "over random crops of each training image (settings: crops_per_image); "
                "every solver starts at the "
                "task's x0 (rimkit.tasks; y for denoising and deblurring, bicubic for sr, "
                "mean-filled for inpainting, 0.5 for projections and lensing, zero-filled for "
                "MRI); denoising and deblurring are noisy, the other tasks tuned noiseless and "
                "with noise (sigma, 0-255 scale); MRI is tuned on slices of an MRI training "
                "volume (mri_images) and scored on the magnitude"
            ),
            "date": datetime.date.today().isoformat(),
            "command": "python -m rimkit.solvers.tuning "
            + " ".join(sys.argv[1:] if command is None else command),
            "images": [rel(f) for f in files],
            **({"mri_images": list(mri_slices)} if mri_slices else {}),
            "settings": [dataclasses.asdict(s) for s in settings],
            "levels": "denoise: sigma (0-255); sr: scale; inpaint: missing fraction; "
            "gaussian/bernoulli/fourier: ratio m/n; lensing: Einstein radius (source widths); "
            "mri: acceleration (variable-density columns); blur: sigma (0-255), Gaussian and "
            "motion kernels drawn per crop as rimkit.tasks.BlurTask draws them",
            "grid": grids,
            "iterations": _iterations_summary([r.to_dict() for r in results]),
            "seed": seed,
            "quick": quick,
            "wall_time_s": round(wall_time_s, 1),
            "threads": torch.get_num_threads(),
            "rimkit_version": rimkit.__version__,
            "torch_version": torch.__version__,
        },
        "results": [r.to_dict() for r in results],
    }


def _updated(path: Path, new: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The table at ``path`` with the rows of ``new`` in place of those of the same baseline,
    task, level and noise (appended where it has none), its provenance kept, the settings and
    iterations made current and the update recorded under ``updates``; ``check_only``: only
    read it (before the work, so a missing table stops the run at once)."""
    try:
        table = json.loads(path.read_text())
        rows, provenance = table["results"], table["provenance"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--update needs the table to update at --out: {err}") from None
    if check_only:
        return table

    def key(row: dict[str, Any]) -> tuple:
        return row["baseline"], row["task"], row["level"], row_sigma(row)

    fresh = {key(row): row for row in new["results"]}
    rows = [fresh.pop(key(row), row) for row in rows] + list(fresh.values())
    done = new["provenance"]
    provenance["settings"] = [dataclasses.asdict(s) for s in SETTINGS]
    provenance["iterations"] = _iterations_summary(rows)
    for name, grid in done["grid"].items():
        provenance.setdefault("grid", {})[name] = grid
    if "mri_images" in done:
        provenance["mri_images"] = done["mri_images"]
    provenance["method"] = done["method"]
    settings = sorted({(s["task"], s["level"], Setting(**s).noise) for s in done["settings"]})
    provenance.setdefault("updates", []).append({
        k: done[k] for k in ("date", "command", "wall_time_s", "threads", "rimkit_version")
    } | {"settings": [list(s) for s in settings]})  # fmt: skip
    return {**table, "provenance": provenance, "results": rows}


def _dumps(table: dict[str, Any]) -> str:
    """JSON with the provenance indented and one line per result."""
    head = json.dumps({k: v for k, v in table.items() if k != "results"}, indent=1)
    rows = ",\n".join("  " + json.dumps(r) for r in table["results"])
    return head[:-2] + ',\n "results": [\n' + rows + "\n ]\n}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: tune and write the table; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m rimkit.solvers.tuning",
        description="Tune the baselines' regularisation weights on training images.",
    )
    parser.add_argument("--data", default="../shared/data", help="data root (../shared/data)")
    parser.add_argument("--folder", default="train/Train400", help="training images, inside --data")
    parser.add_argument("--out", default=str(DEFAULTS_PATH), help="the JSON file to write")
    parser.add_argument("--images", type=int, default=4, help="number of training images")
    parser.add_argument(
        "--mri-volume", default=MRI_VOLUME, help=f"MRI training volume in --data ({MRI_VOLUME})"
    )
    parser.add_argument("--mri-images", type=int, default=8, help="slices of it (8)")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the tuned settings' rows of the table at --out, keeping the others",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--baselines", nargs="+", default=list(TUNED_BASELINES))
    parser.add_argument("--tasks", nargs="+", default=None, help="only these task names")
    parser.add_argument("--levels", nargs="+", type=float, default=None, help="only these levels")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: every other weight, 1/5 of the iterations"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        unknown = sorted(set(args.baselines) - set(TUNED_BASELINES))
        if unknown:
            raise ValueError(f"cannot tune {unknown}; tunable: {', '.join(TUNED_BASELINES)}")
        settings = [
            s
            for s in SETTINGS
            if (args.tasks is None or s.task in args.tasks)
            and (args.levels is None or float(s.level) in args.levels)
        ]
        if not settings:
            raise ValueError(
                f"no settings for tasks {args.tasks} at levels {args.levels}; known tasks: "
                f"{', '.join(TASK_NAMES)}"
            )
        if args.update:
            if args.quick:
                raise ValueError("--update with --quick would put smoke-test rows in the table")
            _updated(Path(args.out), {"results": [], "provenance": {}}, check_only=True)
        root = Path(args.data)
        folder = Path(args.folder) if Path(args.folder).is_absolute() else root / args.folder
        tic = time.perf_counter()
        images, files = load_training_crops(folder, args.images, args.seed)
        mri_images, mri_slices = None, []
        if any(s.source == "mri" for s in settings):
            volume = Path(args.mri_volume)
            volume = volume if volume.is_absolute() else root / volume
            mri_images, names = load_mri_slices(volume, args.mri_images, args.seed)
            mri_slices = [f"{args.mri_volume}:{name}" for name in names]
        results = tune(
            images,
            settings,
            args.baselines,
            seed=args.seed,
            thin=2 if args.quick else 1,
            progress=True,
            mri_images=mri_images,
            divide=5 if args.quick else 1,
        )
        table = report(
            results, files, root, settings, args.seed, args.quick, time.perf_counter() - tic,
            mri_slices, argv,
        )  # fmt: skip
        wall_time_s = table["provenance"]["wall_time_s"]
        if args.update:
            table = _updated(Path(args.out), table)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    from rimkit.writing import atomic_write

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(_dumps(table), encoding="utf-8"))
    print(f"wrote {out} ({wall_time_s} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
