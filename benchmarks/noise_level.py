"""Blind denoising: the noise level estimated from the noisy image, BSD68 gray.

Regenerates the ``noise-level`` section of BENCHMARKS.md. The noisy images are those of the
``denoise-gray`` section (:class:`rimkit.evaluate.DenoiseProtocol`: float noise from seed +
image index, not clipped; ``--quantised`` adds the 8-bit columns, clipped and rounded). First
the estimators of :func:`rimkit.noise_level.estimate_noise_level` against the true sigma
(mean error, mean absolute error, largest error, milliseconds per image); then each model and
baseline told the true sigma, and the same method told each estimate instead
(:func:`rimkit.evaluate.methods.blind_method`; baselines with the first estimator only).
``--missing`` measures inpainting instead (:class:`rimkit.evaluate.InpaintProtocol`: that
fraction of the pixels missing at random, noise on the others): the scattered-mask estimate.

    python benchmarks/noise_level.py --model rim-denoise=denoise-gray --baselines bm3d
    python benchmarks/noise_level.py --limit 2 --sigmas 25 --baselines none --output /tmp/B.md
    python benchmarks/noise_level.py --missing 0.2 0.5 0.8 --model rim-3task=3task \
        --baselines tv --section noise-level-inpaint --title 'Blind inpainting, BSD68'
    python benchmarks/noise_level.py --channels 3 --set eval/CBSD68 --model rim-rgb=denoise-rgb \
        --baselines none --section noise-level-rgb --title 'Blind colour denoising, CBSD68'
"""

from __future__ import annotations

import dataclasses
import time

import _common as C
import numpy as np

from rimkit.evaluate import DenoiseProtocol, InpaintProtocol
from rimkit.evaluate.methods import blind_method, measured_noise_level
from rimkit.evaluate.metrics import as_image
from rimkit.noise_level import METHODS

SIGMAS = (5, 15, 25, 50)


def estimator_rows(images, protocols, estimators) -> list[list[object]]:
    """Per setting and estimator: mean error, mean |error|, largest |error| (0-255) and ms."""
    rows: list[list[object]] = [
        ["setting", "estimator", "mean error", "mean abs error", "largest abs error", "ms / image"]
    ]
    for proto in protocols:
        for estimator in estimators:
            errors, seconds = [], 0.0
            for index, (name, image) in enumerate(images):
                for case in proto.cases(as_image(image), index, name):
                    start = time.perf_counter()
                    estimate = measured_noise_level(case, estimator)
                    seconds += time.perf_counter() - start
                    errors.append(255 * (estimate - case.sigma))
            err = np.asarray(errors)
            worst = err[np.argmax(np.abs(err))]
            rows.append(
                [
                    proto.setting,
                    estimator,
                    f"{err.mean():+.2f}",
                    f"{np.abs(err).mean():.2f}",
                    f"{worst:+.2f}",
                    f"{1000 * seconds / len(err):.0f}",
                ]
            )
    return rows


def blind_entries(models, bases, estimators):
    """The blind copies: each model with every estimator, each baseline with the first."""
    out_models, out_bases = [], []
    for entry in models:
        out_models.append(entry)
        for estimator in estimators:
            label = f"{entry.label} (est. {estimator})"
            method = None
            if entry.method is not None:
                named = dataclasses.replace(entry.method, name=label)
                method = blind_method(named, estimator)
            out_models.append(dataclasses.replace(entry, label=label, method=method))
    for base in bases:
        label = f"{base.name} (est. {estimators[0]})"
        out_bases += [base, blind_method(dataclasses.replace(base, name=label), estimators[0])]
    return out_models, out_bases


ESTIMATOR_NOTES = {
    "pca": "`est. pca`: Liu, Tanaka & Okutomi's weak-texture PCA estimator (7x7 patches, "
    "rimkit's default, `rimkit reconstruct --sigma auto`; colour: the mean of the three "
    "channels' estimates)",
    "wavelet": "`est. wavelet`: Donoho's median absolute deviation of the finest diagonal "
    "wavelet band (`skimage.restoration.estimate_sigma`)",
}


SCATTERED_NOTE = (
    "; with these scattered masks no 7x7 patch is whole, so it takes local plane fits through "
    "the observed pixels instead (`rimkit.noise_level`)"
)


def main() -> None:
    p = C.parser(
        __doc__,
        models=["rim-denoise=denoise-gray"],
        baselines="bm3d",
        section=("noise-level", "Blind gray denoising, BSD68: the noise level estimated"),
    )
    p.add_argument("--set", default="eval/BSD68", help="image folder inside --data")
    p.add_argument(
        "--sigmas", type=int, nargs="+", default=list(SIGMAS), help="noise levels (0-255 scale)"
    )
    p.add_argument(
        "--estimators", nargs="+", choices=METHODS, help="default: all (pca with --missing)"
    )
    p.add_argument("--quantised", action="store_true", help="also the 8-bit (clipped) columns")
    p.add_argument("--channels", type=int, choices=[1, 3], default=1, help="gray or RGB images")
    p.add_argument(
        "--missing", type=float, nargs="+", help="inpainting: these fractions of pixels missing"
    )
    args = p.parse_args()
    C.setup(args)
    if args.missing and args.quantised:
        p.error("--quantised applies to denoising; leave it out with --missing")
    if args.missing and "wavelet" in (args.estimators or []):
        p.error("the wavelet estimator takes no mask; use --estimators pca with --missing")
    args.estimators = args.estimators or (["pca"] if args.missing else list(METHODS))
    with C.option_values():
        protocols = [DenoiseProtocol(s, seed=args.seed) for s in args.sigmas]
        if args.missing:
            protocols = [
                InpaintProtocol(f, sigma=s, seed=args.seed)
                for f in args.missing
                for s in args.sigmas
            ]
        if args.quantised:
            protocols += [DenoiseProtocol(s, quantize=True, seed=args.seed) for s in args.sigmas]
    images = C.load(args, args.set, args.channels)
    accuracy = estimator_rows(images, protocols, args.estimators)

    models = C.load_models(args, channels=args.channels)
    bases = C.baselines(args, protocols[0].task, keep_estimates=False)
    models, bases = blind_entries(models, bases, args.estimators)
    methods = [m.method for m in models if m.method] + bases
    result = C.run_images(args, images, protocols, methods, curves=False)
    rows = C.psnr_ssim_rows(result, protocols, models, bases)

    limit = "; --limit" if args.limit else ""
    kind, section = ("gray", "denoise-gray") if args.channels == 1 else ("RGB", "denoise-rgb")
    measured = (
        f"the noisy images of the `{section}` section (float noise, not clipped"
        + ("; `q8`: clipped and rounded to 8 bits" if args.quantised else "")
        + ")"
    )
    if args.missing:
        measured = (
            "inpainting: each setting's fraction of the pixels missing at random (seed + image "
            "index), float noise on the others, the estimators told the mask"
        )
    notes = (
        f"{len(images)} {kind} images of {args.set}{limit}; {measured}. "
        + "; ".join(ESTIMATOR_NOTES[e] for e in args.estimators)
        + (SCATTERED_NOTE if args.missing else "")
        + ". A method marked `est.` is told the estimate from each noisy image instead of the "
        "column's sigma."
    )
    parts = [
        notes,
        "### Estimated sigma minus the true one (0-255 scale)\n\n" + C.table(accuracy),
        "### PSNR (dB) / SSIM\n\n" + C.table(rows),
        C.missing_note(models),
    ]
    C.write(args, args.section, args.title, [p for p in parts if p])


if __name__ == "__main__":
    main()
