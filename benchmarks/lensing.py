"""Strong gravitational lensing: RIMs and baselines recover a source behind an SIE lens.

Regenerates the ``lensing`` section of BENCHMARKS.md: 32x32 gray patches drawn at seeded
positions from the BSD68 images (``--patches`` per image) are background sources, each behind
its own lens (:class:`rimkit.evaluate.LensingProtocol`: a singular isothermal ellipsoid with
axis ratio in [0.5, 1], any orientation, external shear up to 0.05, centre within 0.05 of the
source's; the image spans twice the source's field), at each Einstein radius. The default
models were trained on random projections only, so lensing is a transfer test for them (the
paper's claim: one model for many forward models by swapping the likelihood gradient). PSNR of
8-bit outputs at the trained T, and PSNR against step t up to ``--curve-factor`` T.

    python benchmarks/lensing.py --model rim=3task --model gdn=gdn-3task --model ffn=ffn-3task
    python benchmarks/lensing.py --limit 2 --patches 2 --output /tmp/BENCHMARKS.md
    python benchmarks/lensing.py --set galaxy --patches 64 --sigma 5 --section lensing-galaxies

``--set galaxy`` takes the Hubble Deep Field (``galaxy/`` of the data) as the sources: 32x32
crops of real galaxies and the dark sky between them, in gray.
"""

from __future__ import annotations

from pathlib import Path

import _common as C

from rimkit.evaluate import LensingProtocol


def main() -> None:
    p = C.parser(
        __doc__,
        models=["rim=3task", "gdn=gdn-3task", "ffn=ffn-3task"],
        baselines="tv,fista-wavelet,cg-tikhonov",
        section=("lensing", "Strong lensing: transfer to a new forward model"),
    )
    p.add_argument("--set", default="eval/BSD68", help="image folder inside --data")
    p.add_argument(
        "--radii", type=float, nargs="+", default=[0.3, 0.45, 0.6],
        help="Einstein radii, in units of the source patch's width",
    )  # fmt: skip
    p.add_argument("--sigma", type=float, default=0.0, help="noise std, 0-255 scale")
    p.add_argument("--psf", type=float, default=0.0, help="Gaussian PSF width, image pixels")
    p.add_argument("--patches", type=int, default=8, help="32x32 patches per image")
    C.add_curve_factor(p)
    args = p.parse_args()
    C.setup(args)
    models = C.load_models(args, curve_factor=args.curve_factor, channels=1)
    bases = C.baselines(args, "lensing", keep_estimates=False)
    methods = [m.method for m in models if m.method] + bases
    with C.option_values():
        protocols = [
            LensingProtocol(r, args.sigma, args.psf, args.seed, 32, args.patches)
            for r in args.radii
        ]
    result, n = C.run(args, args.set, protocols, methods, channels=1)

    rows = [["setting", *(name for name, _ in C.order(models, bases))]]
    rows += [C.setting_row(result, proto.setting, models, bases) for proto in protocols]
    groups = [("lensing", [p.setting for p in protocols])]
    curve_rows = C.curve_table(result, methods, groups, args.curve_factor)
    last = C.multiple_name(max(m for m in C.CURVE_MULTIPLES if m <= args.curve_factor))

    limit = "; --limit" if args.limit else ""
    notes = (
        f"{n} {Path(args.set).name} image(s){limit}, {args.patches} patches of 32x32 each "
        "(positions and lenses drawn from seed + image index), noise sigma "
        f"{args.sigma:g}/255, PSF {args.psf:g} pixels. Each setting is an Einstein radius in "
        "units of the source patch's width. "
        "PSNR (dB) of 8-bit outputs of the source at each model's trained T, averaged over "
        "patches; source pixels that no image pixel sees can only come from the prior. The "
        "baselines use the weights tuned on training images for lensing at the nearest of "
        "radii 0.3, 0.45 and 0.6 and noise sigma 0, 5 and 15 (`rimkit.solvers.tuning`). No "
        "published numbers: the RIM paper has no lensing experiment (the "
        "lensing RIMs of Morningstar et al. were trained on lensing itself)."
    )
    parts = [
        notes,
        "### Source reconstruction, PSNR (dB)\n\n" + C.table(rows),
        f"### PSNR against step t (mean over radii), up to {last}\n\n" + C.table(curve_rows),
        C.missing_note(models),
    ]
    C.write(args, args.section, args.title, [p for p in parts if p])


if __name__ == "__main__":
    main()
