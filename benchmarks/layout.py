"""Inference time of the RIM cells in the channels-last and the plain (NCHW) memory layout.

The cells keep their activations channels-last (:func:`rimkit.models.utils.to_cell_layout`).
This script times a whole reconstruction (``RIMReconstructor``, trained ``T`` steps) of one
481 x 321 image in both layouts, alternating them in one process, and checks that the two
results agree. Models: the shipped ``denoise-gray``, ``denoise-rgb`` and ``sr`` (its cell runs
at the high resolution), and an untrained MRI cell at its default widths on a 2-channel
(complex) image.

    python benchmarks/layout.py --threads 1     # writes the 'layout' section of BENCHMARKS.md
"""

from __future__ import annotations

import time

import _common as C
import torch

from rimkit.models import RIMConfig
from rimkit.models.utils import cell_layout
from rimkit.operators import Identity
from rimkit.reconstruct import RIMReconstructor
from rimkit.runtime import reuse_freed_memory

LAYOUTS = {"channels-last": torch.channels_last, "NCHW": torch.contiguous_format}


def models() -> list[tuple[str, torch.nn.Module]]:
    from rimkit.zoo import load_model

    out = [(name, load_model(name).model) for name in ("denoise-gray", "denoise-rgb", "sr")]
    torch.manual_seed(0)
    mri = RIMConfig(cell="mri", channels=2, train_steps=8).build()
    for p in mri.cell.out.parameters():  # its last layer starts at zero: both layouts would
        torch.nn.init.normal_(p, std=0.01)  # return the input unchanged and agree trivially
    out.append(("mri cell (untrained, default widths)", mri))
    return out


def time_layouts(model: torch.nn.Module, size: tuple[int, int], repeats: int) -> dict:
    """Best-of-``repeats`` seconds per layout (alternating) and the largest output difference."""
    torch.manual_seed(1)
    y = torch.rand(1, model.channels, *size)
    reconstruct = RIMReconstructor(model.eval())
    best = dict.fromkeys(LAYOUTS, float("inf"))
    finals = {}
    for layout in LAYOUTS.values():  # warm-up
        with cell_layout(layout):
            reconstruct(y[..., :64, :64], Identity(), 25 / 255)
    for _ in range(repeats):
        for name, layout in LAYOUTS.items():
            with cell_layout(layout):
                tic = time.perf_counter()
                finals[name] = reconstruct(y, Identity(), 25 / 255).estimates[-1]
                best[name] = min(best[name], time.perf_counter() - tic)
    diff = (finals["channels-last"] - finals["NCHW"]).abs().max().item()
    return {"seconds": best, "max_diff": diff, "steps": int(model.train_steps)}


def main() -> None:
    p = C.plain_parser(__doc__)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per layout (best kept)")
    p.add_argument(
        "--size", type=int, nargs=2, default=[321, 481], metavar=("H", "W"), help="image size"
    )
    p.add_argument(
        "--output", default=str(C.BENCHMARKS_MD),
        help="the Markdown file whose 'layout' section is replaced (default: BENCHMARKS.md at "
        "the repository root)",
    )  # fmt: skip
    args = p.parse_args()
    C.check_output(args.output)
    reuse_freed_memory()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = [["model", "T", "NCHW s", "channels-last s", "ratio", "max abs difference"]]
    for name, model in models():
        r = time_layouts(model, tuple(args.size), args.repeats)
        s = r["seconds"]
        ratio = s["channels-last"] / s["NCHW"]
        rows.append(
            [
                name,
                r["steps"],
                f"{s['NCHW']:.3f}",
                f"{s['channels-last']:.3f}",
                f"{ratio:.3f}",
                f"{r['max_diff']:.1e}",
            ]
        )
        print(name, rows[-1][2:], flush=True)
    h, w = args.size
    notes = (
        f"One {h}x{w} image, the whole reconstruction (trained T steps), best of "
        f"{args.repeats} runs per layout, the layouts alternating in one process. Ratio: "
        "channels-last seconds over NCHW seconds (below 1 is faster); the last column is "
        "the largest difference between the two final estimates."
    )
    C.write_table("layout", "Memory layout of the cells (CPU inference)", notes, rows, args.output)


if __name__ == "__main__":
    main()
