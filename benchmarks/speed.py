"""Reconstruction speed: seconds per BSD68 image (481x321) of each method, and its ratio to BM3D.

Regenerates the ``speed`` section of BENCHMARKS.md: each method's seconds per image, and its
time as a ratio to BM3D's measured in the same run. Gray denoising at sigma 25 (DnCNN
protocol); each method first runs once on a 64x64 crop (warm-up, not timed), then on every
image; wall-clock seconds of the whole reconstruction (the RIM's T steps, a baseline's
iterations), on the CPU with the stated number of torch threads.

    python benchmarks/speed.py --model rim-denoise=runs/denoise-gray --threads 1
    python benchmarks/speed.py --limit 2 --output /tmp/BENCHMARKS.md   # quick check
"""

from __future__ import annotations

import math

import _common as C
import numpy as np

from rimkit.evaluate import DenoiseProtocol, evaluate


def main() -> None:
    p = C.parser(
        __doc__,
        models=["rim-denoise=denoise-gray"],
        baselines="bm3d,tv,fista-wavelet",
        journal=False,
    )
    p.add_argument("--set", default="eval/BSD68", help="image folder inside --data")
    p.add_argument("--sigma", type=float, default=25.0, help="noise std, 0-255 scale")
    args = p.parse_args()
    C.setup(args)
    with C.option_values():
        protocol = DenoiseProtocol(args.sigma, seed=args.seed)
    models = C.load_models(args, channels=1)
    bases = C.baselines(args, "denoise", keep_estimates=False)
    methods = [m.method for m in models if m.method] + bases
    images = C.load(args, args.set, channels=1)
    warm = [("warm-up", images[0][1][:64, :64])]
    evaluate(warm, [protocol], methods, curves=False, examples=False)
    result = evaluate(
        images, [protocol], methods, curves=False, progress=not args.quiet, examples=False
    )

    seconds = {m: [r["seconds"] for r in result.rows if r["method"] == m] for m in result.methods}
    median = {m: float(np.median(v)) for m, v in seconds.items()}
    reference = median.get("bm3d", math.nan)
    rows = [["method", "median s/image", "mean s/image", "ratio to BM3D", "PSNR (dB)"]]
    for method, present in C.order(models, bases):
        if not present:
            rows.append([method, C.MISSING, C.MISSING, C.MISSING, C.MISSING])
            continue
        ratio = median[method] / reference if reference == reference else math.nan
        rows.append(
            [
                method,
                f"{median[method]:.3f}",
                f"{float(np.mean(seconds[method])):.3f}",
                "-" if math.isnan(ratio) else f"{ratio:.3f}",
                C.cell(result.mean(protocol.setting, method)),
            ]
        )
    shapes = sorted({f"{a.shape[0]}x{a.shape[1]}" for _, a in images})
    notes = (
        f"{len(images)} BSD68 images ({', '.join(shapes)}{'; --limit' if args.limit else ''}), "
        f"gray, sigma {args.sigma:g}. Ratio: median seconds over BM3D's median in this run "
        "(below 1 is faster). TV and FISTA-wavelet: the weight and iteration count tuned on "
        "training images (src/rimkit/solvers/defaults.json); BM3D: the `bm3d` package, "
        "profile np."
    )
    parts = [notes, C.table(rows), C.missing_note(models)]
    C.write(args, "speed", "Reconstruction speed (CPU)", [p for p in parts if p])


if __name__ == "__main__":
    main()
