"""What the benchmark scripts share: arguments, model loading, tables beside published numbers.

Each script regenerates one section of BENCHMARKS.md from scratch (between
``<!-- begin: NAME -->`` and ``<!-- end: NAME -->``, see
:func:`rimkit.evaluate.benchmarking.replace_section`), stating machine, date, command and seed.
A model that cannot be loaded (not shipped or trained yet) becomes a row marked missing, never
a number.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rimkit.evaluate import Evaluation, Method, baseline_method, evaluate, load_images, rim_method
from rimkit.evaluate.benchmarking import machine_info, provenance, replace_section
from rimkit.evaluate.report import markdown_table

DEFAULT_DATA = os.environ.get("RIMKIT_DATA", "../shared/data")
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
MISSING = "missing"


def machine_line() -> str:
    """One line: CPU model, cores, torch threads and version, date (for any section)."""
    info = machine_info()
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores ({info['threads']} torch threads), "
        f"torch {info['torch']}, Python {info['python']}; {info['date']}."
    )


def write_section(name: str, text: str, path: str | os.PathLike = BENCHMARKS_MD) -> Path:
    """Replace section ``name`` of BENCHMARKS.md (repository root by default) with ``text``."""
    return replace_section(path, name, text)


def parser(
    description: str,
    models: Sequence[str],
    baselines: str,
    journal: bool = True,
    section: tuple[str, str] | None = None,
) -> argparse.ArgumentParser:
    """The options every script takes; ``journal=False`` leaves out ``--journal`` (for
    timings, which must come from one process); ``section=(NAME, TITLE)`` adds ``--section``
    and ``--title`` with those defaults."""
    p = argparse.ArgumentParser(description=description)
    if section is not None:
        p.add_argument(
            "--section",
            default=section[0],
            help="BENCHMARKS.md section to write (another name adds a table beside the main one)",
        )
        p.add_argument("--title", default=section[1], help="the section's heading")
    p.add_argument("--data", default=DEFAULT_DATA, help="data root (default ../shared/data)")
    p.add_argument("--limit", type=int, help="first N images of each set (quick checks)")
    p.add_argument(
        "--model",
        action="append",
        metavar="LABEL=NAME_OR_PATH",
        help=f"a RIM to measure (repeatable); default: {' '.join(models) or 'none'}",
    )
    p.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="LABEL=K",
        help="run --model LABEL as a self-ensemble of K = 2, 4 or 8 flips/rotations (repeatable)",
    )
    p.add_argument("--baselines", default=baselines, help=f"comma list (default {baselines})")
    p.add_argument(
        "--output", default=str(BENCHMARKS_MD), help="the Markdown file to update (repo root)"
    )
    p.add_argument("--seed", type=int, default=0, help="base seed (image i: seed + i)")
    p.add_argument(
        "--threads", type=int, help="CPU threads for torch and BM3D alike (default: torch's)"
    )
    p.add_argument(
        "--tolerance", type=float, default=0.3, help="dB from a published number that is 'far'"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if journal:
        p.add_argument(
            "--journal",
            metavar="FILE",
            help="record each finished image in FILE; run the same command again to resume a "
            "stopped run (FILE is deleted once the section is written)",
        )
    p.set_defaults(default_models=list(models), journal=None, journals=[])
    return p


def setup(args: argparse.Namespace) -> None:
    """Threads, and the allocator setting the ``rimkit`` command uses too."""
    from rimkit.runtime import reuse_freed_memory

    reuse_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.limit is not None and args.limit < 1:
        sys.exit(f"--limit must be >= 1, got {args.limit}")


@dataclass
class ModelEntry:
    label: str
    source: str
    method: Method | None
    why: str = ""


def parse_models(items: Sequence[str] | None, defaults: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items if items else defaults:
        label, sep, source = item.partition("=")
        pairs.append((label, source) if sep else (Path(item).stem, item))
    return pairs


def load_models(
    args: argparse.Namespace,
    steps: int | None = None,
    curve_factor: float | None = None,
    channels: int | tuple[int, ...] | None = None,
) -> list[ModelEntry]:
    """Each ``--model`` as a RIM method, or a missing entry saying why it is not available
    (among them a model whose channel count is not ``channels``, or not one of them)."""
    from rimkit.zoo import load_model

    out = []
    pairs = parse_models(args.model, args.default_models)
    ensembles = parse_ensembles(getattr(args, "ensemble", []), [label for label, _ in pairs])
    for label, source in pairs:
        try:
            loaded = load_model(source)
        except ValueError as err:
            out.append(ModelEntry(label, source, None, str(err).split(";")[0]))
            continue
        model = loaded.model
        allowed = (channels,) if isinstance(channels, int) else channels
        if allowed is not None and model.channels not in allowed:
            need = " or ".join(map(str, allowed))
            why = f"has {model.channels} channels, this benchmark needs {need}"
            out.append(ModelEntry(label, source, None, why))
            continue
        curve = round(curve_factor * model.train_steps) if curve_factor else None
        method = rim_method(model, label, steps, curve, ensemble=ensembles.get(label, 1))
        out.append(ModelEntry(label, source, method))
    return out


def parse_ensembles(items: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """``--ensemble LABEL=K`` items as ``{label: K}``; exits naming a bad item."""
    from rimkit.self_ensemble import SIZES

    out = {}
    for item in items:
        label, _, size = item.partition("=")
        if label not in labels:
            sys.exit(f"--ensemble {item}: no --model labelled {label!r} (labels: {labels})")
        if not size.isdigit() or int(size) not in SIZES:
            sys.exit(f"--ensemble {item}: K must be one of {SIZES}")
        out[label] = int(size)
    return out


def order(models: Sequence[ModelEntry], bases: Sequence[Method]) -> list[tuple[str, bool]]:
    """Table order: the models (present or missing), then the baselines."""
    return [(e.label, e.method is not None) for e in models] + [(m.name, True) for m in bases]


def baselines(args: argparse.Namespace, task: str, keep_estimates: bool = True) -> list[Method]:
    names = [n.strip() for n in args.baselines.split(",") if n.strip() and n.strip() != "none"]
    from rimkit.evaluate.runner import check_baselines

    check_baselines(names, task)
    return [baseline_method(n, task, keep_estimates=keep_estimates) for n in names]


def run(
    args: argparse.Namespace,
    folder: str,
    protocols: Sequence,
    methods: Sequence[Method],
    channels: int | None = None,
    curves: bool = True,
    part: str = "",
) -> tuple[Evaluation, int]:
    """Evaluate ``methods`` on the images in ``DATA/folder``; returns the result and count.

    With ``--journal FILE`` each finished image is recorded in FILE (``FILE.PART`` for a
    script that runs several evaluations), and a stopped run resumes from it.
    """
    images = load_images(Path(args.data) / folder, args.limit, channels)
    return run_images(args, images, protocols, methods, curves, part), len(images)


def run_images(
    args: argparse.Namespace,
    images: list[tuple[str, np.ndarray]],
    protocols: Sequence,
    methods: Sequence[Method],
    curves: bool = True,
    part: str = "",
) -> Evaluation:
    """:func:`run` for images already loaded, as ``(name, array)`` pairs."""
    journal = None
    if args.journal:
        journal = f"{args.journal}.{part}" if part else args.journal
        args.journals.append(journal)
    try:
        return evaluate(
            images,
            protocols,
            methods,
            curves=curves,
            progress=not args.quiet,
            examples=False,
            journal=journal,
        )
    except ValueError as err:
        sys.exit(f"error: {err}")


def add_curve_factor(p: argparse.ArgumentParser) -> None:
    """``--curve-factor F`` (at least 1, default 2): how far past T the curve table goes."""

    def factor(text: str) -> float:
        value = float(text)
        if not value >= 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
        return value

    p.add_argument(
        "--curve-factor", type=factor, default=2.0,
        help="run each model to this many times its trained T for the PSNR-against-t table "
        "(e.g. 4 for a model trained on up to 2T steps)",
    )  # fmt: skip


def setting_row(
    result: Evaluation, setting: str, models: Sequence[ModelEntry], bases: Sequence[Method]
) -> list[str]:
    """A table row: the setting, then each method's mean PSNR (``missing`` for an absent model)."""
    methods = order(models, bases)
    return [setting, *(cell(result.mean(setting, name)) if ok else MISSING for name, ok in methods)]


def psnr_ssim_rows(
    result: Evaluation,
    protocols: Sequence,
    models: Sequence[ModelEntry],
    bases: Sequence[Method],
    header: str = "setting",
) -> list[list[object]]:
    """A table of ``PSNR / SSIM`` cells, a row per protocol (``missing`` for an absent model),
    then the seconds per image of each method at the last protocol's setting."""
    methods = order(models, bases)
    rows: list[list[object]] = [[header, *(name for name, _ in methods)]]
    for proto in protocols:
        cells = []
        for name, ok in methods:
            psnr, ssim = (result.mean(proto.setting, name, m) for m in ("psnr", "ssim"))
            cells.append(f"{cell(psnr)} / {cell(ssim, 4)}" if ok else MISSING)
        rows.append([proto.setting, *cells])
    last = protocols[-1].setting
    seconds = [cell(result.mean(last, name, "seconds"), 3) for name, _ in methods]
    rows.append([f"s / image ({last})", *seconds])
    return rows


CURVE_MULTIPLES = (0.5, 1, 1.5, 2, 3, 4)
"""The steps, as multiples of T, that a PSNR-against-t table shows (up to its curve factor)."""


def multiple_name(multiple: float) -> str:
    return {0.5: "T/2", 1: "T"}.get(multiple, f"{multiple:g}T")


def curve_table(
    result: Evaluation,
    methods: Sequence[Method],
    groups: Sequence[tuple[str, Sequence[str]]],
    curve_factor: float,
) -> list[list[str]]:
    """PSNR against step t of each RIM (rows: method x group of settings, mean over the group's
    settings) at t = 1 and the :data:`CURVE_MULTIPLES` of its T up to ``curve_factor``."""
    multiples = [m for m in CURVE_MULTIPLES if m <= curve_factor]
    rows = [["method", "task", "t=1", *(f"t={multiple_name(m)}" for m in multiples), "T"]]
    for method in methods:
        steps = method.trained_steps
        if not steps:
            continue
        for group, settings in groups:
            curves = [result.curves.get(s, {}).get(method.name) for s in settings]
            curves = [c for c in curves if c]
            if not curves:
                continue
            mean = list(np.mean([c[: min(map(len, curves))] for c in curves], axis=0))
            ts = [1, *(max(1, round(m * steps)) for m in multiples)]
            cells = [cell(mean[t - 1]) if t <= len(mean) else "-" for t in ts]
            rows.append([method.name, group, *cells, str(steps)])
    return rows


def cell(value: float, digits: int = 2) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def versus(ours: float, published: float | None, tolerance: float) -> str:
    """``ours`` with its difference to a published number, flagged when far from it."""
    if ours is None or math.isnan(ours):
        return "-"
    if published is None:
        return f"{ours:.2f}"
    delta = ours - published
    flag = f" **far: {delta:+.2f} dB**" if abs(delta) > tolerance else f" ({delta:+.2f})"
    return f"{ours:.2f}{flag}"


def command() -> str:
    return shlex.join(["python", *sys.argv])


def write(args: argparse.Namespace, section: str, title: str, parts: Sequence[str]) -> Path:
    """Replace ``section`` of ``--output`` with a title, the provenance and ``parts``."""
    head = [f"## {title}", provenance(args.seed, command())]
    if getattr(args, "ensemble", None):
        runs = ", ".join(f"`{item.replace('=', '`: ')}" for item in args.ensemble)
        head.append(
            f"Self-ensemble rows ({runs} flips/rotations of each measurement, restored and "
            "averaged; that many times the time): `rimkit reconstruct --ensemble K`."
        )
    if args.limit:
        head.append(
            f"**Quick check on the first {args.limit} image(s) of each set (--limit): the means "
            "are not comparable with the published numbers.**"
        )
    body = "\n\n".join([*head, *parts])
    path = replace_section(args.output, section, body)
    for journal in args.journals:
        Path(journal).unlink(missing_ok=True)
    if not args.quiet:
        print(f"updated section {section!r} of {path}")
    return path


def table(rows: list[list[object]]) -> str:
    return markdown_table(rows)


def missing_note(entries: Sequence[ModelEntry]) -> str:
    lines = [f"- `{e.label}` ({e.source}): {MISSING}: {e.why}" for e in entries if e.method is None]
    return (
        "Models not measured (no numbers are shown for them):\n" + "\n".join(lines) if lines else ""
    )
