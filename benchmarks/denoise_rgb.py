"""Color denoising on CBSD68: our RGB RIM(s) and CBM3D beside the published numbers.

Regenerates the ``denoise-rgb`` section of BENCHMARKS.md: sigma 15 / 25 / 50 under the DnCNN
protocol (float noisy input) and sigma 25 with the noisy input rounded to 8 bits (the RIM
paper's color experiment); PSNR over the three channels of 8-bit outputs, peak 255.

    python benchmarks/denoise_rgb.py --model rim-rgb=runs/denoise-rgb
    python benchmarks/denoise_rgb.py --limit 2 --baselines tv --output /tmp/B.md   # quick check
"""

from __future__ import annotations

import _common as C

from rimkit.evaluate import DenoiseProtocol

# Keys: sigma (unquantised noisy input) or "q25" (8-bit quantised noisy input).
PUBLISHED = {
    # RIM paper (Putzky & Welling), color denoising on CBSD68, sigma 25, quantised input.
    "CBM3D": {"q25": 30.18, 15: 33.52, 25: 30.71, 50: 27.38},  # 15/25/50: DnCNN/DRUNet papers
    "RTF-5": {"q25": 30.57},
    "RIM": {"q25": 30.84},
    # Later papers (CDnCNN: Zhang et al. 2017; DRUNet: Zhang et al. 2021), unquantised input.
    "CDnCNN": {15: 33.89, 25: 31.23, 50: 27.92},
    "DRUNet": {15: 34.30, 25: 31.69, 50: 28.51},
}
COMPARE = {"bm3d": "CBM3D", "rim-rgb": "RIM"}
KEYS = {"s=15": (15, False), "s=25": (25, False), "s=50": (50, False), "qs=25": (25, True)}


def main() -> None:
    p = C.parser(
        __doc__,
        models=["rim-rgb=denoise-rgb"],
        baselines="bm3d",
        section=("denoise-rgb", "Color denoising, CBSD68"),
    )
    p.add_argument("--set", default="eval/CBSD68", help="image folder inside --data")
    p.add_argument(
        "--columns", nargs="+", choices=list(KEYS), default=list(KEYS),
        help="which noise settings to measure (CBM3D costs ~20 s per image and setting)",
    )  # fmt: skip
    args = p.parse_args()
    C.setup(args)
    keys = [KEYS[name] for name in args.columns]
    with C.option_values():
        protocols = [DenoiseProtocol(s, q, args.seed) for s, q in keys]
    models = C.load_models(args, channels=3)
    bases = C.baselines(args, "denoise", keep_estimates=False)
    methods = [m.method for m in models if m.method] + bases
    result, n = C.run(args, args.set, protocols, methods, channels=3, curves=False)

    names = list(args.columns)
    psnr, ssim = [["method", *names]], [["method", *names]]
    for method, present in C.order(models, bases):
        label = f"{'CBM3D' if method == 'bm3d' else method} (ours)"
        if not present:
            psnr.append([label, *[C.MISSING] * len(keys)])
            ssim.append([label, *[C.MISSING] * len(keys)])
            continue
        paper = PUBLISHED.get(COMPARE.get(method, ""), {})
        row, srow = [label], [label]
        for (s, q), proto in zip(keys, protocols, strict=True):
            ours = result.mean(proto.setting, method)
            row.append(C.versus(ours, paper.get(f"q{s}" if q else s), args.tolerance))
            srow.append(C.cell(result.mean(proto.setting, method, "ssim"), 4))
        psnr.append(row)
        ssim.append(srow)
    for name, values in PUBLISHED.items():
        cells = [values.get(f"q{s}" if q else s) for s, q in keys]
        psnr.append([f"{name} (published)", *[C.cell(v) if v else "" for v in cells]])
    notes = (
        f"CBSD68 ({n} images{'; --limit' if args.limit else ''}). `s=`: DnCNN protocol (float "
        "noisy input, seed + image index); `qs=25`: noisy input clipped and rounded to 8 bits, "
        "as in the RIM paper's color table. PSNR of 8-bit RGB outputs, peak 255, averaged over "
        f"images. Differences to the published row in brackets; **far**: more than "
        f"{args.tolerance} dB. CBM3D is `bm3d.bm3d_rgb` (profile np) through rimkit's adapter."
    )
    parts = [
        notes,
        "### PSNR (dB)\n\n" + C.table(psnr),
        "### SSIM (ours)\n\n" + C.table(ssim),
        C.missing_note(models),
    ]
    C.write(args, args.section, args.title, [p for p in parts if p])


if __name__ == "__main__":
    main()
