"""The ``rimkit`` command line: parse, call the library, own the exit codes.

Exit status 0 on success, 2 on bad usage or input (a one-line message), 1 on an internal error
(the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rimkit import __version__
from rimkit.evaluate.cli import BOUNDARIES, seed_value
from rimkit.output_encoding import (
    IMAGE_UNITS_KEY,
    fits_header,
    image_units_header,
    keeps_values,
    measurement_grid,
    output_grid,
    picture_encoding,
    picture_of_values,
    positive_maximum,
    write_trajectory,
)
from rimkit.precision import PRECISION_HELP, PRECISIONS
from rimkit.runtime import check_threads, note_printer, set_threads
from rimkit.zoo.cards import DEFAULT_MODELS, alternative_models, default_model

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2

DEGRADE_EXAMPLE = """examples:
  rimkit degrade example:camera noisy.png --task denoise --sigma 25
  rimkit degrade hr.png lr.png --task sr --scale 3      # = MATLAB imresize(im2double(hr), 1/3)
  rimkit degrade photo.png holes.png --task inpaint --fraction 0.8 --seed 1
  rimkit degrade slice.npy kspace.npy --task mri --acceleration 4
  rimkit degrade slice.npy kspace8.npy --task mri --coils 8   # multi-coil, with its maps
  rimkit degrade file1000.h5 under.npy --task mri --acceleration 4 --slice 17   # fastMRI
  rimkit degrade example:camera lensed.png --task lensing --einstein-radius 0.45 \\
      --axis-ratio 0.7 --angle 30 --shear 0.02 -0.01
  rimkit degrade galaxy.fits lensed.fits --task lensing --einstein-radius 0.45 --sigma 3
      # a FITS source in its own units (counts); --sigma in them too

INPUT is a PNG/JPEG/TIFF/WebP/GIF/PGM/.npy/FITS file or example:NAME (a scikit-image image:
camera, astronaut, hubble_deep_field, ...), or for mri measured k-space (a fastMRI .h5 file, a
BART .cfl) to under-sample. OUTPUT .png/.jpg/.tif/.webp/.pgm is written as 8 bits (clipped,
rounded), .npy and .fits exactly. inpaint and mri also write the mask as OUTPUT-STEM-mask.png
(white = observed)."""


TRAIN_EXAMPLE = """examples:
  rimkit train configs/denoise-gray-cpu.yaml --out runs/denoise-gray
  rimkit train configs/denoise-gray-cpu.yaml --set optim.lr=0.0005 --set optim.batch_size=16
  rimkit train --resume runs/denoise-gray                 # continue where it stopped
  rimkit train configs/3task-cpu.yaml --nproc 2           # DistributedDataParallel on 2 CPUs
  torchrun --nproc_per_node 2 -m rimkit train configs/3task-cpu.yaml --out runs/3task

Training images are read from data.root (default $RIMKIT_DATA or ../shared/data)."""


COMPARE_EXAMPLE = """examples:
  rimkit compare noisy.png --task denoise --methods denoise-gray bm3d tv --out cmp
  rimkit compare noisy.png --task denoise --truth clean.png      # also PSNR / SSIM
  rimkit compare lr.png --task sr --scale 3 --methods sr bicubic runs/my-sr
  rimkit compare photo.png --task blur --kernel motion:15:45 --boundary valid --sigma auto
  rimkit compare ksp.cfl --task mri --truth img.cfl   # both MRI models, zero-filled and TV
  rimkit compare ksp.cfl --task mri --truth img.cfl --methods mri-measured fista-wavelet
  rimkit compare under.npy --task mri --truth file1000.h5 --slice 17   # fastMRI's reference

--sigma auto (the default for denoise) estimates the noise level once; every method is told
the same value. Baselines use the weight tuned for the task and noise level."""

RECONSTRUCT_EXAMPLE = """examples:
  rimkit reconstruct noisy.png clean.png --task denoise --sigma 25
  rimkit reconstruct lr.png sr.png --task sr --scale 3 --trajectory steps.gif
  rimkit reconstruct holes.png filled.png --task inpaint --mask holes-mask.png
  rimkit reconstruct noisy.png out.png --task denoise --sigma 25 --model runs/denoise-gray
  rimkit reconstruct noisy.png out.png --task denoise --sigma 25 --ensemble 8
  rimkit reconstruct photo.png out.png --task denoise --sigma auto   # estimate the noise level
  rimkit reconstruct photo.png out-bm3d.png --task denoise --baseline bm3d   # a classical one
  rimkit reconstruct ksp.cfl brain.png --task mri   # a scanner's k-space: mri-measured
  rimkit reconstruct file1000.h5 knee.png --task mri --slice 17   # a fastMRI test file
  rimkit reconstruct file1000.h5 knee.npy --task mri --slice all  # all its slices, one .npy
  rimkit reconstruct lensed.png source.png --task lensing --einstein-radius 0.45 \\
      --axis-ratio 0.7 --angle 30 --shear 0.02 -0.01
  rimkit reconstruct lensed.fits source.fits --task lensing --einstein-radius 0.45 --sigma 3
      # FITS in counts: --sigma and the result in counts (--units data)

Measurements as written by `rimkit degrade` (the same --task, --sigma, --scale, mask and
kernel; for lensing the same lens flags). --model takes a shipped model name (see `rimkit
models`), a run folder of `rimkit train` or a .safetensors file; by default the shipped
model for the task (for a scanner's k-space, BART's .cfl or a fastMRI .h5, mri-measured).
--ensemble K restores K flips/rotations of the measurement and averages them (denoise, sr,
inpaint; K times the time; BENCHMARKS.md has what it gains). Data of any scale (FITS, or
--units data): divided by their peak for the model and the result multiplied back, so
--sigma and the result are in the data's units."""

TASKS = tuple(DEFAULT_MODELS)


KERNEL_HELP = (
    "blur: a kernel (PSF) file (.npy, TIFF, PNG; its centre at pixel (rows // 2, cols // 2), "
    "normalised to sum 1) or a named kernel, gaussian:STD, motion:LENGTH:ANGLE or box:SIZE "
    "(pixels, degrees); default gaussian:1.6"
)


SLICE_HELP = "mri: the slice of a fastMRI .h5 file (default: the middle one)"
MASK_PATTERNS = ("columns", "points", "random", "equispaced")
MASK_HELP = (
    "mri: the sampling pattern: variable-density columns (default), 2-D Gaussian points, or "
    "fastMRI's random or equispaced columns (a fully sampled centre of 0.32 / R)"
)
VOLUME_HELP = f"{SLICE_HELP}, or all: every slice, written as one (slices, H, W) .npy"
NOISE_KINDS = ("gaussian", "poisson")
UNITS = ("image", "data")  # rimkit.pipeline.UNITS, without importing torch for --help
THREADS_HELP = "CPU threads for torch and BM3D alike (default: torch's)"
UNITS_HELP = (
    "image: an image in [0, 1] (8/16-bit files are scaled there), --sigma on the 0-255 scale "
    "(mri: 255 times the k-space's units); data: values of any scale in their own units "
    "(counts, photons; mri: k-space), --sigma and the output in them too (.npy and .fits keep "
    "them, a picture output of an 8/16-bit input its counts; another picture holds them "
    "divided by their maximum). Default: data for FITS, image otherwise"
)


class UsageError(ValueError):
    """Bad usage or input: reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser with one line per usage error, and negative numbers written with an
    exponent (``--background -1e9``) taken as values, as ``-5`` and ``-0.5`` are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str) -> None:  # argparse exits 2 by itself; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"rimkit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rimkit",
        description="Recurrent Inference Machines for inverse problems y = A x + n.",
    )
    parser.add_argument("--version", action="version", version=f"rimkit {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    for options in (parser, common):  # before or after the command; SUPPRESS keeps the first
        default = False if options is parser else argparse.SUPPRESS
        options.add_argument(
            "-q", "--quiet", action="store_true", default=default, help="print nothing on success"
        )
        options.add_argument(
            "--debug", action="store_true", default=default, help="show tracebacks on errors"
        )
    common.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing outputs (an OUTPUT file, or the files in an --out folder; "
        "train: start over in a run folder that holds a run)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    deg = sub.add_parser(
        "degrade",
        parents=[common],
        help="apply a forward model and noise to an image",
        description="Simulate a measurement y = A x + n of an image.",
        epilog=DEGRADE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deg.add_argument(
        "input",
        help="image file or example:NAME; mri: also measured k-space (fastMRI .h5, BART .cfl), "
        "under-sampled by the mask",
    )
    deg.add_argument("output", help="measurement file (.png, .jpg, .tif, .webp, .npy, .fits, ...)")
    deg.add_argument(
        "--task", required=True, choices=TASKS, help="the forward model that degrades the image"
    )
    deg.add_argument(
        "--sigma",
        type=float,
        help="noise std on the 0-255 scale, or with --units data in the data's units "
        "(denoise: required)",
    )
    deg.add_argument("--units", choices=UNITS, help=UNITS_HELP)
    deg.add_argument("--scale", type=float, help="sr: integer down-sampling factor (default 2)")
    deg.add_argument("--fraction", type=float, help="inpaint: missing fraction (default 0.5)")
    deg.add_argument("--acceleration", type=float, help="mri: factor >= 1 (default 4)")
    deg.add_argument("--mask", choices=MASK_PATTERNS, default="columns", help=MASK_HELP)
    deg.add_argument(
        "--coils",
        type=int,
        default=1,
        help="mri: receive coils (default 1); more write (coils, H, W) k-space and the simulated "
        "sensitivities as OUTPUT-STEM-maps.npy",
    )
    deg.add_argument("--slice", type=int, help=SLICE_HELP)
    deg.add_argument("--kernel", help=KERNEL_HELP)
    deg.add_argument(
        "--boundary",
        choices=BOUNDARIES,
        help="blur: circular (the default: the image wraps around), zero, or valid (y keeps only "
        "the pixels whose blur lies inside the image, so y is smaller by the kernel size less one)",
    )
    deg.add_argument("--quantize", action="store_true", help="round y to 8 bits (paper column)")
    deg.add_argument("--gray", action="store_true", help="convert an RGB input to gray first")
    deg.add_argument("--seed", type=seed_value, default=0, help="seed of the noise and mask draws")
    _add_lens_arguments(deg)
    deg.set_defaults(run=_run_degrade)

    rec = sub.add_parser(
        "reconstruct",
        parents=[common],
        help="reconstruct an image from its measurement with a RIM",
        description="Reconstruct x from y = A x + n with a trained RIM.",
        epilog=RECONSTRUCT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rec.add_argument(
        "input",
        help="measurement: PNG/JPEG/TIFF/WebP/GIF/PGM/.npy/FITS (mri: complex k-space, .npy "
        "(H, W) or (coils, H, W), BART .cfl or a fastMRI .h5 file)",
    )
    rec.add_argument("output", help="restored image (.png, .jpg, .tif, .webp, .npy, .fits, ...)")
    _add_measurement_arguments(rec)
    chooser = rec.add_mutually_exclusive_group()
    chooser.add_argument("--model", help="shipped model name, run folder or .safetensors file")
    chooser.add_argument(
        "--baseline",
        help="reconstruct with a classical baseline instead (tv, fista-wavelet, cg-tikhonov, "
        "bm3d, bicubic, ...; the weight tuned for the task and noise level)",
    )
    rec.add_argument("--steps", type=int, help="RIM steps (default: the trained T)")
    rec.add_argument(
        "--ensemble",
        type=int,
        default=1,
        choices=[1, 2, 4, 8],
        help="denoise/sr/inpaint: average over this many flips/rotations (K times the time)",
    )
    rec.add_argument("--trajectory", metavar="FILE.gif|DIR", help="also write x_1..x_T")
    rec.set_defaults(run=_run_reconstruct)

    cmp = sub.add_parser(
        "compare",
        parents=[common],
        help="restore one measurement with several RIMs and baselines, side by side",
        description=(
            "Restore your own measurement with several methods (RIMs and classical baselines) "
            "and write each result, a figure of crops side by side, a table of times (and of "
            "PSNR / SSIM with --truth) and report.html."
        ),
        epilog=COMPARE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument(
        "input",
        help="measurement: PNG/JPEG/TIFF/WebP/GIF/PGM/.npy/FITS (mri: k-space, also .cfl/.h5)",
    )
    _add_measurement_arguments(cmp)
    cmp.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="models (shipped names, run folders, .safetensors) and baselines (tv, bm3d, ...); "
        "default: the task's shipped model (mri: also mri-measured) and rimkit eval's "
        "baselines for it",
    )
    cmp.add_argument(
        "--truth",
        help="the clean image, to score each result (PSNR / SSIM); mri: also a fastMRI .h5 file "
        "(its reference image of --slice; the results are cropped to its size) or a BART image "
        "(.cfl; of several ESPIRiT maps the first)",
    )
    cmp.add_argument(
        "--out",
        help="output folder (default rimkit-compare-NAME, NAME the input's file name without "
        "its suffix)",
    )
    cmp.set_defaults(run=_run_compare)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="degrade an embedded image and restore it with the shipped RIMs and baselines",
        description=(
            "Denoising, super-resolution x2/x3/x4, deblurring, inpainting, strong lensing and "
            "MRI of scikit-image's camera: PSNR/SSIM table, figure, convergence plot and "
            "report.html."
        ),
        epilog="example:\n  rimkit demo --out rimkit-demo\n  rimkit demo --image photo.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="rimkit-demo", help="output folder (default rimkit-demo)")
    demo.add_argument("--image", default="example:camera", help="image file or example:NAME")
    demo.add_argument("--seed", type=seed_value, default=0, help="seed of the noise and mask draws")
    demo.add_argument("--threads", type=int, help=THREADS_HELP)
    demo.set_defaults(run=_run_demo)

    models = sub.add_parser(
        "models",
        help="list the shipped pretrained models",
        description="List the shipped models with their task, channels, T, data and scores.",
    )
    for flag, text in (("--quiet", "refused: a listing"), ("--debug", "show tracebacks on errors")):
        names = ("-q", flag) if flag == "--quiet" else (flag,)
        models.add_argument(*names, action="store_true", default=argparse.SUPPRESS, help=text)
    models.set_defaults(run=_run_models)

    tr = sub.add_parser(
        "train",
        parents=[common],
        help="train a RIM from a YAML recipe",
        description="Train a RIM (or an ablation) by back-propagation through time.",
        epilog=TRAIN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tr.add_argument("config", nargs="?", help="YAML recipe (optional with --resume)")
    tr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. optim.lr=0.0005 (repeatable)",
    )
    tr.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint"
    )
    tr.add_argument("--out", metavar="DIR", help="run folder (default runs/CONFIG-NAME)")
    tr.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes for distributed training (optim.batch_size is per process)",
    )
    tr.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads per process (the same as --set optim.threads=N)",
    )
    tr.set_defaults(run=_run_train)

    from rimkit.evaluate.cli import register as register_eval

    register_eval(sub, [common])
    return parser


def _add_measurement_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a measurement (task, noise, forward model, lens) and how to
    run on it (tiles, device): shared by ``reconstruct`` and ``compare``."""
    parser.add_argument(
        "--task",
        required=True,
        choices=TASKS,
        help="the inverse problem the input is a measurement of (an option whose help starts "
        "'TASK:' applies to that task only)",
    )
    parser.add_argument(
        "--sigma",
        type=_sigma_or_auto,
        help="noise std on the 0-255 scale (--units data: in the data's units), or auto: "
        "estimate it from the input (Liu et al. 2013; not for mri). Default: auto for denoise, "
        "0 otherwise",
    )
    parser.add_argument("--units", choices=UNITS, help=UNITS_HELP)
    parser.add_argument(
        "--noise-map",
        metavar="FILE",
        help="sigma per pixel instead of --sigma: a .fits or .npy of the (gray) input's shape, "
        "in --sigma's units (e.g. an error image); RIMs weigh each pixel by it, baselines take "
        "its inverse-variance mean",
    )
    parser.add_argument(
        "--noise",
        choices=NOISE_KINDS,
        default="gaussian",
        help="denoise: gaussian (one sigma, --sigma), or poisson: photon counts (a camera's or "
        "detector's; --units data), whose noise grows with the signal, made Gaussian by the "
        "generalised Anscombe transform with --gain, --read-noise and --offset",
    )
    parser.add_argument(
        "--gain",
        type=_number_or_auto("counts per photon"),
        default=1.0,
        help="--noise poisson: counts per photon (1), or auto: the gain and the read noise "
        "estimated from the input's noise, which grows with its counts (--offset known)",
    )
    parser.add_argument(
        "--read-noise",
        type=float,
        help="--noise poisson: the detector's Gaussian read noise, std in counts (0)",
    )
    parser.add_argument(
        "--offset",
        type=float,
        default=0.0,
        help="--noise poisson: the dark level (bias) every pixel's counts carry (0)",
    )
    parser.add_argument(
        "--peak",
        type=float,
        help="--units data: the value taken as the models' white (default: the measurement's "
        "largest; a deblurred or super-resolved image may need more)",
    )
    parser.add_argument(
        "--background",
        type=_level_or_auto,
        help="a background (sky) level to subtract first and add back (not to a lensed "
        "source), as --sigma: on the 0-255 scale, or with --units data in the data's units; or "
        "auto: the sigma-clipped median of the input (of each channel in colour)",
    )
    parser.add_argument("--scale", type=float, help="sr: the up-sampling factor (default 2)")
    parser.add_argument(
        "--mask",
        help="the measured pixels (white; a 0/1 image or .npy): inpaint's holes, or bad pixels "
        "of a denoise/blur/sr/lensing measurement left out (a FITS HDU named DQ, obs.fits[DQ]: "
        "data-quality flags, nonzero = bad); mri: the sampled k-space (default: its nonzero "
        "points)",
    )
    parser.add_argument(
        "--dq-ignore",
        metavar="BITS",
        help="with a --mask of data-quality flags (FITS HDU DQ or BPM): bits that do not make a "
        "pixel bad, e.g. 4 or 4,8 (astropy's syntax; ~4: only bit 4 does)",
    )
    parser.add_argument(
        "--maps",
        help="mri: coil sensitivity maps, complex (coils, H, W) .npy or BART .cfl, or how to "
        "estimate them from the fully sampled k-space centre: espirit (default) or lowres (each "
        "coil's low-resolution image over their root sum of squares); none: single-coil "
        "k-space taken as it is (no phase demodulation)",
    )
    parser.add_argument("--slice", type=_slice_or_all, help=VOLUME_HELP)
    parser.add_argument("--kernel", help=KERNEL_HELP)
    parser.add_argument(
        "--boundary",
        choices=BOUNDARIES,
        help="blur: how y was formed (default circular); valid (a photo: the scene goes on past "
        "its edges) reconstructs x past y's edges and writes y's field of view",
    )
    parser.add_argument(
        "--tile", type=int,
        help="reconstruct in overlapping tiles of this many pixels of the restored image (for "
        "sr: rounded down to a multiple of the scale); bounds the memory of large images",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where the RIM runs (cpu)"
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    _add_lens_arguments(parser)


def _add_lens_arguments(parser: argparse.ArgumentParser) -> None:
    lens = parser.add_argument_group(
        "lensing (--task lensing): a singular isothermal ellipsoid with external shear; angles "
        "in the units of the fields of view; x along columns, y along rows as stored (down in "
        "a PNG, up in a FITS image as ds9 shows it)"
    )
    lens.add_argument("--einstein-radius", type=float, help="the lens's Einstein radius")
    lens.add_argument("--axis-ratio", type=float, default=1.0, help="axis ratio q in (0, 1]")
    lens.add_argument(
        "--angle", type=float, default=0.0, help="major axis from +x towards +y, degrees"
    )
    lens.add_argument(
        "--shear", type=float, nargs=2, default=[0.0, 0.0], metavar=("G1", "G2"),
        help="external shear",
    )  # fmt: skip
    lens.add_argument(
        "--center", type=float, nargs=2, default=[0.0, 0.0], metavar=("X", "Y"),
        help="lens centre relative to the image centre",
    )  # fmt: skip
    lens.add_argument("--image-fov", type=float, default=2.0, help="the image's width (2)")
    lens.add_argument("--source-fov", type=float, default=1.0, help="the source's width (1)")
    lens.add_argument("--psf", type=float, default=0.0, help="Gaussian PSF std, pixels (0)")


def _lensing_setup(args: argparse.Namespace):  # -> LensingSetup | None
    """The lens of ``--task lensing`` from the flags; refuses lens flags for other tasks."""
    if args.task != "lensing":
        if args.einstein_radius is not None:
            raise UsageError("--einstein-radius applies to --task lensing only")
        return None
    if args.einstein_radius is None:
        raise UsageError(
            "lensing needs the lens: give --einstein-radius (and --axis-ratio, --angle, --shear, "
            "--center as needed)"
        )
    from rimkit.operators import SIE, LensingSetup

    lens = SIE(
        args.einstein_radius, args.axis_ratio, math.radians(args.angle), tuple(args.center),
        tuple(args.shear),
    )  # fmt: skip
    return LensingSetup(lens, args.image_fov, args.source_fov, args.psf)


def _same_file(first: str | Path, second: str | Path) -> bool:
    """Whether two paths name one file (also through links)."""
    a, b = Path(first), Path(second)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))


def _check_paths(input_path: str, output_path: str) -> None:
    if input_path.startswith("example:"):
        return
    if _same_file(input_path, output_path):
        raise UsageError(f"OUTPUT {output_path!r} is the INPUT; choose another output path")


def _run_degrade(args: argparse.Namespace) -> None:
    from rimkit.degrade import degrade
    from rimkit.io import check_image_range, file_suffix, read_image
    from rimkit.writing import check_output, write_image

    _check_paths(args.input, args.output)
    output = Path(args.output)
    stem = output.name[: len(output.name) - len(file_suffix(output))]  # x.fits.gz: x
    mask_path = output.with_name(f"{stem}-mask.png")
    maps_path = output.with_name(f"{stem}-maps.npy")
    targets = [output] + ([mask_path] if args.task in ("inpaint", "mri") else [])
    targets += [maps_path] if args.coils > 1 else []
    _check_paths(args.input, str(mask_path))
    _check_paths(args.input, str(maps_path))
    for path in targets:
        check_output(path, args.force)
    if args.task == "mri" and output.suffix.lower() != ".npy":
        raise UsageError("MRI measurements are complex k-space; give an OUTPUT ending in .npy")
    if args.coils != 1 and args.task != "mri":
        raise UsageError("--coils applies to --task mri only")
    scale = _sr_scale(args)
    args.fraction = _task_option(args, "fraction", "inpaint", 0.5)
    args.acceleration = _task_option(args, "acceleration", "mri", 4.0)
    if args.mask != "columns" and args.task != "mri":
        raise UsageError("--mask picks an MRI sampling pattern; it applies to --task mri only")
    if _is_kspace_file(args.input):
        return _undersample_kspace(args, output, mask_path)
    if args.slice is not None:
        raise UsageError("--slice picks a slice of a fastMRI .h5 file; this input is an image")
    kernel = _read_kernel(args.kernel, args.task)
    lensing = _lensing_setup(args)
    units = _units(args, args.input)
    if units == "data" and args.quantize:
        raise UsageError("--quantize rounds an image in [0, 1] to 8 bits; not --units data")
    image = read_image(args.input, gray=True if args.gray else None, counts=units == "data")
    if units == "image" and args.task != "mri":  # an MRI slice may have any scale
        check_image_range(image, args.input)
    result = degrade(
        image,
        args.task,
        sigma=args.sigma,
        scale=scale,
        fraction=args.fraction,
        acceleration=args.acceleration,
        mask=args.mask if args.task == "mri" else None,
        kernel=kernel,
        boundary=_boundary(args),
        quantize=args.quantize,
        seed=args.seed,
        lensing=lensing,
        coils=args.coils,
        units=units,
    )
    measurement = result.measurement
    white, bits = picture_encoding(args.input, output, measurement)
    if picture_of_values(output, units):
        measurement = measurement / (white or positive_maximum(measurement))
    header = fits_header(args.input, measurement_grid(args.task, scale, result.operator))
    if units == "image":
        header = image_units_header(output, header)
    write_image(output, measurement, args.force, header, bits=bits)
    if result.mask is not None:
        write_image(mask_path, result.mask, force=args.force)
    if result.maps is not None:
        write_image(maps_path, result.maps, force=args.force)
    if not args.quiet:
        shape = "x".join(str(s) for s in np.shape(result.measurement))
        extra = f" and its mask to {mask_path}" if result.mask is not None else ""
        extra += f" and the coil maps to {maps_path}" if result.maps is not None else ""
        print(f"wrote the {args.task} measurement ({shape}) to {output}{extra}")


def _units(args: argparse.Namespace, path: str) -> str:
    """``--units``, by default ``data`` for a FITS file (it has no white level; but for one
    ``rimkit degrade`` wrote on the image scale, marked :data:`IMAGE_UNITS_KEY`) and for
    photon counts (``--noise poisson``), else ``image``."""
    from rimkit.io import is_fits, read_fits_header

    if args.units:
        return args.units
    if getattr(args, "noise", "gaussian") == "poisson":
        return "data"
    if is_fits(path):
        try:
            marked = read_fits_header(path, geometry=False).get(IMAGE_UNITS_KEY) == "image"
        except (OSError, ValueError):
            marked = False  # an unreadable file: its own error comes where it is read
        return "image" if marked else "data"
    return "image"


def _note_unused_range(path: str, image: np.ndarray) -> None:
    """A note where a 16-bit image uses a small part of its range (a 12-bit camera's counts):
    read as an image in [0, 1] it is dark and its noise far below the 0-255 scale's."""
    from rimkit.io import stored_white

    white = stored_white(path)
    if white == 65535 and 0 < float(np.max(image)) < 0.125:
        warnings.warn(
            f"{path!r} uses {100 * float(np.max(image)):.2g} % of its 16-bit range (largest "
            f"value {float(np.max(image)) * white:.0f} of 65535), so it is restored as a dark "
            "image in [0, 1] with --sigma on the 0-255 scale; for counts (a camera's 12 bits) "
            "give --units data, with --sigma in counts",
            UserWarning,
            stacklevel=2,
        )


def _sr_scale(args: argparse.Namespace) -> float:
    """``--scale``: for sr, the factor (default 2); refused for the other tasks."""
    return _task_option(args, "scale", "sr", 2)


def _task_option(args: argparse.Namespace, name: str, task: str, default: float) -> float:
    """``--NAME`` of one task: its value (``default`` where not given); refused for the others."""
    value = getattr(args, name)
    if value is not None and args.task != task:
        raise UsageError(f"--{name} applies to --task {task} only, not {args.task}")
    return default if value is None else value


def _is_scanner_kspace(path: str) -> bool:
    """Whether ``path`` is a scanner's k-space file: BART's .cfl / .hdr or a fastMRI .h5 (a
    .npy may hold k-space that rimkit degrade simulated)."""
    from rimkit.fastmri import is_fastmri

    return Path(path).suffix.lower() in (".cfl", ".hdr") or is_fastmri(path)


def _is_kspace_file(path: str) -> bool:
    """Whether ``path`` holds measured k-space: a fastMRI .h5, a BART .cfl / .hdr file or a
    complex ``(coils, H, W)`` .npy (an image to transform is 2-D)."""
    from rimkit.fastmri import is_fastmri

    if Path(path).suffix.lower() == ".npy" and Path(path).is_file():
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):
            return False  # read_image names what is wrong with it
        return np.iscomplexobj(array) and array.ndim == 3

    return is_fastmri(path) or Path(path).suffix.lower() in (".cfl", ".hdr")


def _read_kspace_input(path: str, slice_index: int | None, quiet: bool) -> tuple[np.ndarray, int]:
    """K-space ``(coils, H, W)`` from a fastMRI .h5 (the slice told, else the middle one,
    printed), a BART .cfl or a complex .npy; with the slice taken (``-1``: not a fastMRI file)."""
    from rimkit.bart import read_kspace
    from rimkit.fastmri import is_fastmri, read_fastmri

    if not is_fastmri(path):
        return read_kspace(path), -1
    piece = read_fastmri(path, slice_index)
    if not quiet:
        coils, h, w = piece.kspace.shape
        told = "" if slice_index is not None else " (the middle one; pick one with --slice)"
        print(f"{path}: slice {piece.index} of {piece.slices}{told}, {coils} coil(s), {h}x{w}")
    return piece.kspace, piece.index


def _undersample_kspace(args: argparse.Namespace, output: Path, mask_path: Path) -> None:
    """``rimkit degrade`` of measured k-space: keep the points the ``--mask`` pattern samples."""
    from rimkit.degrade import undersample
    from rimkit.writing import write_image

    if args.task != "mri":
        raise UsageError(f"{args.input!r} is k-space; it takes --task mri, not {args.task}")
    if args.sigma or args.coils != 1 or args.quantize or args.gray:
        raise UsageError(
            "measured k-space keeps its own noise and coils: --sigma, --coils, --quantize and "
            "--gray apply to images"
        )
    kspace, index = _read_kspace_input(args.input, args.slice, args.quiet)
    result = undersample(kspace, args.acceleration, args.seed, args.mask)
    before, after = (_sampled_fraction(k) for k in (kspace, result.measurement))
    if before < UNDER_SAMPLED:
        warnings.warn(
            f"the input holds {100 * before:.1f} % of its k-space (already under-sampled); the "
            f"--acceleration {args.acceleration:g} pattern keeps {100 * after:.1f} %, R about "
            f"{1 / max(after, 1e-9):.1f}",
            UserWarning,
            stacklevel=2,
        )
    write_image(output, result.measurement, force=args.force)
    write_image(mask_path, result.mask, force=args.force)
    if not args.quiet:
        shape = "x".join(str(s) for s in result.measurement.shape)
        print(
            f"wrote the under-sampled k-space ({shape}, {100 * after:.1f} % of its points) to "
            f"{output} and its mask to {mask_path}"
        )
        if index >= 0:
            print(
                f"score it against the file's reference: rimkit compare {output} --task mri "
                f"--truth {args.input} --slice {index}"
            )


UNDER_SAMPLED = 0.75
"""The fraction of its points below which measured k-space is under-sampled already (a fully
sampled fastMRI file may be zero-padded past the lines it measured: not all of its points)."""


def _sampled_fraction(kspace: np.ndarray) -> float:
    """The fraction of k-space points a measurement holds (:func:`rimkit.operators.sampled_mask`:
    non-zero in some coil)."""
    import torch

    from rimkit.operators import sampled_mask

    k = torch.from_numpy(np.asarray(kspace).reshape(1, -1, *np.shape(kspace)[-2:]))
    return float(sampled_mask(k).mean())


def _boundary(args: argparse.Namespace) -> str:
    """``--boundary``, circular unless given; given for a task other than blur it is refused."""
    if args.boundary is not None and args.task != "blur":
        raise UsageError(f"--boundary applies to --task blur only, not {args.task}")
    return args.boundary or "circular"


def _read_kernel(text: str | None, task: str) -> np.ndarray | None:
    """``--kernel``: a kernel file (.npy or an image) or a named kernel such as ``motion:15:45``."""
    if text is None:
        return None
    if task != "blur":
        raise UsageError("--kernel applies to --task blur only")
    from rimkit.io import names_file

    if not names_file(text):
        from rimkit.operators import kernel_from_spec

        try:
            return kernel_from_spec(text).numpy()
        except ValueError as err:
            message = f"--kernel {text!r} is neither a file nor a named kernel: {err}"
            raise UsageError(message) from None
    from rimkit.io import read_kernel
    from rimkit.operators import checked_kernel

    kernel = read_kernel(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its notes come once, from degrade / restore
        try:
            checked_kernel(kernel, f"the kernel in {text!r}")
        except ValueError as err:
            raise UsageError(str(err)) from None
    return kernel


def _run_reconstruct(args: argparse.Namespace) -> None:
    from rimkit.pipeline import restore
    from rimkit.writing import check_output, write_image

    _check_paths(args.input, args.output)
    output = check_output(args.output, args.force)
    if args.trajectory:
        inputs = [args.input, args.mask, args.kernel, args.maps, args.noise_map]
        check_trajectory_target(Path(args.trajectory), args.force, inputs, args.output)
    for flag in ("mask", "maps", "kernel", "noise_map"):
        given = getattr(args, flag)
        if given and Path(given).resolve() == output.resolve():
            name = flag.replace("_", "-")
            raise UsageError(f"OUTPUT {args.output!r} is the --{name} file; choose another path")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.baseline and (args.steps or args.trajectory):
        raise UsageError("--steps and --trajectory apply to RIMs; a baseline writes its result")
    if args.slice == "all":
        return _reconstruct_volume(args, output)
    image, options = _read_measurement(args)
    name, model = _load_method(args, image)
    result = restore(
        image,
        args.task,
        model,
        baseline=args.baseline,
        steps=args.steps,
        progress=not args.quiet,
        ensemble=args.ensemble,
        **options,
    )
    units = "data" if args.task == "mri" else options["units"]  # k-space has any scale
    peak = positive_maximum(result.image) if units == "data" else 1.0
    pictures = [frame / peak for frame in result.frames]  # what 8-bit pictures show
    scaled = picture_of_values(output, units)
    white, bits = picture_encoding(args.input, output, result.image)
    final = result.image
    if scaled:  # counts as the input stores them, else values / their maximum
        final = result.image / white if white else pictures[-1]
    header = fits_header(args.input, output_grid(args.task, _sr_scale(args)))
    write_image(output, final, args.force, header, bits=bits)
    if args.trajectory:
        write_trajectory(Path(args.trajectory), pictures)
    if not args.quiet:
        shape = "x".join(str(s) for s in result.image.shape)
        runs = f" (mean of {args.ensemble} flips/rotations)" if args.ensemble > 1 else ""
        if args.task == "mri":
            named = {"espirit": "ESPIRiT maps", "lowres": "low-resolution maps"}
            maps = named.get(args.maps or "espirit", f"maps from {Path(args.maps or '').name}")
            maps = maps if len(image) > 1 else ""
            note = (f", {maps}" if maps else "") + (", magnitude / its maximum" if scaled else "")
            runs = f" ({len(image)} coil{'s' * (len(image) > 1)}{note})"
        elif scaled and white:
            runs += f" (in the input's counts, {bits} bits)"
        elif scaled:
            runs += f" (values / their maximum, {peak:.4g}; .fits or .npy keep the values)"
        elif bits == 16:
            runs += " (16 bits, as the input)"
        if _sigma_estimated(args):
            scale = "the data's units" if units == "data" else "0-255 scale"
            print(f"noise level estimated from the input: sigma {result.sigma:.4g} ({scale})")
        if args.background is not None:
            back = "" if args.task == "lensing" else " and added back"
            print(f"background (sky) level {_levels(result.background)} subtracted{back}")
        steps = "with baseline" if args.baseline else f"after {len(result.frames)} steps of"
        every = f", and every step to {args.trajectory}" if args.trajectory else ""
        print(f"wrote {output} ({shape}) {steps} {name}{runs}{every}")


def _load_method(args: argparse.Namespace, image: np.ndarray) -> tuple[str, Any]:
    """``reconstruct``'s method: the baseline's name (no model), else the model's name and the
    model (which keeps the super-resolution scales it was trained for, ``trained_scales``)."""
    from rimkit.zoo import load_model

    if args.baseline:
        return args.baseline, None
    name = args.model or _default_model(args.task, image, scanner=_is_scanner_kspace(args.input))
    loaded = load_model(name, device=args.device, precision=args.precision)
    trained = int(getattr(loaded.model, "train_steps", 0) or 0)
    if args.steps and trained and args.steps > trained:
        warnings.warn(
            f"--steps {args.steps} runs {name!r} past the T = {trained} steps it was trained "
            "for; its estimate may get worse there (--trajectory DIR writes every step)",
            UserWarning,
            stacklevel=2,
        )
    return name, loaded.model


def _reconstruct_volume(args: argparse.Namespace, output: Path) -> None:
    """``reconstruct --slice all``: every slice of a fastMRI file restored alike, written as
    one ``(slices, H, W)`` .npy of magnitudes in the k-space's units."""
    from tqdm import tqdm

    from rimkit.fastmri import is_fastmri, read_fastmri, slice_count
    from rimkit.pipeline import restore
    from rimkit.restore_mri import COIL_MAP_METHODS, NO_MAPS
    from rimkit.writing import write_image

    if args.task != "mri" or not is_fastmri(args.input):
        raise UsageError("--slice all takes every slice of a fastMRI .h5 file (--task mri)")
    if output.suffix.lower() != ".npy":
        raise UsageError("--slice all writes a volume (slices, H, W): give an OUTPUT ending .npy")
    if args.trajectory or args.ensemble > 1:
        raise UsageError("--trajectory and --ensemble take one slice, not --slice all")
    if args.maps is not None and args.maps not in (*COIL_MAP_METHODS, NO_MAPS):
        raise UsageError("--slice all estimates each slice's maps: --maps espirit, lowres or none")
    args.slice, quiet, args.quiet = 0, args.quiet, True  # no "slice 0 of N" line: all are taken
    image, options = _read_measurement(args)  # slice 0, and the options every slice shares
    args.quiet = quiet
    name, model = _load_method(args, image)
    slices = slice_count(args.input)
    volume = []
    for index in tqdm(range(slices), desc="slices", unit="slice", disable=args.quiet):
        kspace = image if index == 0 else read_fastmri(args.input, index).kspace
        try:
            result = restore(
                kspace, "mri", model, baseline=args.baseline, steps=args.steps, **options
            )
        except ValueError as err:
            raise ValueError(f"slice {index} of {args.input}: {err}; nothing written") from None
        volume.append(result.image)
    write_image(output, np.stack(volume), force=args.force)
    if not args.quiet:
        shape = "x".join(str(s) for s in (slices, *volume[0].shape))
        print(f"wrote {output} ({shape}, magnitudes in the k-space's units) with {name}")


def _read_measurement(args: argparse.Namespace) -> tuple[np.ndarray, dict]:
    """The measurement of ``reconstruct`` / ``compare`` and the options of
    :func:`rimkit.pipeline.restore` that describe it, read and checked."""
    from rimkit.bart import read_kspace
    from rimkit.fastmri import is_fastmri
    from rimkit.io import check_image_range, is_fits, read_fits_measured, read_image
    from rimkit.masks import read_mask
    from rimkit.restore_mri import COIL_MAP_METHODS, NO_MAPS

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available here; use --device cpu")
    set_threads(args)
    if args.maps and args.task != "mri":
        raise UsageError("--maps applies to --task mri only")
    lensing = _lensing_setup(args)
    if args.slice is not None and not any(
        is_fastmri(path) for path in (args.input, getattr(args, "truth", None) or "")
    ):
        raise UsageError("--slice picks a slice of a fastMRI .h5 file (mri); none is given")
    if args.task != "mri" and is_fastmri(args.input):
        raise UsageError(f"{args.input!r} is a fastMRI k-space file; it takes --task mri")
    measured = None  # the pixels a FITS measurement holds, where it has blank ones
    if args.task == "mri":
        image, index = _read_kspace_input(args.input, args.slice, args.quiet)  # (coils, H, W)
        args.slice = args.slice if index < 0 else index  # --truth FILE.h5 takes the same slice
        maps = args.maps
        if maps is not None and maps not in (*COIL_MAP_METHODS, NO_MAPS):
            if not (Path(maps).exists() or Path(f"{maps}.cfl").exists()):
                methods = ", ".join((*COIL_MAP_METHODS, NO_MAPS))
                raise UsageError(
                    f"--maps {maps}: no such file; give a maps file (.npy or BART .cfl) or a "
                    f"method to estimate them: {methods}"
                )
            maps = read_kspace(maps, "coil sensitivity maps")
    else:
        maps = None
        if is_fits(args.input):  # blank (NaN) pixels are left out as bad ones
            image, measured = read_fits_measured(args.input)
            blank = int((measured == 0).sum())
            measured = None if blank == 0 else measured
            if measured is not None and not args.quiet:
                print(f"{args.input}: {blank} blank (NaN) pixel(s) left out of the measurement")
        else:
            image = read_image(args.input, counts=_units(args, args.input) == "data")
        if _units(args, args.input) == "image":
            check_image_range(image, args.input)
            _note_unused_range(args.input, image)
    if args.dq_ignore is not None and args.mask is None:
        raise UsageError("--dq-ignore names bits of a --mask of data-quality flags; give --mask")
    mask = None if args.mask is None else read_mask(args.mask, args.dq_ignore)
    if args.task != "mri" and measured is not None:
        if mask is not None and mask.shape != measured.shape:
            raise UsageError(f"--mask is {mask.shape} but {args.input!r} is {measured.shape}")
        mask = measured if mask is None else measured * (mask > 0.5)
    sigma = args.sigma
    if args.noise_map is not None:
        if sigma is not None:
            raise UsageError("give --sigma or --noise-map, not both")
        if not keeps_values(args.noise_map):
            raise UsageError(f"--noise-map {args.noise_map!r}: give a .fits or .npy of values")
        sigma = read_image(args.noise_map, counts=_units(args, args.input) == "data")
    options = {
        "sigma": sigma,
        "photons": _photon_noise(args, image, mask),
        "scale": _sr_scale(args),
        "mask": mask,
        "kernel": _read_kernel(args.kernel, args.task),
        "boundary": _boundary(args),
        "tile": args.tile,
        "lensing": lensing,
        "maps": maps,
        "units": _units(args, args.input),
        "peak": args.peak,
        "background": args.background,
    }
    if args.peak is not None and options["units"] != "data":
        raise UsageError("--peak sets the white of data in their own units: give --units data")
    return image, options


def _sigma_estimated(args: argparse.Namespace) -> bool:
    """Whether the noise level was estimated from the input (``--sigma auto``, or no sigma of
    any kind for denoising)."""
    told = args.sigma is not None or args.noise_map is not None or args.noise == "poisson"
    return args.sigma == "auto" or (args.task == "denoise" and not told)


def _photon_noise(args: argparse.Namespace, image: np.ndarray, mask: np.ndarray | None) -> Any:
    """``--noise poisson``'s detector (:class:`rimkit.photon.PhotonNoise`; ``--gain auto``:
    estimated from ``image``'s pixels that ``mask`` keeps, and printed), else ``None``."""
    from rimkit.photon import PhotonNoise

    if args.noise != "poisson":
        if args.gain != 1.0 or args.read_noise is not None or args.offset != 0.0:
            raise UsageError("--gain, --read-noise and --offset describe --noise poisson")
        return None
    if args.task != "denoise":
        raise UsageError("--noise poisson applies to --task denoise only")
    if args.units == "image":
        raise UsageError("--noise poisson takes photon counts: --units data (the default there)")
    if args.sigma is not None or args.noise_map is not None:
        raise UsageError("--noise poisson: the noise follows the counts; leave --sigma out")
    if args.gain != "auto":
        return PhotonNoise(args.gain, args.read_noise or 0.0, args.offset)
    if args.read_noise is not None:
        raise UsageError("--gain auto estimates the read noise too; leave --read-noise out")
    detector = PhotonNoise.estimate(image, offset=args.offset, mask=mask)
    if not args.quiet:
        print(
            f"detector estimated from the input: gain {detector.gain:.4g} counts per photon, "
            f"read noise {detector.read_noise:.4g} counts (offset {args.offset:g})"
        )
    return detector


def compare_folder(source: str) -> str:
    """``compare``'s default output folder for an input: ``rimkit-compare-`` and its name
    without suffix (and HDU), so two comparisons do not collide.

    Example:
        >>> compare_folder("scans/ksp.cfl"), compare_folder("obs.fits[SCI]")
        ('rimkit-compare-ksp', 'rimkit-compare-obs')
        >>> compare_folder("example:camera")
        'rimkit-compare-camera'
    """
    name = Path(source.split("[", 1)[0]).name.split(":")[-1]
    stem = name.split(".", 1)[0] or "input"
    return f"rimkit-compare-{stem}"


def _run_compare(args: argparse.Namespace) -> None:
    from rimkit.compare import (
        comparable_truth,
        compare,
        measurement_scores,
        scoring_note,
        write_comparison,
    )
    from rimkit.evaluate.defaults import DEFAULT_BASELINES
    from rimkit.io import is_fits
    from rimkit.pipeline import BAD_PIXEL_TASKS, MASKLESS_BASELINES, shown_measurement
    from rimkit.writing import check_output_folder

    inputs = [args.input, args.truth, args.mask, args.kernel, args.maps, args.noise_map]
    out = check_output_folder(args.out or compare_folder(args.input), args.force, inputs)
    if args.slice == "all":
        raise UsageError("compare restores one slice; give --slice N (reconstruct takes all)")
    image, options = _read_measurement(args)
    truth, fit_scale = _read_truth(args)
    truth = comparable_truth(truth, image, args.task, **options)  # cropped as y was made
    methods = args.methods or [
        _default_model(args.task, image),
        *alternative_models(args.task),
        *DEFAULT_BASELINES[args.task],
    ]
    if not args.methods and options["mask"] is not None and args.task in BAD_PIXEL_TASKS:
        methods = [m for m in methods if m not in MASKLESS_BASELINES]  # they see no mask
    results = compare(
        image, args.task, methods, truth=truth, fit_scale=fit_scale, device=args.device,
        precision=args.precision, progress=not args.quiet, **options,
    )  # fmt: skip
    peak = None
    if args.task == "mri" or options["units"] == "data":  # one white: the truth's or brightest
        peak = positive_maximum(truth if truth is not None else [r.image.max() for r in results])
    shown = shown_measurement(image / (peak or 1.0), args.task, options["scale"])
    values = None
    if options["units"] == "data" or args.task == "mri":  # pictures show them; keep values
        values = ".fits" if is_fits(args.input) else ".npy"
    header = fits_header(args.input, output_grid(args.task, _sr_scale(args)))
    measured = measurement_scores(image, truth, args.task, options["units"])
    written = write_comparison(
        out, results, shown, truth, peak=peak, force=args.force, values=values, header=header,
        measured=measured, scoring=scoring_note(args.task, truth, options["units"]),
    )  # fmt: skip
    if not args.quiet:
        if _sigma_estimated(args):
            sigma = results[0].sigma
            print(f"noise level estimated from the input: sigma {sigma:.4g}, told every method")
        if args.background is not None:
            print(f"background (sky) level {_levels(results[0].background)} subtracted first")
        print((written["results"]).read_text(), end="")
        kept = f" (and their values, -values{values})" if values else ""
        print(f"wrote {len(results)} results{kept}, figure.png, results.md, report.html to {out}")


def _read_truth(args: argparse.Namespace) -> tuple[np.ndarray | None, bool]:
    """``compare --truth``: an image file, or for mri a BART image or the reference image of a
    fastMRI file's slice (``--slice``, else the measurement's); and whether the results' scale
    is fitted to it (not to a fastMRI reference, which is in its k-space's units)."""
    from rimkit.bart import read_bart_image
    from rimkit.fastmri import is_fastmri, read_fastmri, slice_count
    from rimkit.io import check_image_range, read_image, stored_white

    if args.truth is None:
        return None, True
    if Path(args.truth).suffix.lower() in (".cfl", ".hdr"):
        if args.task != "mri":
            raise UsageError(f"--truth {args.truth!r} is a BART file; it scores --task mri only")
        return read_bart_image(args.truth), True
    if not is_fastmri(args.truth):
        units = _units(args, args.input)
        stored = {path: stored_white(path) for path in (args.truth, args.input)}
        if units == "data" and args.task != "mri" and stored[args.truth] != stored[args.input]:
            kinds = {None: "values", 255.0: "8-bit integers", 65535.0: "16-bit integers"}
            raise UsageError(
                f"--truth {args.truth!r} holds {kinds[stored[args.truth]]} but the measurement "
                f"{kinds[stored[args.input]]}; with --units data both are read as stored, so "
                "give the clean image in the measurement's units (.fits or .npy values, or the "
                "same kind of integer file)"
            )
        truth = read_image(args.truth, counts=units == "data" and args.task != "mri")
        if args.task != "mri" and units == "image":
            check_image_range(truth, args.truth)
        return truth, True
    if args.task != "mri":
        raise UsageError(f"--truth {args.truth!r} is a fastMRI file; it scores --task mri only")
    if args.slice is None and slice_count(args.truth) > 1:
        raise UsageError(
            f"--truth {args.truth!r} holds {slice_count(args.truth)} slices: give --slice N, the "
            "slice the measurement was taken from (rimkit degrade printed it)"
        )
    piece = read_fastmri(args.truth, args.slice)
    if piece.reference is None:
        raise UsageError(
            f"--truth {args.truth!r} holds no reference image (reconstruction_esc / "
            "reconstruction_rss; a test-set file has none): give a file of the training or "
            "validation set, or a clean image"
        )
    return piece.reference, False


def _slice_or_all(text: str) -> int | str:
    """``--slice``'s type for reconstruct and compare: a slice index, or ``all``."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a slice number or all, got {text!r}") from None


def _number_or_auto(what: str) -> Callable[[str], float | str]:
    """An argparse type: a number (``what`` names it in the error), or ``auto``."""

    def parse(text: str) -> float | str:
        if text.strip().lower() == "auto":
            return "auto"
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} or auto, got {text!r}") from None

    return parse


_sigma_or_auto = _number_or_auto("a number on the 0-255 scale")
_level_or_auto = _number_or_auto("a level in the input's units")


def _default_model(task: str, image: np.ndarray, scanner: bool = False) -> str:
    """The shipped model for ``task`` on ``image`` (:func:`rimkit.zoo.cards.default_model`)."""
    channels = 3 if task != "mri" and image.ndim == 3 and image.shape[2] == 3 else 1
    return default_model(task, channels, scanner)


def check_trajectory_target(
    target: Path, force: bool, inputs: Sequence[str | None] = (), output: str | None = None
) -> None:
    """Refuse a ``--trajectory`` target before any work: wrong kind, one that exists, or a
    folder that holds one of the ``inputs`` or is to hold the ``output``."""
    from rimkit.writing import check_output_folder

    if target.suffix and target.suffix.lower() != ".gif":
        raise UsageError(f"--trajectory takes a .gif file or a folder, got {str(target)!r}")
    for given in (*inputs, output):
        if target.suffix and given and not str(given).startswith("example:"):
            if _same_file(target, given):
                raise UsageError(
                    f"--trajectory {str(target)!r} is the file {str(given)!r} this command "
                    "reads or writes; choose another path"
                )
    if target.suffix and target.exists() and not force:
        raise UsageError(f"trajectory {str(target)!r} exists; pass --force to overwrite it")
    if not target.suffix:
        check_output_folder(target, force, inputs, what="trajectory folder")
        if output is not None and target.resolve() in Path(output).resolve().parents:
            raise UsageError(
                f"OUTPUT {output!r} lies in the trajectory folder, where the steps are "
                "written; choose another output or folder"
            )
    if not target.parent.is_dir():
        raise UsageError(f"the folder of {str(target)!r} does not exist")


def _run_demo(args: argparse.Namespace) -> None:
    from rimkit.demo import run_demo

    set_threads(args)
    result = run_demo(
        args.out, args.image, force=args.force, seed=args.seed, progress=not args.quiet
    )
    if not args.quiet:
        print(result["markdown"])
        for note in result["notes"]:
            print(f"note: {note}")
        print(f"wrote {', '.join(result['files'][:-1])} and {result['files'][-1]} to {args.out}")


def _run_models(args: argparse.Namespace) -> None:
    from rimkit.zoo import list_models

    if args.quiet:
        raise UsageError("models lists the shipped models; with -q it would print nothing")
    cards = list_models()
    if not cards:
        print("no pretrained models are shipped yet; train one with `rimkit train`")
        return
    for card in cards:
        print(
            f"{card.name}: {card.task}, {card.channels} channel(s), trained T = {card.train_steps}"
        )
        print(f"  {card.description}")
        cost = ""
        if card.inference_gflop is not None:
            cost = f" ({card.inference_gflop:g} GFLOP per 481x321 image at T)"
        print(f"  made for: {card.hardware}{cost}; trained on: {card.data}")
        for key, value in card.scores.items():
            print(f"  {key}: {value}")


def _run_train(args: argparse.Namespace) -> None:
    from rimkit.train import load_config
    from rimkit.train.launch import launch
    from rimkit.train.run_folder import refuse_existing_run

    if args.resume:
        out = Path(args.resume)
        if args.out and Path(args.out).resolve() != out.resolve():
            raise UsageError("--out and --resume name different folders; give one of them")
        if not (out / "last.safetensors").is_file():
            raise UsageError(f"nothing to resume in {str(out)!r}: it has no last.safetensors")
        config = args.config or out / "config.yaml"
    elif args.config is None:
        raise UsageError("give a CONFIG file, or --resume DIR to continue a run")
    else:
        config = args.config
        if (Path(config) / "last.safetensors").is_file():
            raise UsageError(
                f"config {config!r} is a run folder, not a YAML file; continue it with --resume "
                f"{config}"
            )
        out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
        blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            where = "is a file" if blocker == out else f"is inside {str(blocker)!r}, a file"
            raise UsageError(
                f"--out {str(out)!r} {where}; --out must be a folder for the run "
                "(created if missing)"
            )
        if not args.force:
            refuse_existing_run(out, resume=f"--resume {out}", force="--force")
    check_threads(args.threads)
    if args.threads is not None:
        args.set = [*args.set, f"optim.threads={args.threads}"]
    cfg = load_config(config, args.set)
    if args.nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {args.nproc}")
    if args.resume:
        from rimkit.train.checkpoint import read_meta
        from rimkit.train.run_folder import check_same_recipe

        last = read_meta(out / "last")
        done = last.get("iteration")
        finished = (out / "model.safetensors").is_file()  # else the resumed run exports it
        if finished and isinstance(done, int) and done >= cfg.optim.iterations:
            check_same_recipe(out, cfg, last)  # an edited recipe is refused, not ignored
            if not args.quiet:
                print(
                    f"the run in {out} is already complete at iteration {done} "
                    f"(optim.iterations={cfg.optim.iterations}); nothing to do. To train it "
                    f"longer, resume with --set optim.iterations=N, N > {done}"
                )
            return
    meta = launch(  # a folder holding another run was refused above without --force
        cfg, out, resume=bool(args.resume), nproc=args.nproc, progress=not args.quiet, force=True
    )
    if not args.quiet:
        score = meta.get("val_psnr_final") if meta else None
        print(f"trained to iteration {meta.get('iteration')} in {out}; validation PSNR {score}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: the overview, not a usage error about a missing argument
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    from rimkit.runtime import reuse_freed_memory

    reuse_freed_memory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each run shows its notes (once per place)
            warnings.showwarning = note_printer(args.command)
            args.run(args)
    except BrokenPipeError:  # the reader stopped early (rimkit models | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ValueError, OSError) as err:
        if args.debug:
            traceback.print_exc()
        print(f"rimkit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except _training_errors() as err:
        if args.debug:
            traceback.print_exc()
        print(f"rimkit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt as err:  # training says where its run is saved
        print(f"rimkit: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as err:  # an internal error: say so, show details on request
        if args.debug:
            traceback.print_exc()
        print(
            f"rimkit {args.command}: internal error: {type(err).__name__}: {err} "
            "(rerun with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        if getattr(args, "threads_before", None):  # main() called in a process that goes on
            import torch

            torch.set_num_threads(args.threads_before)
    return EXIT_OK


def _levels(level: float | np.ndarray) -> str:
    """A level, or a colour image's levels per channel (``R / G / B``), for a message."""
    if np.ndim(level) == 0:
        return f"{float(level):.4g}"
    values = " / ".join(f"{float(v):.4g}" for v in np.ravel(level))
    return f"{values} ({' / '.join('RGB')})" if np.size(level) == 3 else values


def _training_errors() -> tuple[type[Exception], ...]:
    from rimkit.train.loop import TrainingDiverged

    return (TrainingDiverged,)


if __name__ == "__main__":
    sys.exit(main())
