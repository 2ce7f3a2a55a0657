"""Training throughput and memory of the RIM cells on this machine (issue: training).

Throughput: patches per second of one training step (forward through T steps, backward,
Adam) for the ``cpu`` and ``paper`` denoising cells, the FLOPs of that step counted by
``torch.utils.flop_counter``, and the achieved GFLOP/s as a fraction of the machine's peak
measured in the same process (the larger of a matrix product's and a convolution's rate, see
:func:`peak_gflops`); on a CPU with native bfloat16
(AVX512-BF16 or AMX) both cells again with ``optim.precision: bf16`` (the cell under bfloat16
autocast, :mod:`rimkit.precision`).

Memory: for T in 5, 10, 20, 40, the bytes autograd keeps for the backward pass (counted
exactly with saved-tensor hooks) and the peak resident memory of a fresh process running
one training step, with and without gradient checkpointing across RIM steps, and for the
invertible RIM (i-RIM) with its invert-to-learn backward.

    python benchmarks/train_speed.py            # writes the 'training' section of BENCHMARKS.md
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine_line, plain_parser, write_section

from rimkit.likelihood import GaussianLikelihood
from rimkit.models import RIMConfig, count_parameters, trajectory_loss
from rimkit.operators import Identity
from rimkit.precision import apply_precision, native_bf16

CPU_CELL = RIMConfig(features=32, hidden=64, train_steps=8)
IRIM = RIMConfig(variant="invertible", features=32, hidden=16, train_steps=8)
PAPER_CELL = RIMConfig(features=64, hidden=256, train_steps=20)
CELLS = {
    "cpu (32/64, T=8)": (CPU_CELL, "fp32"),
    "i-RIM (state 16, width 32, T=8)": (IRIM, "fp32"),
    "i-RIM, invert-to-learn": (dataclasses.replace(IRIM, checkpoint=True), "fp32"),
    "paper (64/256, T=20)": (PAPER_CELL, "fp32"),
}
BF16_CELLS = {
    "cpu (32/64, T=8), bf16": (CPU_CELL, "bf16"),
    "paper (64/256, T=20), bf16": (PAPER_CELL, "bf16"),
}
"""Measured where the CPU computes bfloat16 natively (:func:`rimkit.precision.native_bf16`)."""
MEMORY = {
    "cpu cell": CPU_CELL,
    "cpu cell, checkpointing": dataclasses.replace(CPU_CELL, checkpoint=True),
    "i-RIM, invert-to-learn": dataclasses.replace(IRIM, checkpoint=True),
}
"""The models of the memory table, each measured at every T."""


def best_seconds(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - tic)
    return best


def peak_gflops(dtype: torch.dtype = torch.float32, repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of a 2048x2048 matrix product and of a 3x3 convolution (128 -> 256 channels,
    8 images of 64x64, the kind of layer the cells are made of) in ``dtype``, best of
    ``repeats``: the machine's reachable rate, against which a cell's rate is read."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    conv = torch.nn.Conv2d(128, 256, 3, padding=1).to(dtype)
    x = torch.randn(8, 128, 64, 64, dtype=dtype)
    with torch.no_grad():
        matmul = 2 * n**3 / best_seconds(lambda: a @ b, repeats)
        conv_flops = 2 * 8 * 64 * 64 * 256 * 128 * 9
        convolution = conv_flops / best_seconds(lambda: conv(x), repeats)
    return {"matmul": matmul / 1e9, "conv": convolution / 1e9}


def train_step(model, x, y, opt) -> torch.Tensor:
    loss = trajectory_loss(model(GaussianLikelihood(Identity(), y, 0.1), x0=y), x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def throughput(cfg: RIMConfig, batch: int, repeats: int, precision: str = "fp32") -> dict:
    torch.manual_seed(0)
    model = apply_precision(cfg.build(), precision, "cpu")
    opt = torch.optim.Adam(model.parameters())
    x = torch.rand(batch, 1, 32, 32)
    y = x + 0.1 * torch.randn_like(x)
    with FlopCounterMode(display=False) as counter:
        train_step(model, x, y, opt)
    flops = counter.get_total_flops()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        train_step(model, x, y, opt)
        times.append(time.perf_counter() - tic)
    best = min(times)
    return {
        "params": count_parameters(model),
        "patches_per_s": batch / best,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / best / 1e9,
    }


def saved_bytes(cfg: RIMConfig, steps: int) -> int:
    torch.manual_seed(0)
    model = dataclasses.replace(cfg, train_steps=steps).build()
    x = torch.rand(32, 1, 32, 32)
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = trajectory_loss(model(GaussianLikelihood(Identity(), x, 0.1), x0=x), x)
    loss.backward()
    return total


def peak_rss_child(cfg: RIMConfig, steps: int) -> float:
    """Growth of the peak resident memory (MB, ``VmHWM``) of a fresh process during one
    training step. (``getrusage``'s maxrss would start at the parent's size after exec.)"""
    code = (
        "import torch;"
        "from rimkit.models import RIMConfig, trajectory_loss;"
        "from rimkit.likelihood import GaussianLikelihood;"
        "from rimkit.operators import Identity;"
        "hwm=lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
        ".split()[1]);"
        f"m=RIMConfig.from_dict({dataclasses.replace(cfg, train_steps=steps).to_dict()!r})"
        ".build();"
        "x=torch.rand(32,1,32,32);"
        "base=hwm();"
        "trajectory_loss(m(GaussianLikelihood(Identity(),x,0.1),x0=x),x).backward();"
        "print((hwm()-base)/1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = plain_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per cell (best kept)")
    parser.add_argument("--batch", type=int, default=32, help="32x32 patches per training step")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    native = native_bf16("cpu")
    peaks = {"fp32": peak_gflops(torch.float32)}
    if native:
        peaks["bf16"] = peak_gflops(torch.bfloat16)
    peak_text = "; ".join(
        f"{p}: {v['matmul']:.0f} (matrix product) and {v['conv']:.0f} (convolution)"
        for p, v in peaks.items()
    )
    rows = [
        "| cell | parameters | patches/s | GFLOP per step | achieved GFLOP/s | of peak |",
        "|---|---|---|---|---|---|",
    ]
    results = {}
    cells = {**CELLS, **(BF16_CELLS if native else {})}
    for name, (cfg, precision) in cells.items():
        r = throughput(cfg, args.batch, 1 if "paper" in name else args.repeats, precision)
        results[name] = r
        rows.append(
            f"| {name} | {r['params']:,} | {r['patches_per_s']:.1f} | {r['gflop_per_step']:.1f} "
            f"| {r['gflops']:.0f} | {r['gflops'] / max(peaks[precision].values()):.0%} |"
        )
    heads = [f"saved, {name} (MB)" for name in MEMORY] + [f"peak RSS, {n} (MB)" for n in MEMORY]
    mem = ["| T | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for steps in (5, 10, 20, 40):
        saved = [saved_bytes(cfg, steps) / 2**20 for cfg in MEMORY.values()]
        rss = [peak_rss_child(cfg, steps) for cfg in MEMORY.values()]
        mem.append(f"| {steps} | " + " | ".join(f"{v:.1f}" for v in saved + rss) + " |")
    flags = f" --threads {args.threads}" if args.threads else ""
    text = "\n".join(
        [
            "## Training throughput and memory",
            "",
            machine_line(),
            f"Command: `python benchmarks/train_speed.py{flags}` (batch {args.batch} of 32x32 gray "
            f"patches, denoising, Adam; best of {args.repeats} steps for each model but the "
            f"paper cell, one for it). Peak GFLOP/s measured in the same process (a 2048x2048 "
            f"matrix product and a 3x3 convolution of 128 to 256 channels on 8 images of 64x64, "
            f"best of 10; 'of peak' is a row's rate over the larger of its precision): "
            f"**{peak_text}**. The bf16 rows run the cell under bfloat16 autocast "
            "(`optim.precision: bf16`; measured where the CPU has AVX512-BF16 or AMX) and count "
            "the same FLOPs as the fp32 ones.",
            "",
            *rows,
            "",
            "Memory of one training step (batch 32, 32x32) of the cpu cell and the i-RIM "
            "against the number of steps T. 'Saved' counts every tensor autograd keeps for the "
            "backward pass (exact); peak RSS is the growth of a fresh process's resident memory "
            "during the step. The i-RIM's invert-to-learn backward keeps only the last state "
            "and recomputes each step from it, backwards (`rimkit.models.invertible`); what it "
            "saves still grows by what the loss keeps of each step's estimate (two float32 tensors "
            "of 32 patches of 32 x 32, 0.25 MB a step).",
            "",
            *mem,
        ]
    )
    print(text)
    print(json.dumps(results, indent=1), file=sys.stderr)
    if not args.no_write:
        write_section("training", text)


if __name__ == "__main__":
    main()
