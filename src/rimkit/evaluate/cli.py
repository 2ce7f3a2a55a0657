"""``rimkit eval``: the command-line side of :func:`rimkit.evaluate.request.run_eval`.

:func:`register` adds the ``eval`` sub-command to rimkit's parser, so ``rimkit.cli`` wires it
with two lines::

    from rimkit.evaluate.cli import register as register_eval
    register_eval(sub, [common])

Errors in the request (a missing or empty data folder, an unreadable image, a scale the model
was not trained for, a baseline whose extra is missing, an output folder that exists) are
``ValueError``\\ s, which ``rimkit`` reports in one line with exit status 2.

Example:
    >>> from rimkit.cli import build_parser
    >>> parser = build_parser()
    >>> args = parser.parse_args(["eval", "--task", "sr", "--data", "x", "--scale", "2", "4"])
    >>> args.scale, args.baselines
    ([2, 4], None)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rimkit.precision import PRECISION_HELP, PRECISIONS

__all__ = ["parse_baseline_options", "register"]

PROJECTION_KINDS = ("gaussian", "bernoulli", "fourier")  # rimkit.operators', without torch
BOUNDARIES = ("circular", "zero", "valid")  # rimkit.operators.blur's, without torch

EXAMPLES = """examples:
  rimkit eval --model runs/denoise-gray --task denoise --data ../shared/data/eval/BSD68
  rimkit eval --model denoise-gray --task denoise --data ../shared/data/eval/BSD68 \\
      --sigma 25 --quantize --baselines bm3d,tv,fista-wavelet --out evals/bsd68-q
  rimkit eval --model denoise-gray --task denoise --data ../shared/data/eval/BSD68 \\
      --sigma 5 25 --sigma-estimate pca --baselines bm3d    # blind: sigma estimated
  rimkit eval --model runs/sr --task sr --data ../shared/data/eval/Set5 --scale 2 3 4
  rimkit eval --task denoise --data ../shared/data/eval/Set12 --baselines tv \\
      --baseline-option tv.iterations=50 --limit 2          # baselines only
  rimkit eval --model deblur --task blur --data ../shared/data/eval/Set12 \\
      --kernel gaussian:1.6 motion:15:45 --sigma 2.55 7.65 --baselines tv,fista-wavelet
  rimkit eval --model deblur --task blur --data ../shared/data/eval/Set12 --boundary valid
  rimkit eval --model 3task --model gdn-3task --model ffn-3task --task projection \\
      --data ../shared/data/eval/BSD68 --kinds gaussian fourier --ratio 0.1 0.5 \\
      --curve-steps 40                                      # several models, one table
  rimkit eval --model 3task --task lensing --data ../shared/data/eval/BSD68 \\
      --einstein-radius 0.3 0.45 --psf 1 --sigma 5 --baselines tv,cg-tikhonov
  rimkit eval --model mri --task mri --data ../shared/data/mri/dipy_b0_10slices.npz \\
      --acceleration 4 8 --baselines zero-filled,tv,fista-wavelet
  rimkit eval --model mri --task mri --data knee_singlecoil_val/ --measured \\
      --acceleration 4 8 --limit 10    # fastMRI's protocol on the files' own k-space

Writes into --out (default evals/NAME-TASK: the --label, else a shipped model's name or the
model's folder and file name, runs/x: runs_x; several joined by _): results.csv (per image),
summary.md and summary.json (means), convergence.csv (+ convergence.png with matplotlib:
rimkit[plot]), a crop grid per setting (grid-*.png) and report.html (self-contained); with
--measured, results.csv per volume, summary.md and summary.json. An existing result folder is
kept unless --force. While it runs, --out/journal.jsonl records each finished image (volume); a
stopped run continues where it stopped with --resume (the same command plus --resume)."""


def seed_value(text: str) -> int:
    """``--seed``'s type: a whole number in ``[0, 2**63)``, as torch and numpy take it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed lies in [0, 2**63), got {value}")
    return value


def register(
    subparsers: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command (``set_defaults(run=...)``) and return its parser.

    ``parents`` are rimkit's shared flag parsers (``--quiet``, ``--debug``, ``--force``).
    """
    parser = subparsers.add_parser(
        "eval",
        parents=list(parents),
        help="evaluate a model and baselines under a published protocol",
        description=(
            "Evaluate a RIM and classical baselines on a folder of images under a published "
            "protocol (denoising: DnCNN / RIM paper; super-resolution: Y channel, MATLAB "
            "bicubic; inpainting; deblurring with named kernels; random projections of 32x32 "
            "patches; strong lensing of patches by random SIE lenses; single- or multi-coil "
            "Cartesian MRI of magnitude images)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        action="append",
        help="shipped model, run folder or .safetensors (repeatable: several models, one table)",
    )
    parser.add_argument(
        "--label",
        action="append",
        help="the model's name in tables (default: a shipped model's name, else rim, or the "
        "file or folder name of one of several); repeatable, one per --model in order",
    )
    parser.add_argument(
        "--task",
        required=True,
        choices=["denoise", "sr", "inpaint", "blur", "projection", "lensing", "mri"],
        help="the inverse problem, evaluated under its protocol (an option whose help "
        "starts 'TASK:' applies to that task only)",
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="folder of images, or a 3-D volume (.npz/.npy: its slices along the last axis; "
        "a fastMRI .h5: its reference images)",
    )
    parser.add_argument(
        "--sigma",
        type=float,
        nargs="+",
        help="noise std, 0-255 (denoise: 15 25 50; blur: 2.55 7.65; else 0)",
    )
    parser.add_argument("--scale", type=int, nargs="+", help="sr: factors (default 2 3 4)")
    parser.add_argument(
        "--quantize", action="store_true", help="denoise: y rounded to 8 bits (RIM paper)"
    )
    parser.add_argument(
        "--fraction", type=float, nargs="+", help="inpaint: missing fractions (default 0.5)"
    )
    parser.add_argument(
        "--kernel",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="blur: kernels, gaussian:STD, motion:LENGTH:ANGLE or box:SIZE (px, degrees; "
        "default gaussian:1.6)",
    )
    parser.add_argument(
        "--boundary",
        choices=BOUNDARIES,
        help="blur: how y is formed (default circular); valid: only the pixels whose blur lies "
        "inside the image (a photo), scored on that field of view",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=PROJECTION_KINDS,
        help="projection: ensembles (default all three)",
    )
    parser.add_argument(
        "--ratio", type=float, nargs="+", help="projection: m/n (default 0.1 0.3 0.5)"
    )
    parser.add_argument(
        "--einstein-radius",
        type=float,
        nargs="+",
        help="lensing: Einstein radii, in source-patch widths (default 0.45)",
    )
    parser.add_argument(
        "--psf", type=float, help="lensing: Gaussian PSF width in pixels (default 0: none)"
    )
    parser.add_argument(
        "--acceleration",
        type=float,
        nargs="+",
        help="mri: acceleration factors R >= 1 (default 4)",
    )
    parser.add_argument(
        "--mask",
        choices=["columns", "points", "random", "equispaced"],
        help="mri: 1-D variable-density columns (default), 2-D Gaussian points, or fastMRI's "
        "random (default with --measured) or equispaced columns",
    )
    parser.add_argument(
        "--measured",
        action="store_true",
        help="mri: under-sample each fastMRI file's own k-space and score every volume against "
        "its reference images, as fastMRI does (instead of simulating k-space from them)",
    )
    parser.add_argument(
        "--coils",
        type=int,
        help="mri: receive coils (default 1; more: multi-coil k-space, simulated sensitivities)",
    )
    parser.add_argument(
        "--patches",
        type=int,
        help="patches per image (projection, lensing: default 4; inpaint: whole images unless "
        "given)",
    )
    parser.add_argument(
        "--patch", type=int, help="projection, lensing, inpaint: patch size (default 32)"
    )
    parser.add_argument(
        "--baselines",
        metavar="LIST",
        help="comma-separated baselines (bm3d,tv,fista-wavelet,bicubic,...) or none; "
        "default: tv (sr: bicubic; mri: zero-filled,tv)",
    )
    parser.add_argument(
        "--baseline-option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a baseline constructor option, e.g. tv.iterations=50 (repeatable)",
    )
    parser.add_argument("--steps", type=int, help="RIM steps reported (default: trained T)")
    parser.add_argument(
        "--curve-steps", type=int, help="run the RIM this far for the PSNR-vs-t curve"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    parser.add_argument("--seed", type=seed_value, default=0, help="base seed (image i: seed + i)")
    parser.add_argument("--tile", type=int, help="RIM: reconstruct in tiles of this many px")
    parser.add_argument(
        "--ensemble",
        type=int,
        default=1,
        choices=[1, 2, 4, 8],
        help="RIM: average over this many flips/rotations of each image (K times the time)",
    )
    parser.add_argument(
        "--sigma-estimate",
        choices=["pca", "wavelet"],
        help="blind: tell every method the noise level estimated from each measurement by this "
        "method instead of the true one (image tasks)",
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    parser.add_argument("--crop", type=int, default=96, help="crop size of the figure grids")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch and BM3D alike (default: torch's)"
    )
    parser.add_argument("--out", metavar="DIR", help="result folder (default evals/NAME-TASK)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped run of the same command from --out/journal.jsonl",
    )
    parser.set_defaults(run=run_command, command="eval")
    return parser


def parse_baseline_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["tv.iterations=50", "tv.weight=0.1"]`` -> ``{"tv": {"iterations": 50, ...}}``;
    values are read as YAML scalars.

    Example:
        >>> parse_baseline_options(["tv.iterations=50", "fista-wavelet.wavelet=haar"])
        {'tv': {'iterations': 50}, 'fista-wavelet': {'wavelet': 'haar'}}
    """
    import yaml

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, option = key.partition(".")
        if not (sep and dot and name and option):
            raise ValueError(
                f"--baseline-option takes NAME.KEY=VALUE (e.g. tv.iterations=50), got {item!r}"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        options.setdefault(name, {})[option] = value
    return options


def _baselines(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(n.strip() for n in text.split(",") if n.strip())


def data_path(text: str) -> Path:
    """``--data`` as given where it exists, else looked up in the data root (``$RIMKIT_DATA`` or
    ``../shared/data``, as ``rimkit train`` does): ``eval/BSD68``, or the part of
    ``../shared/data/eval/BSD68`` after ``shared/data/`` in a checkout that lies elsewhere.

    Example:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "eval", "Set12"))
        >>> before = os.environ.get("RIMKIT_DATA")
        >>> os.environ["RIMKIT_DATA"] = root
        >>> data_path("nowhere/shared/data/eval/Set12") == Path(root) / "eval" / "Set12"
        True
        >>> data_path("eval/Set12") == Path(root) / "eval" / "Set12"
        True
        >>> _ = os.environ.pop("RIMKIT_DATA") if before is None else os.environ.update(
        ...     RIMKIT_DATA=before)
    """
    from rimkit.train.config import DataConfig, resolve_folder

    tail = text.replace("\\", "/").split("shared/data/", 1)[-1]
    for candidate in (text,) if Path(text).is_absolute() else (text, tail):
        try:
            found = resolve_folder(DataConfig(), candidate)  # as given, else in the data root
        except ValueError:
            break  # no data root: the folder's own error names the path
        if found.exists():
            return found
    return Path(text)


def _one_or_all(values: list[str] | None) -> str | tuple[str, ...] | None:
    """A repeatable option's values: the one value given, else all of them as a tuple."""
    return values[0] if values and len(values) == 1 else tuple(values) if values else None


def spec_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~rimkit.evaluate.request.EvalSpec` of parsed ``rimkit eval`` arguments."""
    from rimkit.evaluate.defaults import TASK_OPTIONS, refuse_options_of_other_tasks
    from rimkit.evaluate.request import EvalSpec

    for name in ("steps", "curve_steps", "patches", "patch", "tile", "limit", "threads", "crop"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    given = {}  # the task options given: the others keep EvalSpec's defaults
    for name, (flag, _) in TASK_OPTIONS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and value is not False:
            given[name] = tuple(value) if isinstance(value, list) else value
    refuse_options_of_other_tasks(args.task, list(given))
    if args.task == "mri" and "mask" not in given and args.measured:
        given["mask"] = "random"  # fastMRI's
    return EvalSpec(
        task=args.task,
        data=data_path(args.data),
        out=Path(args.out) if args.out else None,
        model=_one_or_all(args.model),
        label=_one_or_all(args.label),
        sigmas=tuple(args.sigma) if args.sigma is not None else None,
        **given,
        baselines=_baselines(args.baselines),
        baseline_options=parse_baseline_options(args.baseline_option),
        steps=args.steps,
        curve_steps=args.curve_steps,
        limit=args.limit,
        seed=args.seed,
        tile=args.tile,
        ensemble=args.ensemble,
        sigma_estimate=args.sigma_estimate,
        precision=args.precision,
        crop=args.crop,
        force=args.force,
        resume=args.resume,
        quiet=args.quiet,
    )


def run_command(args: argparse.Namespace) -> None:
    """Run ``rimkit eval`` for parsed arguments; warnings go to stderr as one line each."""
    from rimkit.evaluate.request import run_eval

    spec = spec_from_args(args)
    from rimkit.runtime import set_threads

    set_threads(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run_eval(spec)
    if not args.quiet:
        for warning in caught:
            print(f"rimkit eval: warning: {warning.message}", file=sys.stderr)
        print((out / "summary.md").read_text(), end="")
        what = "" if spec.measured else ", figures and report.html"
        print(f"\nwrote results.csv, summary.md/json{what} to {out}")
