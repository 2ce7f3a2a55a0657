"""fastMRI's protocol on measured k-space: ``rimkit eval --task mri --measured``.

Each fully sampled fastMRI file (training or validation set; :mod:`rimkit.fastmri`) is
under-sampled by one fastMRI column mask per volume and acceleration ``R`` (``random`` or
``equispaced``, the central ``0.32 / R`` of the columns always sampled), drawn from the seed
plus a hash of the file's name, so every method sees the same points. Every slice is
reconstructed from its own k-space through :func:`rimkit.pipeline.restore` (the ``rimkit
reconstruct --task mri`` path: multi-coil data with ESPIRiT maps from the sampled centre),
cut to the reference's central crop, and scored as ``fastmri.evaluate`` scores a volume: NMSE
and PSNR over the whole volume, the peak being the reference volume's maximum, and SSIM per
slice (7x7 uniform window, that peak) averaged over the slices. Tables give the mean over
volumes. The reference is the file's ``reconstruction_esc`` (single coil) or
``reconstruction_rss`` (multi-coil), in the k-space's own units, so no scale is fitted.

Example:
    >>> mask = volume_mask("file1000.h5", (4, 64), 4, "equispaced", seed=0)
    >>> mask.shape, int(mask[0].sum())  # 64 / 4 columns, whole
    ((4, 64), 16)
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rimkit.evaluate.benchmarking import machine_info
from rimkit.evaluate.journal import Journal, JournalMismatch, kept_for_resume, stopped
from rimkit.evaluate.metrics import nmse, psnr, ssim
from rimkit.evaluate.report import atomic_write_text, csv_text, markdown_table
from rimkit.fastmri import center_crop, read_fastmri, slice_count

__all__ = [
    "MEASURED_MASKS",
    "MeasuredMethod",
    "evaluate_measured",
    "run_measured",
    "volume_mask",
    "volume_scores",
]

MEASURED_MASKS = ("random", "equispaced")
"""fastMRI's column masks (:func:`rimkit.operators.mri.random_columns_mask` and
:func:`~rimkit.operators.mri.equispaced_columns_mask`)."""

Reconstruct = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(kspace (coils, H, W) complex, mask (H, W)) -> magnitude (H, W)`` in the data's units."""


@dataclass(frozen=True)
class MeasuredMethod:
    """A named reconstruction of one under-sampled slice (:data:`Reconstruct`)."""

    name: str
    run: Reconstruct


def volume_mask(
    name: str, shape: tuple[int, int], acceleration: float, kind: str, seed: int = 0
) -> np.ndarray:
    """The column mask ``(H, W)`` (1 = sampled) of the file ``name`` at ``acceleration``: one
    per volume, drawn from ``seed`` plus the CRC-32 of the name, as fastMRI seeds its masks by
    the file."""
    from rimkit.operators.mri import equispaced_columns_mask, random_columns_mask

    _check_mask_kind(kind)
    draw = random_columns_mask if kind == "random" else equispaced_columns_mask
    generator = torch.Generator().manual_seed(seed + zlib.crc32(Path(name).name.encode()))
    return draw(shape, acceleration, generator=generator)[0, 0].double().numpy()


def _check_mask_kind(kind: str) -> None:
    if kind not in MEASURED_MASKS:
        raise ValueError(
            f"measured k-space is under-sampled by fastMRI's column masks "
            f"({', '.join(MEASURED_MASKS)}), not {kind!r}: give --mask random or equispaced"
        )


def volume_scores(estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """NMSE, PSNR and SSIM of a reconstructed volume ``(slices, h, w)`` against its reference,
    as ``fastmri.evaluate`` computes them (module docstring).

    Example:
        >>> ref = np.stack([np.outer(np.hanning(16), np.hanning(16))] * 2)
        >>> {k: round(v, 4) for k, v in volume_scores(ref * 1.01, ref).items()}
        {'nmse': 0.0001, 'psnr': 48.8891, 'ssim': 0.9999}
    """
    if estimate.shape != reference.shape or reference.ndim != 3:
        raise ValueError(
            f"expected two volumes (slices, h, w) of one shape, got {estimate.shape} and "
            f"{reference.shape}"
        )
    peak = float(reference.max())
    if not peak > 0:
        raise ValueError("the reference volume is zero everywhere; PSNR and SSIM are undefined")
    slices = [ssim(e, r, peak, gaussian=False) for e, r in zip(estimate, reference, strict=True)]
    return {
        "nmse": nmse(estimate, reference),
        "psnr": psnr(estimate, reference, peak),
        "ssim": float(np.mean(slices)),
    }


def evaluate_measured(
    files: Sequence[Path],
    accelerations: Sequence[float],
    mask: str,
    methods: Sequence[MeasuredMethod],
    *,
    seed: int = 0,
    journal: Path | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per (setting, file, method): ``nmse``, ``psnr``, ``ssim`` and ``seconds`` (per
    slice) over the file's volume, every slice reconstructed by each method from its own
    k-space under-sampled at each acceleration. ``journal`` (a JSON-lines path) keeps each
    finished (setting, file), so a stopped run started again continues where it stopped."""
    settings = [f"R={r:g},{mask}" for r in accelerations]
    log = None
    if journal is not None:
        identity = {
            "protocol": "fastmri-measured",
            "settings": settings,
            "methods": [m.name for m in methods],
            "files": [Path(f).name for f in files],
            "seed": seed,
        }
        log = Journal(journal, identity)
    rows: list[dict[str, Any]] = []
    bar = _progress(len(files) * len(settings), progress)
    try:
        for path in files:
            volume = None
            for acceleration, setting in zip(accelerations, settings, strict=True):
                done = None if log is None else log.get(setting, Path(path).name)
                if done is None:
                    volume = volume or _read_volume(path)
                    found = _score_file(path, volume, acceleration, mask, setting, methods, seed)
                    if log is not None:
                        log.record(setting, Path(path).name, found, [])
                else:
                    found = done["rows"]
                rows += found
                bar.update(1)
    finally:
        bar.close()
        if log is not None:
            log.close()
    return rows


def _read_volume(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Every slice's k-space ``(coils, H, W)`` and the reference volume ``(slices, h, w)``."""
    pieces = [read_fastmri(path, i) for i in range(slice_count(path))]
    if pieces[0].reference is None:
        raise ValueError(
            f"{str(path)!r} holds no reference images (a test-set file): the measured protocol "
            "scores against them; give training or validation files"
        )
    return [p.kspace for p in pieces], np.stack([p.reference for p in pieces])


def _score_file(path, volume, acceleration, mask_kind, setting, methods, seed) -> list[dict]:
    kspaces, reference = volume
    mask = volume_mask(str(path), kspaces[0].shape[-2:], acceleration, mask_kind, seed)
    rows = []
    for method in methods:
        start = time.perf_counter()
        images = [method.run(k * mask, mask) for k in kspaces]
        seconds = (time.perf_counter() - start) / len(kspaces)
        estimate = np.stack([center_crop(i, reference.shape[-2:]) for i in images])
        if estimate.shape != reference.shape:
            raise ValueError(
                f"{str(path)!r}: the reconstructions are {images[0].shape}, smaller than the "
                f"reference images {reference.shape[-2:]}; the file is not a fastMRI file"
            )
        scores = volume_scores(estimate, reference)
        rows.append(
            {"file": Path(path).name, "setting": setting, "method": method.name,
             "slices": len(kspaces), **scores, "seconds": seconds}
        )  # fmt: skip
    return rows


def _progress(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, unit="volume x R", leave=False)


def run_measured(spec: Any, out: Path, baselines: Sequence[str], notes: list[str]) -> Path:
    """``rimkit eval --task mri --measured``: the model of ``spec`` (an
    :class:`~rimkit.evaluate.request.EvalSpec`) and ``baselines`` on the fastMRI files of
    ``spec.data``; writes ``results.csv`` (per volume), ``summary.md`` and ``summary.json``
    into ``out`` and returns it."""
    from rimkit.data.volumes import fastmri_folder
    from rimkit.fastmri import is_fastmri

    _check_measured(spec)
    data = Path(spec.data)
    files = [data] if data.is_file() and is_fastmri(data) else fastmri_folder(data)
    if not files:
        raise ValueError(
            f"--measured reads fastMRI files (.h5): {str(data)!r} is neither one nor a folder "
            "holding them"
        )
    files = files[: spec.limit]
    from rimkit.evaluate.request import load_models

    methods = []
    for (label, loaded), name in zip(load_models(spec), spec.models, strict=True):
        if loaded.model.channels == 1:
            notes.append(f"model {name!r} is a gray model: it reconstructs the images as real")
        methods.append(MeasuredMethod(label, _restore_run(loaded.model, steps=spec.steps)))
    methods += [MeasuredMethod(name, _restore_run(baseline=name)) for name in baselines]
    if len({m.name for m in methods}) != len(methods):
        raise ValueError(f"two methods share a name: {[m.name for m in methods]}; use --label")
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "journal.jsonl"
    try:
        rows = evaluate_measured(
            files,
            spec.accelerations,
            spec.mask,
            methods,
            seed=spec.seed,
            journal=journal,
            progress=not spec.quiet,
        )
    except JournalMismatch:
        raise kept_for_resume(journal) from None
    except KeyboardInterrupt:
        raise stopped(journal) from None
    _write(rows, out, spec, [m.name for m in methods], notes, len(files))
    journal.unlink()
    return out


def _check_measured(spec: Any) -> None:
    if spec.task != "mri":
        raise ValueError(f"--measured applies to --task mri (fastMRI k-space), not {spec.task}")
    if spec.coils != 1:
        raise ValueError("--coils simulates coils; measured k-space has its own: leave it out")
    if any(spec.sigmas or ()):
        raise ValueError("measured k-space carries its own noise: leave --sigma out")
    for flag, value in (
        ("--ensemble", spec.ensemble != 1),
        ("--sigma-estimate", spec.sigma_estimate),
        ("--tile", spec.tile),
        ("--curve-steps", spec.curve_steps),
        ("--baseline-option", spec.baseline_options),
    ):
        if value:
            raise ValueError(f"{flag} does not apply to --measured; leave it out")
    _check_mask_kind(spec.mask)


def _restore_run(model: Any = None, baseline: str | None = None, steps: int | None = None):
    """:data:`Reconstruct` through :func:`rimkit.pipeline.restore` with ``model`` or
    ``baseline``."""
    from rimkit.pipeline import restore

    def run(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return restore(kspace, "mri", model, baseline=baseline, mask=mask, steps=steps).image

    return run


def _write(rows, out: Path, spec: Any, methods: list[str], notes: list[str], n_files: int) -> None:
    import json

    header = ["file", "setting", "method", "slices", "nmse", "psnr", "ssim", "seconds"]
    atomic_write_text(out / "results.csv", csv_text(header, [[r[k] for k in header] for r in rows]))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    summary = [
        {
            "setting": setting,
            "method": method,
            **{
                key: float(
                    np.mean(
                        [r[key] for r in rows if (r["setting"], r["method"]) == (setting, method)]
                    )
                )
                for key in ("nmse", "psnr", "ssim", "seconds")
            },
        }
        for setting in settings
        for method in methods
    ]
    table = [["setting", "method", "NMSE", "PSNR (dB)", "SSIM", "s / slice"]]
    table += [
        [e["setting"], e["method"], f"{e['nmse']:.4f}", f"{e['psnr']:.2f}", f"{e['ssim']:.4f}",
         f"{e['seconds']:.2f}"]
        for e in summary
    ]  # fmt: skip
    info = machine_info()
    from rimkit.evaluate.outputs import eval_title

    title = eval_title(spec, "rimkit eval: mri, measured k-space")
    md = [
        f"# {title}",
        "",
        f"- machine: {info['cpu']}, {info['cores']} cores ({info['threads']} torch threads), "
        f"torch {info['torch']}",
        f"- date: {info['date']}",
        f"- command: {spec.command_line()}",
        f"- seed: {spec.seed}; volumes: {n_files} from {spec.data}",
        "- protocol: fastMRI's, on each file's own k-space (rimkit.evaluate.measured): one column "
        "mask per volume; NMSE and PSNR per volume (peak: the reference volume's maximum), SSIM "
        "per slice averaged; means over volumes",
        "",
        "## Mean over volumes",
        "",
        markdown_table(table),
        "",
    ]
    if notes:
        md += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    atomic_write_text(out / "summary.md", "\n".join(md))
    document = {
        "title": title,
        "task": "mri",
        "protocol": {
            "protocol": "fastmri-measured",
            "accelerations": list(spec.accelerations),
            "mask": spec.mask,
        },
        **spec.model_record(),
        "command": spec.command_line(),
        "seed": spec.seed,
        "volumes": n_files,
        "data": str(spec.data),
        "machine": info,
        "summary": summary,
        "notes": notes,
    }
    atomic_write_text(out / "summary.json", json.dumps(document, indent=2) + "\n")
