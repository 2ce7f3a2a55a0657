"""Multi-coil MRI on real k-space: BART's 8-coil brain scan, reconstructed from its own samples.

Regenerates the ``mri-multicoil`` section of BENCHMARKS.md. The data are BART's ``pics`` example
(``mri/bart_pics_brain``): 8-coil k-space of one axial brain slice, 180 x 230, acquired with
2-D variable-density undersampling (12.7 % of k-space, a fully sampled 16 x 16 centre), and
BART's reconstruction from the fully sampled scan (first ESPIRiT map) as the reference.
Unlike the single-coil ``mri`` section nothing is simulated: the measurement is the scanner's,
with its own noise. ``--drop F`` settings also leave out a seeded fraction ``F`` of the
acquired points outside the calibration centre (higher acceleration). A second table takes BART's
complex reference image, its own phase kept, as single-coil k-space (column masks at
``--accelerations``), reconstructed after demodulation by its low-resolution phase (as ``rimkit
reconstruct`` does) and, for the first model, without.

Every method gets the same operator (:class:`rimkit.operators.MultiCoilMRI`) with coil maps
estimated from the calibration centre, by each of ``--maps`` (``espirit``:
:func:`rimkit.operators.espirit_maps`, ``lowres``: :func:`rimkit.operators.coil_sensitivities`,
a column pair each); the RIMs
run as ``rimkit reconstruct --task mri`` does (:func:`rimkit.pipeline.restore`). Each magnitude
image is fitted to the reference by one least-squares scale (the coil maps' normalisation
differs from ESPIRiT's), then scored by PSNR (peak 1) and SSIM.

Example:
    python benchmarks/mri_multicoil.py --threads 2
"""

from __future__ import annotations

import time
from pathlib import Path

import _common as C
import numpy as np
import torch

from rimkit.evaluate.metrics import psnr, ssim
from rimkit.io import read_cfl, read_kspace
from rimkit.operators import (
    MIN_CALIBRATION,
    CartesianMRI,
    calibration_size,
    coil_sensitivities,
    sampled_mask,
    variable_density_mask,
)
from rimkit.pipeline import COIL_MAP_METHODS, NO_MAPS, restore
from rimkit.zoo import load_model

SCAN = Path("mri") / "bart_pics_brain"


def load_scan(data: Path) -> tuple[torch.Tensor, np.ndarray]:
    """The acquired k-space ``(1, coils, H, W)`` and the complex reference image ``(H, W)``
    (first ESPIRiT map), scaled to a maximum magnitude of 1."""
    absent = [name for name in ("ksp.cfl", "img.cfl") if not (data / SCAN / name).is_file()]
    if absent:
        C.fail(f"no {' or '.join(absent)} in {str(data / SCAN)!r}: BART's pics example, in --data")
    kspace = torch.from_numpy(read_kspace(data / SCAN / "ksp").astype(np.complex64))[None]
    reference = read_cfl(data / SCAN / "img")[0, :, :, 0, 0].astype(np.complex128)
    return kspace, reference / np.abs(reference).max()


def drop_points(mask: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """``mask`` without a seeded ``fraction`` of its points outside the calibration centre."""
    if fraction == 0:
        return mask
    side = calibration_size(mask)
    h, w = mask.shape[-2:]
    keep = torch.zeros_like(mask, dtype=torch.bool)
    top, left = h // 2 - side // 2, w // 2 - side // 2
    keep[..., top : top + side, left : left + side] = True
    outside = torch.nonzero((mask > 0) & ~keep)
    g = torch.Generator().manual_seed(seed)
    dropped = outside[torch.randperm(len(outside), generator=g)[: round(fraction * len(outside))]]
    out = mask.clone()
    out[tuple(dropped.T)] = 0
    return out


def fit_scores(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM of ``estimate`` scaled by the least-squares factor onto ``reference``."""
    scale = float((estimate * reference).sum() / max((estimate * estimate).sum(), 1e-30))
    return psnr(scale * estimate, reference), ssim(scale * estimate, reference)


def main() -> None:
    p = C.parser(
        __doc__,
        models=["mri", "3task"],
        baselines="zero-filled,cg-tikhonov,tv,fista-wavelet",
        journal=False,
        section=("mri-multicoil", "Multi-coil MRI on real k-space (BART's 8-coil brain scan)"),
    )
    p.add_argument("--drop", type=float, nargs="+", default=[0.0, 0.5], help="fractions in [0, 1)")
    p.add_argument(
        "--accelerations",
        type=float,
        nargs="+",
        default=[4.0, 8.0],
        help="single-coil table: column-mask accelerations (default 4 8)",
    )
    p.add_argument(
        "--maps",
        nargs="+",
        choices=list(COIL_MAP_METHODS),
        default=list(COIL_MAP_METHODS),
        help="multi-coil table: how the coil maps are estimated (default: all, a column pair each)",
    )
    args = p.parse_args()
    C.setup(args)
    if any(not 0 <= f < 1 for f in args.drop):
        C.fail(f"--drop fractions must lie in [0, 1), got {args.drop}")
    names = C.baseline_names(args, "mri")
    kspace, reference_image = load_scan(Path(args.data))
    reference = np.abs(reference_image)
    acquired = sampled_mask(kspace)
    estimated, map_seconds = {}, {}
    for method in args.maps:
        start = time.perf_counter()
        estimated[method] = COIL_MAP_METHODS[method](kspace, acquired)
        map_seconds[method] = time.perf_counter() - start
    entries = C.load_models(args, channels=(1, 2))
    models = [(e.label, load_model(e.source).model) for e in entries if e.method is not None]

    header = ["method"]
    rows: dict[str, list[str]] = {e.label: [e.label] for e in entries}
    rows.update({name: [name] for name in names})
    masks = [drop_points(acquired, fraction, args.seed) for fraction in args.drop]
    for method, maps in estimated.items():
        for mask in masks:
            rate = mask[0].numel() / float(mask.sum())
            header += [f"R {rate:.1f}, {method}: PSNR / SSIM", "s"]
            measure(rows, entries, models, names, kspace * mask, mask, maps, reference)
            if not args.quiet:
                print(f"R {rate:.1f} with {method} maps done", flush=True)

    # single coil, the reference's own phase kept: the image demodulated by its low-res phase
    image = torch.from_numpy(reference_image.astype(np.complex64))[None, None]
    phase_header = ["method"]
    phase_rows: dict[str, list[str]] = {e.label: [e.label] for e in entries}
    unmapped = f"{models[0][0]} without the phase map" if models else None
    if unmapped:
        phase_rows[unmapped] = [unmapped]
    phase_rows.update({name: [name] for name in names})
    for rate in args.accelerations:
        g = torch.Generator().manual_seed(args.seed)
        mask = variable_density_mask(tuple(image.shape[-2:]), rate, generator=g)
        measured = CartesianMRI(mask)(image)
        phase_map = (  # one coil: exp(i low-resolution phase), as rimkit reconstruct does
            coil_sensitivities(measured, mask)
            if calibration_size(mask) >= MIN_CALIBRATION
            else torch.ones_like(measured)
        )
        phase_header += [f"R {rate:g}: PSNR / SSIM", "s"]
        measure(phase_rows, entries, models, names, measured, mask, phase_map, reference)
        if unmapped:
            start = time.perf_counter()  # what a model sees without the phase map:
            kspace1, binary = measured[0].numpy(), mask[0, 0].numpy()
            estimate = restore(kspace1, "mri", models[0][1], mask=binary, maps=NO_MAPS)
            phase_rows[unmapped] += _cells(estimate.image, reference, time.perf_counter() - start)

    percent, side = 100 * float(acquired.mean()), calibration_size(acquired)
    spread = float(np.std(np.angle(reference_image)[reference > 0.2]))
    notes = (
        f"One real scan: k-space {tuple(kspace.shape[1:])} (coils, H, W), {percent:.1f} % "
        f"acquired; calibration centre {side} x {side}. Coil maps for every method from that "
        "centre, each column pair with the maps it names: "
        + ", ".join(
            f"`{m}` ({COIL_MAP_METHODS[m].__name__}, {map_seconds[m]:.2f} s)" for m in estimated
        )
        + " (`rimkit reconstruct` uses `espirit` unless told). The RIMs run through "
        "`rimkit.pipeline.restore`, the `rimkit reconstruct --task mri` path (k-space divided by "
        "the zero-filled maximum, sigma 0: the model's trained noise floor); a gray model "
        "(`3task`) takes the image as real. No model trained on this scan or on any measured "
        "multi-coil data (the model cards say what each saw). Baselines: weights tuned at the "
        "nearest R (2, 4 or 8) on simulated single-coil slices of the MNI152 template "
        "(`rimkit.solvers.tuning`), on "
        "the complex image as two channels from the zero-filled start, as in the `mri` section. "
        "Scores: each magnitude fitted to the reference (BART `pics` on the fully sampled scan, "
        "first ESPIRiT map, maximum 1) by one least-squares scale; PSNR with peak 1. Seconds: "
        "wall time of one reconstruction on this machine. Higher R: a seeded fraction "
        f"({', '.join(f'{f:g}' for f in args.drop if f)}) of the acquired points outside the "
        "calibration centre left out."
    )
    phase_notes = (
        "### Single coil, the image's own phase kept\n\nBART's complex reference image (its "
        f"phase as the scan gave it: standard deviation {spread:.2f} rad where the magnitude "
        "exceeds 0.2) as single-coil k-space, 1-D "
        "variable-density column masks drawn from the seed, no added noise. `rimkit "
        "reconstruct` demodulates single-coil k-space by the image's low-resolution phase read "
        "from the fully sampled centre (a one-coil map, `coil_sensitivities`); every method "
        f"gets that operator. `{unmapped}`: the first model with the phase left in (a map of "
        "ones), what it saw before session 18."
    )
    tables = [
        C.table([header, *rows.values()]),
        phase_notes,
        C.table([phase_header, *phase_rows.values()]),
    ]
    C.write(args, args.section, args.title, [notes, *tables, C.missing_note(entries)])


def measure(
    rows: dict[str, list[str]],
    entries: list,
    models: list,
    names: list[str],
    measured: torch.Tensor,
    mask: torch.Tensor,
    maps: torch.Tensor,
    reference: np.ndarray,
) -> None:
    """Append ``PSNR / SSIM`` and seconds to each row: the RIMs and the baselines (complex
    channels, the weights tuned at the acceleration nearest the mask's) through ``restore`` (the
    CLI path), all on ``MultiCoilMRI(mask, maps)``."""
    for e in entries:
        if e.method is None:
            rows[e.label] += [C.MISSING, ""]
    kspace, binary, given = measured[0].numpy(), mask[0, 0].numpy(), maps[0].numpy()
    methods = [(label, {"model": model}) for label, model in models]
    methods += [(name, {"model": None, "baseline": name}) for name in names]
    for label, method in methods:
        start = time.perf_counter()
        image = restore(kspace, "mri", mask=binary, maps=given, **method).image
        rows[label] += _cells(image, reference, time.perf_counter() - start)


def _cells(image: np.ndarray, reference: np.ndarray, seconds: float) -> list[str]:
    value, similarity = fit_scores(image, reference)
    return [f"{value:.2f} / {similarity:.4f}", f"{seconds:.2f}"]


if __name__ == "__main__":
    main()
