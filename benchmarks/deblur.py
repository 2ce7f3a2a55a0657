"""Non-blind deblurring: RIMs and classical baselines on gray Set12.

Regenerates the ``deblur`` section of BENCHMARKS.md. Each image is blurred by a named kernel
with circular boundaries, as IRCNN and DPIR synthesise their inputs, then Gaussian noise of
sigma 2.55 or 7.65 (1 % and 3 % of the range, DPIR's levels) is added in float, not clipped
(:class:`rimkit.evaluate.DeblurProtocol`, noise drawn from seed + image index). Kernels:
Gaussian of std 1.6 px (IRCNN's) and 2.4 px, linear motion of 9 px at 30 degrees and of 15 px
at 120 degrees. PSNR (dB) and SSIM of 8-bit outputs at each model's trained T, no border shaved.
The shipped ``deblur`` model was trained on Gaussian and motion blur of BSDS300 patches;
``3task``, trained on random projections only, deblurs by transfer (its likelihood gradient
swapped, nothing else).

With ``--boundary valid`` each image is blurred as a camera blurs a scene that goes on past
its edges: ``y`` keeps only the pixels whose kernel footprint lies inside the image, and the
scores cover that field of view. ``--circular-too`` adds each model told circular boundaries
on the same ``y`` (what a method that assumes them does with a photo), its estimate extended
by repeating its edges to the size of ``x`` before the same scores.

    python benchmarks/deblur.py --model deblur --model 3task
    python benchmarks/deblur.py --boundary valid --circular-too --section deblur-valid
    python benchmarks/deblur.py --limit 2 --kernels gaussian:1.6 --output /tmp/BENCHMARKS.md
"""

from __future__ import annotations

import dataclasses

import _common as C
from torch import Tensor
from torch.nn import functional as F

from rimkit.evaluate import DeblurProtocol
from rimkit.evaluate.defaults import DEFAULT_SIGMAS
from rimkit.evaluate.protocols import Case
from rimkit.operators import Blur
from rimkit.operators.blur import BOUNDARIES

KERNELS = ("gaussian:1.6", "gaussian:2.4", "motion:9:30", "motion:15:120")


def circular_assumed(entry: C.ModelEntry) -> C.ModelEntry:
    """``entry`` told circular boundaries whatever the case's are, its estimates extended to
    the size of ``x`` by repeating their edges."""
    label = f"{entry.label} (circular assumed)"
    if entry.method is None:
        return dataclasses.replace(entry, label=label)
    inner = entry.method

    def run(case: Case) -> list[Tensor]:
        valid = case.operator
        told = dataclasses.replace(case, operator=Blur(valid.kernel, "circular"))
        top, bottom, left, right = valid.margins()
        return [F.pad(x, (left, right, top, bottom), mode="replicate") for x in inner.run(told)]

    method = dataclasses.replace(inner, name=label, run=run, fingerprint=inner.fingerprint + "c")
    return dataclasses.replace(entry, label=label, method=method)


def main() -> None:
    p = C.parser(
        __doc__,
        models=["deblur", "3task"],
        baselines="tv,fista-wavelet,cg-tikhonov",
        section=("deblur", "Non-blind deblurring, Set12"),
    )
    p.add_argument("--set", default="eval/Set12", help="image folder inside --data")
    p.add_argument(
        "--kernels", nargs="+", default=list(KERNELS), metavar="SPEC",
        help="blur kernels: gaussian:STD or motion:LENGTH:ANGLE",
    )  # fmt: skip
    p.add_argument(
        "--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS["blur"]),
        help="noise levels (0-255 scale)",
    )  # fmt: skip
    p.add_argument(
        "--boundary", default="circular", choices=BOUNDARIES, help="how the images are blurred"
    )
    p.add_argument(
        "--circular-too",
        action="store_true",
        help="also each model told circular boundaries (with --boundary valid)",
    )
    args = p.parse_args()
    C.setup(args)
    if args.circular_too and args.boundary != "valid":
        C.fail("--circular-too compares with --boundary valid; give both")
    models = C.load_models(args, channels=1)
    if args.circular_too:
        models = [m for entry in models for m in (entry, circular_assumed(entry))]
    bases = C.baselines(args, "blur", keep_estimates=False)
    methods = [m.method for m in models if m.method] + bases
    with C.option_values():
        protocols = [
            DeblurProtocol(k, s, args.seed, args.boundary)
            for k in args.kernels
            for s in args.sigmas
        ]
    result, n = C.run(args, args.set, protocols, methods, channels=1, curves=False)

    rows = C.psnr_ssim_rows(result, protocols, models, bases)
    limit = "; --limit" if args.limit else ""
    edges = (
        " Blurred with valid boundaries: y is the part of the blurred image that sees no pixel "
        "outside it (smaller than the image by the kernel size minus one), every method "
        "reconstructs the image past y's edges from a start that repeats them, and the scores "
        "cover y's field of view."
        if args.boundary == "valid"
        else ""
    )
    if args.circular_too:
        edges += (
            " `(circular assumed)`: the model told circular boundaries on the same y, its "
            "estimate extended by repeating its edges before scoring (the margins are shaved)."
        )
    notes = (
        f"{n} gray images of {args.set}{limit}.{edges} The baselines use the weights tuned on "
        "training crops for deblurring at sigma 2.55 and 7.65 (Gaussian and motion kernels; "
        "the nearest level, `rimkit.solvers.tuning`), starting at the blurred image. No "
        "published RIM numbers: the RIM paper has no deblurring experiment; IRCNN / DPIR "
        "measure other kernels (Levin et al.'s eight), which rimkit does not ship."
    )
    parts = [notes, "### PSNR (dB) / SSIM\n\n" + C.table(rows), C.missing_note(models)]
    C.write(args, args.section, args.title, [p for p in parts if p])


if __name__ == "__main__":
    main()
