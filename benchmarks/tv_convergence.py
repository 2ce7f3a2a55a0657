"""Is TV at its tuned 100 steps at its minimiser? Balanced steps against equal ones.

TV (``rimkit.solvers.TotalVariation``, Chambolle-Pock) runs ``tau = 0.99 r / ||K||``,
``s = 0.99 / (r ||K||)``. Since 2026-12-02 ``r`` follows the weight (``clip(0.5 / sqrt(lambda),
1, 30)``); before, ``r = 1``, which left low-noise deblurring, noiseless super-resolution and
random projections short of the minimiser at 100 steps. This script runs, on the same
measurements of each benchmark's protocol, TV at the tuned weight three ways: equal steps
(``r = 1``) for 100 steps, balanced steps for 100 (what the baseline columns run, but on the
32x32 patch tasks) and balanced steps for 1000 (what they run on the patch tasks, random
projections and lensing, since this section showed 100 short there:
``rimkit.solvers.tuning.TASK_ITERATIONS``), and writes the ``tv-convergence`` section.

    python benchmarks/tv_convergence.py --threads 2 --journal /tmp/j-tv.jsonl   # 36 min, 2 threads
    python benchmarks/tv_convergence.py --images 1 --output /tmp/BENCHMARKS.md   # a quick look
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import _common as C
from mri import load_set

from rimkit.evaluate import (
    DeblurProtocol,
    InpaintProtocol,
    LensingProtocol,
    MRIProtocol,
    ProjectionProtocol,
    SuperResolutionProtocol,
)
from rimkit.evaluate.methods import baseline_method

VARIANTS = {
    "equal steps, 100": {"iterations": 100, "step_ratio": 1.0},
    "balanced, 100": {"iterations": 100},
    "balanced, 1000": {"iterations": 1000},
}


def tv_variants(task: str) -> list:
    """TV at its tuned weight, once per :data:`VARIANTS` entry, named by it."""
    return [
        dataclasses.replace(baseline_method("tv", task, options, keep_estimates=False), name=name)
        for name, options in VARIANTS.items()
    ]


def groups(seed: int, patches: int) -> list[tuple[str, str, list]]:
    """``(task, image set, protocols)``: the settings of the sections whose TV columns move."""
    return [
        ("blur", "eval/Set12", [
            DeblurProtocol(k, s, seed)
            for k in ("gaussian:1.6", "motion:9:30") for s in (2.55, 7.65)
        ]),
        ("inpaint", "eval/Set12", [InpaintProtocol(f, seed=seed) for f in (0.5, 0.8)]),
        ("sr", "eval/Set5", [SuperResolutionProtocol(s, seed) for s in (2, 3, 4)]),
        ("projection", "eval/BSD68", [
            ProjectionProtocol(k, r, seed=seed, patches=patches)
            for k in ("gaussian", "fourier") for r in (0.1, 0.5)
        ]),
        ("lensing", "eval/BSD68", [
            LensingProtocol(r, seed=seed, patches=patches) for r in (0.3, 0.6)
        ]),
        ("mri", "mri:dipy-b0", [MRIProtocol(a, seed=seed) for a in (4.0, 8.0)]),
    ]  # fmt: skip


def main() -> None:
    p = C.plain_parser(__doc__)
    p.add_argument("--data", default=C.DEFAULT_DATA, help=C.DATA_HELP)
    p.add_argument("--images", type=int, default=4, help="first N images of each set")
    p.add_argument("--patches", type=int, default=8, help="32x32 patches per image")
    p.add_argument("--seed", type=int, default=0, help="base seed (image i: seed + i)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--journal",
        metavar="FILE",
        help="record each finished image (a script with several parts, one per task, writes "
        "FILE.PART files); run the same command again to resume a stopped run",
    )
    p.add_argument("--output", default=str(C.BENCHMARKS_MD), help=C.OUTPUT_HELP)
    p.set_defaults(limit=None, journals=[])
    args = p.parse_args()
    C.setup(args)
    if args.images < 1 or args.patches < 1:
        C.fail(f"--images and --patches must be >= 1, got {args.images} and {args.patches}")
    rows = [["setting", "images", *VARIANTS, "balanced 100 - equal 100", "1000 - balanced 100"]]
    with C.option_values():
        tasks = groups(args.seed, args.patches)
    for task, folder, protocols in tasks:
        if folder.startswith("mri:"):
            images = load_set(Path(args.data), folder[4:], args.images)
        else:
            images = C.load(args, folder, channels=1)[: args.images]
        result = C.run_images(args, images, protocols, tv_variants(task), False, part=task)
        count = f"{len(images)} of {folder.split('/')[-1].removeprefix('mri:')}"
        for proto in protocols:
            psnr = [result.mean(proto.setting, name) for name in VARIANTS]
            rows.append([
                f"{task}: {proto.setting}", count, *(C.cell(v) for v in psnr),
                f"{psnr[1] - psnr[0]:+.2f}", f"{psnr[2] - psnr[1]:+.2f}",
            ])  # fmt: skip
            print(rows[-1], flush=True)
    notes = (
        "Mean PSNR (dB) of TV at its tuned weight (`rimkit.solvers.tuning`, with balanced "
        "steps since 2026-12-02: tuned for 100 steps, on the patch tasks for 1000 since session "
        "35), started where each task starts, on the "
        f"first {args.images} images of each set (projections and lensing: {args.patches} "
        "32x32 patches per image; MRI: the dipy b0 slices, columns mask). `balanced, 100` is "
        "how TV runs but on the patch tasks (projections, lensing), where it runs 1000 steps "
        "at a weight tuned for 1000; `balanced, 1000` tells how far 100 is from TV's minimiser; "
        "`equal steps, 100` is the old step rule at today's weights (before 2026-12-02 TV ran with "
        "equal steps at weights tuned for them, mostly 3 to 10 times larger, which kept the "
        "short run near its start: the sections dated earlier show TV so)."
    )
    C.write(args, "tv-convergence", "TV: equal and balanced primal-dual steps",
            [notes, C.table(rows)])  # fmt: skip


if __name__ == "__main__":
    main()
