"""The files of a ``rimkit eval`` run: ``results.csv``, ``summary.md`` / ``summary.json``,
``convergence.csv`` (+ ``convergence.png``), one crop grid per setting and ``report.html``
(:func:`write_outputs`), and the summary tables they share (:func:`summary_tables`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rimkit.evaluate.benchmarking import machine_info
from rimkit.evaluate.defaults import PATCH_TASKS
from rimkit.evaluate.figures import convergence_figure, crop_grid
from rimkit.evaluate.metrics import as_image
from rimkit.evaluate.protocols import (
    Case,
    Protocol,
)
from rimkit.evaluate.report import (
    atomic_write_bytes,
    atomic_write_text,
    csv_text,
    markdown_table,
)
from rimkit.evaluate.report import write_report as _write_report
from rimkit.evaluate.runner import Evaluation

if TYPE_CHECKING:
    from rimkit.evaluate.request import EvalSpec


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
        >>> from rimkit.evaluate.request import EvalSpec
        >>> eval_title(EvalSpec("denoise", Path("x"), model=["a", "runs/b"]), "rimkit eval")
        'rimkit eval, a, runs/b'
    """
    names = spec.labels or spec.models
    return head + (f", {', '.join(names)}" if names else "")


def weights_note(loaded: Any, label: str | None = None) -> str:
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
    files["results"] = atomic_write_text(out / "results.csv", csv_text(header, rows))

    curve_rows = [
        [setting, method, t + 1, _num(v)]
        for setting, by_method in result.curves.items()
        for method, values in by_method.items()
        for t, v in enumerate(values)
    ]
    curve_csv = csv_text(["setting", "method", "step", "psnr"], curve_rows)
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
        path = out / f"grid-{slug(setting)}.png"
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


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).replace("/", "_").strip("_") or "x"
