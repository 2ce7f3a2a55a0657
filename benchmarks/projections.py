"""Random projections and transfer to inpainting and denoising: RIM, GDN, FFN on 32x32 patches.

Regenerates the ``projections`` section of BENCHMARKS.md, the RIM paper's compressed-sensing
experiment: 32x32 gray patches drawn at seeded positions from the BSD68 images (``--patches``
per image), one random projection each (Gaussian, +-1 Bernoulli, random Fourier rows) at each
ratio m/n; then the same models on inpainting and denoising, tasks they never saw. PSNR of
8-bit outputs at the trained T, and PSNR against step t up to 2T (``--curve-factor``).

    python benchmarks/projections.py --model rim=runs/3task --model gdn=runs/gdn-3task \\
        --model ffn=runs/ffn-3task
    python benchmarks/projections.py --limit 2 --patches 2 --output /tmp/BENCHMARKS.md
"""

from __future__ import annotations

import _common as C

from rimkit.evaluate import DenoiseProtocol, InpaintProtocol, ProjectionProtocol
from rimkit.operators import PROJECTION_KINDS

# The RIM paper shows this experiment as figures only (no table to quote): RIM above FFN and
# GDN for all three ensembles, still improving past the 20 trained steps, and transferring to
# inpainting without retraining. No published numbers are typed in here.


def main() -> None:
    p = C.parser(
        __doc__,
        models=["rim=3task", "gdn=gdn-3task", "ffn=ffn-3task"],
        baselines="tv",
        section=("projections", "Random projections and transfer"),
    )
    p.add_argument("--set", default="eval/BSD68", help="image folder inside --data")
    C.add_ratios(p)
    p.add_argument(
        "--fractions", type=float, nargs="+", default=[0.5, 0.8],
        help="missing fractions of the transfer to inpainting",
    )  # fmt: skip
    p.add_argument("--sigma", type=float, default=0.0, help="noise std, 0-255 scale")
    p.add_argument(
        "--denoise-sigmas", type=float, nargs="+", default=[25.0],
        help="noise levels (0-255) of the transfer to denoising",
    )  # fmt: skip
    p.add_argument("--patches", type=int, default=8, help="32x32 patches per image")
    C.add_curve_factor(p)
    args = p.parse_args()
    C.setup(args)
    models = C.load_models(args, curve_factor=args.curve_factor, channels=1)
    bases = C.baselines(args, "projection", keep_estimates=False)
    methods = [m.method for m in models if m.method] + bases
    with C.option_values():
        projection = [
            ProjectionProtocol(k, r, args.sigma, args.seed, 32, args.patches)
            for k in PROJECTION_KINDS
            for r in args.ratios
        ]
        inpaint = [
            InpaintProtocol(f, args.sigma, args.seed, 32, args.patches) for f in args.fractions
        ]
        denoise = [
            DenoiseProtocol(s, seed=args.seed, patch=32, patches=args.patches)
            for s in args.denoise_sigmas
        ]
    result, n = C.run(args, args.set, projection + inpaint + denoise, methods, channels=1)

    header = ["setting", *(name for name, _ in C.order(models, bases))]
    tables = {"projection": [header], "inpaint": [header], "denoise": [header]}
    for proto in projection + inpaint + denoise:
        tables[proto.task].append(C.setting_row(result, proto.setting, models, bases))

    groups = [(k, [p.setting for p in projection if p.kind == k]) for k in PROJECTION_KINDS]
    groups.append(("inpaint", [p.setting for p in inpaint]))
    groups.append(("denoise", [p.setting for p in denoise]))
    curve_rows = C.curve_table(result, methods, groups, args.curve_factor)
    last = C.multiple_name(max(m for m in C.CURVE_MULTIPLES if m <= args.curve_factor))

    limit = "; --limit" if args.limit else ""
    notes = (
        f"{n} BSD68 images{limit}, {args.patches} patches of 32x32 each (positions and "
        f"projections drawn from seed + image index), noise sigma {args.sigma:g}/255. PSNR "
        "(dB) of 8-bit outputs at each model's trained T, averaged over patches. The models "
        "were trained on random projections only; inpainting (missing fraction, 32x32 "
        "patches) and denoising (the same patch positions, the noise level in each row) are "
        "transfer tests. TV uses the weights tuned on training images for the nearest "
        "setting. The RIM paper shows this experiment as figures, so no published numbers "
        "are quoted."
    )
    parts = [
        notes,
        "### Random projections, PSNR (dB)\n\n" + C.table(tables["projection"]),
        "### Transfer to inpainting, PSNR (dB)\n\n" + C.table(tables["inpaint"]),
        "### Transfer to denoising, PSNR (dB)\n\n" + C.table(tables["denoise"]),
        f"### PSNR against step t (mean over ratios / fractions), up to {last}\n\n"
        + C.table(curve_rows),
        C.missing_note(models),
    ]
    C.write(args, args.section, args.title, [p for p in parts if p])


if __name__ == "__main__":
    main()
