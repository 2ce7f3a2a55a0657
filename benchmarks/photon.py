"""Denoising photon counts: one estimated sigma against the generalised Anscombe transform.

A detector counts ``z = gain * Poisson(peak * x) + N(0, read_noise^2) + offset`` for a clean
image ``x`` in [0, 1]. Each method denoises ``z`` in counts (``units="data"``) told one
noise level estimated from ``z`` (``sigma="auto"``), and through the transform
(``photons=PhotonNoise(gain, read_noise, offset)``, :mod:`rimkit.photon`); the RIM also with
the gain and read noise estimated from ``z`` (``PhotonNoise.estimate``, ``--gain auto``).
PSNR over the signal's range ``gain * peak`` against the noise-free counts
``gain * peak * x + offset``.

Scenes: ``spots`` (bright Gaussian spots on a dark field, a fluorescence-like scene made here,
seed 0), scikit-image's ``cell`` (a microscope image) and ``camera``, each 256x256 gray.

    python benchmarks/photon.py --threads 1      # writes the 'photon' section of BENCHMARKS.md
"""

from __future__ import annotations

import warnings

import _common as C
import numpy as np
import torch

from rimkit.photon import PhotonNoise
from rimkit.pipeline import restore


def spots(n: int = 256, count: int = 40, seed: int = 0) -> np.ndarray:
    """Bright Gaussian spots (radius 3-10 px) on a dark field, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    image = np.zeros((n, n))
    for _ in range(count):
        cy, cx, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(3, 10)
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return image / image.max()


def scenes() -> dict[str, np.ndarray]:
    from skimage import data
    from skimage.transform import resize

    def square(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float64)
        image = resize(image, (256, 256), anti_aliasing=True)
        return (image - image.min()) / (image.max() - image.min())

    return {"spots": spots(), "cell": square(data.cell()), "camera": square(data.camera())}


def psnr(estimate: np.ndarray, truth: np.ndarray, span: float) -> str:
    """PSNR (dB) over the signal's range ``span``, two decimals."""
    return f"{10 * np.log10(span**2 / np.mean((estimate - truth) ** 2)):.2f}"


def main() -> None:
    p = C.plain_parser(__doc__)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--peaks", type=float, nargs="+", default=[10, 30, 100], help="photons")
    p.add_argument("--gain", type=float, default=2.0, help="counts per photon (2)")
    p.add_argument("--read-noise", type=float, default=2.0, help="std in counts (2)")
    p.add_argument("--offset", type=float, default=100.0, help="dark level in counts (100)")
    p.add_argument("--model", default="denoise-gray", help="the RIM (denoise-gray)")
    p.add_argument("--baseline", default="tv", help="a classical baseline beside it (tv)")
    p.add_argument(
        "--output", default=str(C.BENCHMARKS_MD),
        help="the Markdown file whose 'photon' section is replaced (default: BENCHMARKS.md)",
    )  # fmt: skip
    args = p.parse_args()
    C.check_output(args.output)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from rimkit.zoo import load_model

    model = load_model(args.model).model
    detector = PhotonNoise(args.gain, args.read_noise, args.offset)
    methods = [(args.model, model, None), (args.baseline, None, args.baseline)]
    header = ["scene", "peak (photons)", "noisy"]
    for name, _, _ in methods:
        header += [f"{name}, one sigma", f"{name}, Anscombe"]
    header += [f"{args.model}, Anscombe, detector estimated", "estimated gain / read noise"]
    rows = [header]
    for scene_index, (scene, x) in enumerate(scenes().items()):
        for peak in args.peaks:
            rng = np.random.default_rng([scene_index, int(peak)])
            photons = peak * x
            z = args.gain * rng.poisson(photons) + rng.normal(0, args.read_noise, x.shape)
            z = z + args.offset
            truth = args.gain * photons + args.offset
            span = args.gain * peak
            row = [scene, f"{peak:g}", psnr(z, truth, span)]
            for _, rim, baseline in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the notes on noise far below the floor
                    plain = restore(z, "denoise", rim, baseline=baseline, units="data")
                    counted = restore(
                        z, "denoise", rim, baseline=baseline, units="data", photons=detector
                    )
                row += [psnr(plain.image, truth, span), psnr(counted.image, truth, span)]
            found = PhotonNoise.estimate(z, offset=args.offset)  # as --gain auto does
            estimated = restore(z, "denoise", model, units="data", photons=found)
            row += [
                psnr(estimated.image, truth, span),
                f"{found.gain:.2f} / {found.read_noise:.2f}",
            ]
            rows.append(row)
            print(row, flush=True)
    notes = (
        f"A detector of gain {args.gain:g} counts per photon, read noise {args.read_noise:g} "
        f"counts and dark level {args.offset:g} counts; each scene 256x256 gray, scaled so "
        "its brightest pixel holds the peak's photons (noise seeded by scene and peak). "
        "PSNR (dB) over the signal's range against the noise-free counts. 'one sigma': "
        "told the noise level estimated from the counts (sigma='auto', the default for "
        "denoising); 'Anscombe': through the generalised Anscombe transform and its "
        "unbiased inverse (`--noise poisson`, `rimkit.photon`), told the detector, or with "
        "its gain and read noise estimated from the counts (`--gain auto`, "
        "`PhotonNoise.estimate`; the offset told). `spots` is made here "
        "(bright spots on a dark field, fluorescence-like); `cell` and `camera` ship with "
        "scikit-image."
    )
    C.write_table(
        "photon", "Denoising photon counts (Poisson-Gaussian noise)", notes, rows, args.output
    )


if __name__ == "__main__":
    main()
