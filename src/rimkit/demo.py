"""``rimkit demo``: degrade an embedded image, restore it with the shipped RIMs and baselines.

Denoising (sigma 25), super-resolution x2/x3/x4, deblurring (Gaussian blur of std 1.6 px, noise
sigma 2.55), inpainting (80 % missing), strong lensing (the crop as a source behind an
elliptical lens), single-coil MRI (the crop's k-space at 4-fold acceleration, variable-density
columns) and 8-coil MRI (simulated coil sensitivities, 8-fold) of a crop of scikit-image's
``camera``, each reconstructed by the shipped RIM for the task and by classical baselines with
their weights tuned on training images. Writes a PSNR/SSIM table (``results.md``,
``results.json``), a crop grid (``figure.png``), PSNR against step t (``convergence.png`` with
the ``plot`` extra, ``convergence.csv`` always) and ``report.html``.

Example:
    >>> [s.name for s in SETTINGS][-4:]
    ['inpaint 80%', 'lensing', 'mri R=4', 'mri 8 coils R=8']
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rimkit.evaluate.figures import convergence_figure, crop_grid
from rimkit.evaluate.metrics import psnr, ssim, to_8bit
from rimkit.evaluate.report import atomic_write_bytes, atomic_write_text, write_report
from rimkit.io import check_image_range, read_image
from rimkit.noise import GaussianNoise, simulate
from rimkit.operators import (
    DEFAULT_KERNEL,
    SIE,
    BicubicDownsample,
    Blur,
    Identity,
    Inpainting,
    LensingSetup,
    LinearOperator,
    kernel_from_spec,
    magnitude,
    random_mask,
)
from rimkit.reconstruct import RIMReconstructor, initial_estimate
from rimkit.solvers.selection import check_baselines
from rimkit.solvers.tuned import tuned_baseline
from rimkit.solvers.tuning import tuning_iterations
from rimkit.tasks import MRITask
from rimkit.writing import check_output_folder
from rimkit.zoo import list_models, load_model

CROP = 252  # divisible by the scales 2, 3 and 4


@dataclass(frozen=True)
class Setting:
    """One degradation of the demo: its task, level, shipped model and baselines."""

    name: str
    task: str
    level: float
    model: str
    baselines: tuple[str, ...]
    coils: int = 1


SETTINGS = (
    Setting("denoise sigma 25", "denoise", 25, "denoise-gray", ("bm3d", "tv", "fista-wavelet")),
    Setting("sr x2", "sr", 2, "sr", ("bicubic", "tv")),
    Setting("sr x3", "sr", 3, "sr", ("bicubic", "tv")),
    Setting("sr x4", "sr", 4, "sr", ("bicubic", "tv")),
    Setting("deblur", "blur", 2.55, "deblur", ("tv", "fista-wavelet")),
    Setting("inpaint 80%", "inpaint", 0.8, "3task", ("tv", "fista-wavelet")),
    Setting("lensing", "lensing", 0.45, "lensing", ("tv", "fista-wavelet")),
    Setting("mri R=4", "mri", 4.0, "mri", ("zero-filled", "tv")),
    Setting("mri 8 coils R=8", "mri", 8.0, "mri", ("zero-filled", "tv"), coils=8),
)
BLUR_KERNEL = DEFAULT_KERNEL
"""The demo's blur (IRCNN's Gaussian); the deblurring setting's level is the noise sigma."""
LENS = dict(axis_ratio=0.7, angle=0.5, shear=(0.02, -0.01))
"""The demo's lens besides its Einstein radius (the setting's level, in crop widths)."""


def _measure(
    setting: Setting, x: torch.Tensor, seed: int
) -> tuple[LinearOperator, torch.Tensor, float]:
    gen = torch.Generator().manual_seed(seed)
    if setting.task == "denoise":
        sigma = setting.level / 255
        return Identity(), simulate(x, Identity(), GaussianNoise(sigma), gen), sigma
    if setting.task == "sr":
        op = BicubicDownsample(int(setting.level))
        return op, torch.round(op(x).clamp(0, 1) * 255) / 255, 0.0
    if setting.task == "blur":
        op, sigma = Blur(kernel_from_spec(BLUR_KERNEL)), setting.level / 255
        return op, simulate(x, op, GaussianNoise(sigma), gen), sigma
    if setting.task == "lensing":
        op = LensingSetup(SIE(setting.level, **LENS)).operator(tuple(x.shape[-2:]))
        return op, op(x), 0.0
    if setting.task == "mri":  # x as a real image (imaginary part 0), as MRI models learn
        rate, coils = (setting.level,) * 2, (setting.coils,) * 2
        m = MRITask(acceleration=rate, coils=coils).sample(x, gen)
        return m.operator, m.y, 0.0
    op = Inpainting(random_mask(tuple(x.shape), setting.level, gen, x.dtype))
    return op, op(x), 0.0


def baselines(setting: Setting) -> tuple[list[tuple[str, Any]], list[str]]:
    """The setting's baselines as ``(name, solver)`` pairs, and a note for each one skipped
    because its optional extra (e.g. ``bm3d``) is not installed.

    The extra is checked here: BM3D imports its package only when it runs.
    """
    methods, notes = [], []
    for name in setting.baselines:
        try:
            check_baselines([name], setting.task)
        except ValueError as err:  # only an extra can be missing: the names are fixed here
            notes.append(f"{setting.name}: {name} skipped ({err}).")
            continue
        methods.append((name, _baseline(name, setting)))
    return methods, notes


def _baseline(name: str, setting: Setting):
    options: dict[str, Any] = {}
    if name in ("tv", "fista-wavelet"):  # at least the count its weight was tuned for
        options["iterations"] = max(100, tuning_iterations(name, setting.task))
    return tuned_baseline(name, setting.task, setting.level, **options)


def _shown(setting: Setting, y: torch.Tensor, op: LinearOperator) -> np.ndarray:
    """The measurement as a picture of the truth's size (up-sampled for SR; MRI: the
    zero-filled magnitude)."""
    if setting.task == "lensing":
        return np.clip(y[0, 0].numpy(), 0, 1)  # the lensed image, as large as the source
    return _picture(initial_estimate(op, y))


def _picture(estimate: torch.Tensor) -> np.ndarray:
    """An estimate ``(1, C, H, W)`` as an ``(H, W)`` image in ``[0, 1]``: its one channel, or
    the magnitude of a complex image held as two channels (MRI)."""
    image = magnitude(estimate) if estimate.shape[1] == 2 else estimate
    return np.clip(image[0, 0].numpy(), 0, 1)


def run_demo(
    out: str | os.PathLike,
    image: str = "example:camera",
    force: bool = False,
    seed: int = 0,
    progress: bool = True,
    crop: int = CROP,
) -> dict[str, Any]:
    """Run every setting on a centre crop of ``image`` (``crop`` pixels, a multiple of 12 so
    every scale divides it), write the outputs into ``out`` and return the results."""
    if crop < 24 or crop % 12:
        raise ValueError(f"crop must be a multiple of 12 and at least 24, got {crop}")
    out = check_output_folder(out, force, inputs=[image])
    picture = read_image(image)
    truth = _crop(read_image(image, gray=True) if picture.ndim == 3 else picture, crop)
    check_image_range(truth, image, data_units=False)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    colour = ["the demo is gray: the colour image was converted to gray (ITU-R 601 luma)."]
    try:
        return _run(out, image, truth, seed, progress, colour if picture.ndim == 3 else [])
    except BaseException:
        if created and not any(out.iterdir()):  # a failed run leaves no empty folder of its own
            out.rmdir()
        raise


def _run(
    out: Path, image: str, truth: np.ndarray, seed: int, progress: bool, notes: list[str]
) -> dict[str, Any]:
    x = torch.from_numpy(truth).float()[None, None]  # (1, 1, H, W)
    shipped = {card.name for card in list_models()}
    rows, curves, panels = [], {}, []
    for setting in SETTINGS:
        op, y, sigma = _measure(setting, x, seed)
        shown = [("truth", truth), ("measurement", _shown(setting, y, op))]
        curves[setting.name] = {}
        methods: list[tuple[str, Any]] = []
        if setting.model in shipped:
            methods.append(
                (f"RIM {setting.model}", RIMReconstructor(load_model(setting.model).model))
            )
        else:
            notes.append(f"{setting.name}: the RIM '{setting.model}' is not shipped yet.")
            rows.append(_row(setting, f"RIM {setting.model}", None, None, None))
        tuned, skipped = baselines(setting)
        methods += tuned
        notes += skipped
        start = initial_estimate(op, y, like=x)  # the baselines were tuned from this start
        for label, method in methods:
            tic = time.perf_counter()
            is_rim = isinstance(method, RIMReconstructor)
            result = method(y, op, sigma) if is_rim else method(y, op, sigma, x0=start)
            seconds = time.perf_counter() - tic
            estimate = to_8bit(_picture(result.final)) / 255.0
            rows.append(_row(setting, label, psnr(estimate, truth), ssim(estimate, truth), seconds))
            shown.append((label, estimate))
            if len(result.estimates) > 1:
                curves[setting.name][label] = [psnr(_picture(e), truth) for e in result.estimates]
            if progress:
                print(f"  {setting.name:<17} {label:<20} {rows[-1]['psnr']:>6.2f} dB", flush=True)
        grid = [(f"{setting.name}\n{k}", v) for k, v in shown]
        panels.append(crop_grid(grid, crop=min(96, len(truth))))
    return _write(out, rows, curves, panels, notes, f"{image}, centre crop {len(truth)}")


def _crop(image: np.ndarray, crop: int) -> np.ndarray:
    h, w = image.shape
    size = min(crop, h - h % 12, w - w % 12)
    if size < 24:
        raise ValueError(f"the image is {h}x{w}; the demo needs at least 24x24 pixels")
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def _row(setting, method, p, s, seconds) -> dict[str, Any]:
    fmt = lambda v, d: "—" if v is None else round(float(v), d)  # noqa: E731
    return {
        "setting": setting.name,
        "method": method,
        "psnr": fmt(p, 2),
        "ssim": fmt(s, 4),
        "seconds": fmt(seconds, 2),
    }


def _stack(pngs: list[bytes]) -> bytes:
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    canvas = Image.new(
        "RGB", (max(i.width for i in images), sum(i.height for i in images)), "white"
    )
    top = 0
    for img in images:
        canvas.paste(img, (0, top))
        top += img.height
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(out: Path, rows, curves, panels, notes, image: str) -> dict[str, Any]:
    header = ["setting", "method", "psnr", "ssim", "seconds"]
    table = [["setting", "method", "PSNR (dB)", "SSIM", "seconds"]]
    digits = {"psnr": 2, "ssim": 4, "seconds": 2}
    table += [
        [f"{r[k]:.{digits[k]}f}" if isinstance(r[k], float) else str(r[k]) for k in header]
        for r in rows
    ]
    markdown = "\n".join(
        ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(r) + " |" for r in table[1:]]
    )
    atomic_write_text(out / "results.md", markdown + "\n")
    atomic_write_text(out / "results.json", json.dumps({"image": image, "rows": rows}, indent=1))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["setting", "method", "step", "psnr"])
    for setting, methods in curves.items():
        for method, values in methods.items():
            writer.writerows([setting, method, t, f"{v:.4f}"] for t, v in enumerate(values, 1))
    atomic_write_text(out / "convergence.csv", buffer.getvalue())
    figure = _stack(panels)
    atomic_write_bytes(out / "figure.png", figure)
    files = ["results.md", "results.json", "convergence.csv", "figure.png"]
    images = [("Truth, measurement and reconstructions (crops, zoom 2)", figure)]
    plot = convergence_figure({k: v for k, v in curves.items() if v})
    if plot is not None:
        atomic_write_bytes(out / "convergence.png", plot)
        files.append("convergence.png")
        images.append(("PSNR against step t", plot))
    else:
        notes.append("convergence.png needs the plot extra: pip install 'rimkit[plot]'.")
    write_report(
        out / "report.html",
        "rimkit demo",
        [("PSNR (8-bit output, peak 255) and SSIM on the truth", table)],
        images,
        notes=notes,
        intro=f"Image: {image} pixels.",
    )
    return {"rows": rows, "notes": notes, "markdown": markdown, "files": [*files, "report.html"]}
