"""What the benchmark scripts share: arguments, model loading, tables beside published numbers.

Each script regenerates one section of BENCHMARKS.md from scratch (between
``<!-- begin: NAME -->`` and ``<!-- end: NAME -->``, see
:func:`rimkit.evaluate.benchmarking.replace_section`), stating machine, date, command and seed.
A script's default model (one it measures when no ``--model`` is given) that cannot be loaded
(not shipped or trained yet) becomes a row marked missing, never a number, with a one-line note
on stderr; a model given with ``--model`` that cannot be loaded, or has the wrong number of
channels, is an error.

Bad input (a data root, image set, output folder, baseline or model that does not exist,
``--limit`` with the repository's BENCHMARKS.md as the output) stops a script with a one-line
``error: ...`` on stderr and exit status 2 (:func:`fail`), checked before the evaluation where
it can be (:func:`setup`).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from rimkit.evaluate import Evaluation, Method, baseline_method, evaluate, load_images, rim_method
from rimkit.evaluate.benchmarking import machine_info, provenance, replace_section
from rimkit.evaluate.report import markdown_table
from rimkit.precision import PRECISIONS

DEFAULT_DATA = os.environ.get("RIMKIT_DATA", "../shared/data")
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
MISSING = "missing"
DATA_HELP = (
    "data root, the folder holding eval/ and train/ (default: $RIMKIT_DATA, else ../shared/data)"
)
OUTPUT_HELP = (
    "the Markdown file whose section is replaced (default: BENCHMARKS.md at the repository "
    f"root, {str(BENCHMARKS_MD).replace('%', '%%')}); a quick check (--limit) needs another "
    "file, e.g. --output /tmp/BENCHMARKS.md"
)


def fail(message: str) -> NoReturn:
    """Stop with ``error: MESSAGE`` on one line of stderr and exit status 2 (bad input)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    raise SystemExit(2)


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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description and epilog as written (a script's docstring, examples included), and
    each option's default after its help where the help does not state one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
        ):
            return text
        values = default if isinstance(default, (list, tuple)) else [default]
        shown = " ".join(format(v, "g") if isinstance(v, float) else str(v) for v in values)
        return f"{text} (default: {shown.replace('%', '%%')})"


def plain_parser(doc: str) -> argparse.ArgumentParser:
    """An empty parser whose ``--help`` shows ``doc`` (a script's module docstring): its first
    paragraph as the description, the rest (the examples) as the epilog, as written."""
    head, _, rest = doc.strip().partition("\n\n")
    return argparse.ArgumentParser(
        description=head, epilog=rest.strip() or None, formatter_class=HelpFormatter
    )


def parser(
    doc: str,
    models: Sequence[str],
    baselines: str,
    journal: bool = True,
    section: tuple[str, str] | None = None,
) -> argparse.ArgumentParser:
    """The options every script takes, ``--help`` showing ``doc`` (the script's docstring, see
    :func:`plain_parser`); ``journal=False`` leaves out ``--journal`` (for timings, which must
    come from one process); ``section=(NAME, TITLE)`` adds ``--section`` and ``--title`` with
    those defaults. ``models`` are the defaults of ``--model``."""
    p = plain_parser(doc)
    if section is not None:
        p.add_argument(
            "--section",
            default=section[0],
            help="BENCHMARKS.md section to write (another name adds a table beside the main one)",
        )
        p.add_argument("--title", default=section[1], help="the section's heading")
    p.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
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
    p.add_argument(
        "--precision",
        action="append",
        default=[],
        metavar="LABEL=P",
        help="run --model LABEL's cell in precision P: fp32 (default) or bf16 (repeatable)",
    )
    p.add_argument("--baselines", default=baselines, help=f"comma list (default {baselines})")
    p.add_argument("--output", default=str(BENCHMARKS_MD), help=OUTPUT_HELP)
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
            help="record each finished image in FILE (a script with several parts, e.g. one "
            "per image set, writes FILE.PART files); run the same command again to resume a "
            "stopped run (the files are deleted once the section is written)",
        )
    p.set_defaults(default_models=list(models), journal=None, journals=[])
    return p


def check_output(path: str | os.PathLike) -> None:
    """Stop (:func:`fail`) unless ``path`` can be written: its folder exists, it is no folder."""
    path = Path(path)
    if path.is_dir():
        fail(f"--output {str(path)!r} is a folder; give the Markdown file to update")
    if not path.parent.is_dir():
        fail(f"--output {str(path)!r}: the folder {str(path.parent)!r} does not exist")


def setup(args: argparse.Namespace) -> None:
    """Check the arguments before any work (stopping with :func:`fail`), then set threads and
    the allocator setting the ``rimkit`` command uses too."""
    from rimkit.runtime import reuse_freed_memory

    if args.limit is not None and args.limit < 1:
        fail(f"--limit must be >= 1, got {args.limit}")
    if args.threads is not None and args.threads < 1:
        fail(f"--threads must be >= 1, got {args.threads}")
    data = getattr(args, "data", None)
    if data is not None and not Path(data).is_dir():
        fail(
            f"data root {str(data)!r} does not exist; give --data or set RIMKIT_DATA to the "
            "folder holding eval/ and train/"
        )
    check_output(args.output)
    if args.limit is not None and Path(args.output).resolve() == BENCHMARKS_MD:
        fail(
            "--limit would replace a published section of the repository's BENCHMARKS.md "
            "with the numbers of a few images; give --output FILE for a quick check (e.g. "
            "--output /tmp/BENCHMARKS.md)"
        )
    journal = getattr(args, "journal", None)
    if journal and not Path(journal).parent.is_dir():
        fail(f"--journal {journal!r}: the folder {str(Path(journal).parent)!r} does not exist")
    reuse_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)


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
    """Each ``--model`` as a RIM method (or, without ``--model``, each of the script's
    defaults). A model that cannot be loaded, or whose channel count is not ``channels`` (or
    not one of them), stops the script (:func:`fail`) when the user gave it; a default one
    becomes a missing entry saying why, with a note on stderr."""
    from rimkit.zoo import load_model

    out = []
    given = bool(args.model)
    pairs = parse_models(args.model, args.default_models)
    labels = [label for label, _ in pairs]
    ensembles = parse_ensembles(getattr(args, "ensemble", []), labels)
    precisions = parse_per_label("--precision", getattr(args, "precision", []), labels, PRECISIONS)
    allowed = (channels,) if isinstance(channels, int) else channels
    for label, source in pairs:
        try:
            model = load_model(source, precision=precisions.get(label, "fp32")).model
        except ValueError as err:
            why = str(err)
        else:
            why = ""
            if allowed is not None and model.channels not in allowed:
                need = " or ".join(map(str, allowed))
                why = f"has {model.channels} channels, this benchmark needs {need}"
        if why:
            if given:
                fail(f"--model {label}={source}: {why}")
            why = why.split(";")[0]
            print(
                f"note: default model {label!r} ({source}) not loaded, its rows say "
                f"{MISSING}: {why}",
                file=sys.stderr,
                flush=True,
            )
            out.append(ModelEntry(label, source, None, why))
            continue
        curve = round(curve_factor * model.train_steps) if curve_factor else None
        method = rim_method(model, label, steps, curve, ensemble=ensembles.get(label, 1))
        out.append(ModelEntry(label, source, method))
    return out


def parse_ensembles(items: Sequence[str], labels: Sequence[str]) -> dict[str, int]:
    """``--ensemble LABEL=K`` items as ``{label: K}``; exits naming a bad item."""
    from rimkit.self_ensemble import SIZES

    sizes = parse_per_label("--ensemble", items, labels, [str(size) for size in SIZES])
    return {label: int(size) for label, size in sizes.items()}


def parse_per_label(
    flag: str, items: Sequence[str], labels: Sequence[str], choices: Sequence[str]
) -> dict[str, str]:
    """``FLAG LABEL=VALUE`` items as ``{label: value}``, each label one of ``labels`` (the
    ``--model`` labels) and each value one of ``choices``; exits naming a bad item."""
    out = {}
    for item in items:
        label, _, value = item.partition("=")
        if label not in labels:
            fail(f"{flag} {item}: no --model labelled {label!r} (labels: {labels})")
        if value not in choices:
            fail(f"{flag} {item}: the value must be one of {', '.join(choices)}")
        out[label] = value
    return out


def order(models: Sequence[ModelEntry], bases: Sequence[Method]) -> list[tuple[str, bool]]:
    """Table order: the models (present or missing), then the baselines."""
    return [(e.label, e.method is not None) for e in models] + [(m.name, True) for m in bases]


def baseline_names(args: argparse.Namespace, task: str) -> list[str]:
    """The names in ``--baselines`` (``none``: no baseline), each checked to be a known
    baseline for ``task`` with its extra installed (else :func:`fail`)."""
    from rimkit.solvers.selection import check_baselines

    names = [n.strip() for n in args.baselines.split(",") if n.strip() and n.strip() != "none"]
    try:
        check_baselines(names, task)
    except ValueError as err:
        fail(f"--baselines: {err}")
    return names


def baselines(args: argparse.Namespace, task: str, keep_estimates: bool = True) -> list[Method]:
    names = baseline_names(args, task)
    return [baseline_method(n, task, keep_estimates=keep_estimates) for n in names]


def load(
    args: argparse.Namespace, folder: str, channels: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """The images in ``DATA/folder`` (the first ``--limit``); a missing or empty folder, or an
    unreadable image, stops the script (:func:`fail`)."""
    path = Path(args.data) / folder
    if not path.exists():
        fail(f"image set {str(path)!r} does not exist; name a folder inside --data {args.data!r}")
    try:
        return load_images(path, args.limit, channels)
    except ValueError as err:
        fail(str(err))


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
    images = load(args, folder, channels)
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
        fail(str(err))


@contextmanager
def option_values() -> Iterator[None]:
    """Turn the ``ValueError`` of an option value the protocols refuse (a negative sigma, a
    ratio of 0, ``--patches 0``) into :func:`fail`'s one line, instead of a traceback."""
    try:
        yield
    except ValueError as err:
        fail(str(err))


def add_ratios(p: argparse.ArgumentParser) -> None:
    """``--ratios``: the projection ratios m/n measured (default 0.1, 0.3 and 0.5)."""
    p.add_argument(
        "--ratios", type=float, nargs="+", default=[0.1, 0.3, 0.5], help="projection ratios m/n"
    )


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
    if getattr(args, "precision", None):
        runs = ", ".join(f"`{item.replace('=', '`: ')}" for item in args.precision)
        head.append(
            f"Precision of the rows' cells ({runs}; the others fp32): bf16 runs the convolutions "
            "and GRU under bfloat16 autocast, the estimate float32 "
            "(`rimkit reconstruct --precision bf16`)."
        )
    if args.limit:
        head.append(
            f"**Quick check on the first {args.limit} image(s) of each set (--limit): the means "
            "are not comparable with the published numbers.**"
        )
    body = "\n\n".join([*head, *parts])
    try:
        path = replace_section(args.output, section, body)
    except (ValueError, OSError) as err:
        kept = f" (the finished images stay in --journal {args.journal})" if args.journal else ""
        fail(f"cannot write {args.output!r}: {err}{kept}")
    for journal in args.journals:
        Path(journal).unlink(missing_ok=True)
    if not args.quiet:
        print(f"updated section {section!r} of {path}")
    return path


def table(rows: list[list[object]]) -> str:
    return markdown_table(rows)


def write_table(
    section: str, title: str, notes: str, rows: list[list[object]], output: str | os.PathLike
) -> Path:
    """Replace ``section`` of ``output`` with a title, the machine, the command, ``notes``
    and the table of ``rows``: the section of a script without an image protocol."""
    text = "\n\n".join(
        [f"## {title}", machine_line(), f"- command: `{command()}`", notes, table(rows)]
    )
    return write_section(section, text, output)


def missing_note(entries: Sequence[ModelEntry]) -> str:
    lines = [f"- `{e.label}` ({e.source}): {MISSING}: {e.why}" for e in entries if e.method is None]
    return (
        "Models not measured (no numbers are shown for them):\n" + "\n".join(lines) if lines else ""
    )
