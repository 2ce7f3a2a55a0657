"""Where a RIM's error on random projections lies: in the measured subspace or its null space.

Regenerates the ``projection-subspaces`` section of BENCHMARKS.md. On the patches and matrix
projections of the ``projections`` section (Gaussian and +-1 Bernoulli, ``y = A x + n``), each
model's estimate ``x_T`` (or a baseline's, ``--baselines``) is scored as it is and with one part
of its error ``e = x_T - x`` taken away, ``P = A^T (A A^T)^-1 A`` being the projector onto the
row space of ``A``: ``range exact`` is ``x_T - P e`` (only the error the measurement cannot see
is left, the prior's share; without noise this is ``x_T`` made consistent with ``y``),
``null exact`` is ``x_T - (I - P) e`` (only the error in what was measured is left, the
data-consistency share). Both are oracles, for diagnosis only. PSNR of 8-bit outputs at the
trained T.

    python benchmarks/projection_subspaces.py --model rim=3task --model gdn=gdn-3task
    python benchmarks/projection_subspaces.py --sigmas 0 15 --limit 2 --patches 2 \\
        --output /tmp/BENCHMARKS.md
"""

from __future__ import annotations

from collections.abc import Callable

import _common as C
import torch

from rimkit.evaluate import Method, ProjectionProtocol
from rimkit.evaluate.protocols import Case

KINDS = ("gaussian", "bernoulli")
"""The matrix ensembles, whose row-space projector is ``A^T (A A^T)^-1 A`` for the stored
``A``; the Fourier rows (complex, conjugate pairs) are left out."""
PARTS = ("range exact", "null exact")


def row_space_part(case: Case, error: torch.Tensor) -> torch.Tensor:
    """``P e`` for the matrix ``A`` of ``case``: ``e`` projected onto the row space of ``A``.

    Example:
        >>> import numpy as np
        >>> p = ProjectionProtocol("gaussian", 0.5, patch=4, patches=1)
        >>> case = p.cases(np.random.rand(8, 8), 0, "img")[0]
        >>> e = torch.rand(1, 1, 4, 4, dtype=torch.float64)
        >>> pe = row_space_part(case, e)
        >>> bool(torch.allclose(row_space_part(case, pe), pe))  # a projector: P P e = P e
        True
    """
    a = case.operator.matrix.reshape(-1, error.numel()).to(error)  # (m, n)
    ae = a @ error.reshape(-1, 1)  # (m, 1)
    return (a.T @ torch.linalg.solve(a @ a.T, ae)).reshape(error.shape)  # (1, C, H, W)


def split_methods(method: Method) -> list[Method]:
    """``method`` and its two oracles (:data:`PARTS`), which reuse its estimate of each case
    and the row-space part ``P e`` of its error."""
    last: dict[str, object] = {}

    def parts(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
        if last.get("case") is not case:
            estimates = method.run(case)
            x = estimates[(method.report_step or len(estimates)) - 1].to(case.truth)
            last.update(case=case, x=x, seen=row_space_part(case, x - case.truth))
        return last["x"], last["seen"]  # (1, C, H, W) each

    def scored(part: str) -> Callable[[Case], list[torch.Tensor]]:
        def run(case: Case) -> list[torch.Tensor]:
            x, seen = parts(case)
            return [{"": x, PARTS[0]: x - seen, PARTS[1]: case.truth + seen}[part]]

        return run

    return [
        Method(
            f"{method.name}, {part}".removesuffix(", "),
            scored(part),
            fingerprint=method.fingerprint,
        )
        for part in ("", *PARTS)
    ]


def main() -> None:
    p = C.parser(
        __doc__,
        models=["rim=3task", "gdn=gdn-3task"],
        baselines="none",
        section=(
            "projection-subspaces",
            "Random projections: the error in and out of the row space",
        ),
    )
    p.add_argument("--set", default="eval/BSD68", help="image folder inside --data")
    C.add_ratios(p)
    p.add_argument(
        "--sigmas", type=float, nargs="+", default=[0.0, 15.0],
        help="noise stds of the measurements, 0-255 scale",
    )  # fmt: skip
    p.add_argument("--patches", type=int, default=8, help="32x32 patches per image")
    args = p.parse_args()
    C.setup(args)
    models = C.load_models(args, channels=1)
    bases = C.baselines(args, "projection", keep_estimates=False)
    measured = [(e.label, e.method) for e in models] + [(m.name, m) for m in bases]
    methods = [split for _, m in measured if m for split in split_methods(m)]
    with C.option_values():
        protocols = [
            ProjectionProtocol(k, r, s, args.seed, 32, args.patches)
            for s in args.sigmas
            for k in KINDS
            for r in args.ratios
        ]
    result, n = C.run(args, args.set, protocols, methods, channels=1, curves=False)

    header = ["setting"]
    for label, _ in measured:
        header += [label, *(f"{label}, {part}" for part in PARTS)]
    rows = [header]
    for proto in protocols:
        row = [proto.setting]
        for label, method in measured:
            names = [label, *(f"{label}, {part}" for part in PARTS)]
            row += [C.cell(result.mean(proto.setting, x)) if method else C.MISSING for x in names]
        rows.append(row)

    limit = "; --limit" if args.limit else ""
    notes = (
        f"{n} images{limit}, {args.patches} patches of 32x32 each, positions and projections "
        "drawn from seed + image index as in the projections section (the same patches and "
        "matrices at the same noise level). PSNR (dB) of 8-bit outputs at each model's "
        "trained T, averaged over patches. `range exact`: the estimate with its error in the "
        "row space of A removed (the error left is the null space's, the prior's share); "
        "`null exact`: with its error in the null space removed (the error left is the "
        "measured part's). Oracles for diagnosis, not methods."
    )
    parts = [notes, "### PSNR (dB)\n\n" + C.table(rows), C.missing_note(models)]
    C.write(args, args.section, args.title, [p for p in parts if p])


if __name__ == "__main__":
    main()
