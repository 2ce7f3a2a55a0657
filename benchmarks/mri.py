"""Compressed-sensing MRI: RIMs and classical baselines on real brain images.

Regenerates the ``mri`` section of BENCHMARKS.md. Single-coil Cartesian MRI simulated from
magnitude images (:class:`rimkit.evaluate.MRIProtocol`: the whole image's centred orthonormal
2-D FFT, a 1-D variable-density column mask with a fully sampled centre drawn from seed + image
index, at each acceleration), on three sets of real scans that no model trains on:

- ``t1-coronal``: ``mri/t1_coronal_slice.npy``, one T1 slice, 256 x 256 (dipy);
- ``dipy-b0``: the 10 slices of ``mri/dipy_b0_10slices.npz``, b0 EPI, 128 x 128 (dipy);
- ``bart-brain``: the magnitude of BART's reference reconstruction of its 8-coil brain scan
  (``mri/bart_pics_brain/img``, first ESPIRiT map), 180 x 230.

Each image is scaled by its maximum. PSNR (dB) and SSIM of the magnitude, clipped to [0, 1]
and rounded to 8 bits, at each model's trained T. The shipped ``mri`` model trains on slices of
the MNI152 template (an average brain) and on photographs, so these are scans of other heads and
sequences. A gray model (e.g. ``3task``, trained on random projections only) reconstructs the
images as real, seeing ``Re(A^H (y - A x))``: transfer by swapping the likelihood.

    python benchmarks/mri.py --model mri --model 3task
    python benchmarks/mri.py --limit 1 --accelerations 4 --output /tmp/BENCHMARKS.md

``--mask random`` (or ``equispaced``, ``points``) samples another pattern: fastMRI's column
masks, to see how models trained on variable-density columns take them. ``--coils N`` simulates
N receive coils instead (smooth simulated sensitivities drawn from the
same seeds, :func:`rimkit.operators.synthetic_coil_maps`, given to every method); write it to its
own ``--section``.
"""

from __future__ import annotations

from pathlib import Path

import _common as C
import numpy as np

from rimkit.evaluate import MRIProtocol, load_images
from rimkit.io import read_cfl, read_image
from rimkit.operators import MRI_MASKS

SETS = ("t1-coronal", "dipy-b0", "bart-brain")


def load_set(data: Path, name: str, limit: int | None) -> list[tuple[str, np.ndarray]]:
    """The gray magnitude images of evaluation set ``name``, each scaled to a maximum of 1."""
    if name == "t1-coronal":
        image = read_image(data / "mri" / "t1_coronal_slice.npy")
        images = [("t1_coronal_slice", image / image.max())]
    elif name == "dipy-b0":
        images = load_images(data / "mri" / "dipy_b0_10slices.npz", limit)
    else:
        volume = read_cfl(data / "mri" / "bart_pics_brain" / "img")  # (1, H, W, 1, maps)
        magnitude = np.abs(volume[0, :, :, 0, 0]).astype(np.float64)
        images = [("bart_pics_brain", magnitude / magnitude.max())]
    return images[:limit]


def main() -> None:
    p = C.parser(
        __doc__,
        models=["mri", "3task"],
        baselines="zero-filled,tv,fista-wavelet,cg-tikhonov",
        section=("mri", "Compressed-sensing MRI (single coil, Cartesian)"),
    )
    p.add_argument(
        "--accelerations", type=float, nargs="+", default=[2.0, 4.0, 8.0],
        help="undersampling factors R",
    )  # fmt: skip
    p.add_argument("--sigma", type=float, default=0.0, help="k-space noise std, 0-255 scale")
    p.add_argument(
        "--sets", nargs="+", choices=SETS, default=list(SETS), help="sets of scans (see above)"
    )
    p.add_argument(
        "--coils", type=int, default=1, help="simulated receive coils (default 1: single coil)"
    )
    p.add_argument(
        "--mask",
        choices=list(MRI_MASKS),
        default="columns",
        help="sampling pattern (default rimkit's variable-density columns; random / equispaced: "
        "fastMRI's column masks)",
    )
    args = p.parse_args()
    C.setup(args)
    if args.coils < 1:
        C.fail(f"--coils must be >= 1, got {args.coils}")
    models = C.load_models(args, channels=(1, 2))
    bases = C.baselines(args, "mri", keep_estimates=False)
    methods = [m.method for m in models if m.method] + bases
    with C.option_values():
        protocols = [
            MRIProtocol(r, args.mask, args.sigma, args.seed, args.coils) for r in args.accelerations
        ]

    sets = {}
    for name in args.sets:  # every set before any work
        try:
            sets[name] = load_set(Path(args.data), name, args.limit)
        except (ValueError, OSError) as err:
            C.fail(f"{err} (the {name} scans in --data)")
    parts = []
    counts = []
    for name, images in sets.items():
        counts.append(f"{name} {len(images)}")
        result = C.run_images(args, images, protocols, methods, curves=False, part=name)
        rows = C.psnr_ssim_rows(result, protocols, models, bases, "acceleration")
        parts.append(f"### {name}: PSNR (dB) / SSIM\n\n" + C.table(rows))

    coils = (
        "Single coil."
        if args.coils == 1
        else f"{args.coils} coils with simulated sensitivities (the same for every method)."
    )
    pattern = {
        "columns": "1-D variable-density columns with a fully sampled centre",
        "points": "2-D Gaussian points with a fully sampled centre",
        "random": "fastMRI's random columns (RandomMaskFunc: a centre of 0.32 / R of the "
        "columns, each other column with probability (W / R - n) / (W - n))",
        "equispaced": "fastMRI's equispaced columns (EquispacedMaskFunc: a centre of 0.32 / R of "
        "the columns, the others equally spaced from a random offset)",
    }[args.mask]
    notes = (
        f"Images: {', '.join(counts)}. Mask: {pattern}. {coils} Noise sigma {args.sigma:g}/255 "
        "per real component of k-space; the images themselves are real scans with their own noise. "
        "The baselines use the weights tuned on slices of the MNI152 template (the MRI models' "
        "training data) at the nearest of R = 2, 4 and 8 (on a log scale) and of noise sigma 0, "
        "5 and 15 (`rimkit.solvers.tuning`), "
        "starting at the zero-filled image. "
        "No published numbers: the MRI RIM papers (Lonning et al.; Putzky et al., i-RIM on "
        "fastMRI) measure other data, multi-coil or raw single-coil k-space with phase."
    )
    C.write(args, args.section, args.title, [notes, *parts, C.missing_note(models)])


if __name__ == "__main__":
    main()
