"""Bicubic super-resolution under three ways of making the low-resolution image.

rimkit's protocol (:func:`rimkit.evaluate.protocols.sr_measurement`) down-samples the RGB image
in double precision (MATLAB ``imresize(im2double(HR), 1/s)``), rounds it to 8 bits once and
scores the Y channel. MATLAB's ``imresize`` of the ``uint8`` HR also rounds and clips between
its row and column passes. SRCNN's and A+'s code take the Y channel of the HR first and
down-sample it in float. This script scores bicubic up-sampling (Y, ``s`` pixels shaved) on
each LR and counts the LR Y pixels the first two differ in, so the protocol's tables can be
read against published ones.

    python benchmarks/sr_protocol.py --threads 1   # writes the 'sr-protocol' section
"""

from __future__ import annotations

import _common as C
import numpy as np
import torch

from rimkit.evaluate.metrics import crop_to_multiple, psnr, quantize, rgb_to_y, shave
from rimkit.evaluate.protocols import sr_measurement
from rimkit.io import from_tensor, to_tensor
from rimkit.operators import bicubic_upsample
from rimkit.operators.bicubic import imresize_matrix

SCALES = (2, 3, 4)
PUBLISHED = {"B100": (29.55, 27.20, 25.96)}
"""Bicubic on B100 as the RIM paper's table quotes it (Huang et al.)."""


def uint8_imresize(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(uint8 HR, 1/scale, 'bicubic')`` of an ``(H, W, C)`` image in [0, 1]:
    rows first, each pass rounded and clipped to 8 bits, as ``imresizemex`` returns ``uint8``.

    Example:
        >>> uint8_imresize(np.full((4, 4, 3), 0.5), 2).shape
        (2, 2, 3)
    """
    rows = imresize_matrix(hr.shape[0], 1 / scale)  # (h, H)
    columns = imresize_matrix(hr.shape[1], 1 / scale)  # (w, W)
    passed = np.clip(np.round(np.einsum("oh,hwc->owc", rows, hr * 255.0)), 0, 255)
    return np.clip(np.round(np.einsum("ow,hwc->hoc", columns, passed)), 0, 255) / 255.0


def bicubic_psnr(lr: np.ndarray, truth: np.ndarray, scale: int) -> float:
    """PSNR on Y of ``imresize(lr, scale)`` rounded to 8 bits, ``scale`` pixels shaved."""
    up = np.clip(from_tensor(bicubic_upsample(to_tensor(lr, torch.float64), scale)), 0, 1)
    return psnr(shave(quantize(up), scale), shave(truth, scale))


def score(image: np.ndarray, scale: int) -> dict[str, float]:
    """Bicubic PSNR of one RGB image under the three LR recipes, and the share of LR Y
    pixels in which MATLAB's ``uint8`` path differs from rimkit's."""
    truth, lr = sr_measurement(image, scale)  # Y of HR and of the 8-bit LR, in [0, 1]
    lr_uint8 = quantize(rgb_to_y(uint8_imresize(crop_to_multiple(image, scale), scale)))
    rows = imresize_matrix(truth.shape[0], 1 / scale)
    columns = imresize_matrix(truth.shape[1], 1 / scale)
    lr_of_y = rows @ truth @ columns.T  # SRCNN: Y of the HR, down-sampled in float
    return {
        "rimkit": bicubic_psnr(lr, truth, scale),
        "uint8": bicubic_psnr(lr_uint8, truth, scale),
        "y-first": bicubic_psnr(lr_of_y, truth, scale),
        "differ": float(np.mean(np.abs(lr_uint8 - lr) > 1e-9)),
    }


def main() -> None:
    p = C.plain_parser(__doc__)
    p.add_argument("--sets", nargs="+", default=["B100"], help="RGB evaluation sets (eval/NAME)")
    p.add_argument("--data", default=C.DEFAULT_DATA, help=C.DATA_HELP)
    p.add_argument("--limit", type=int, help="first N images of each set (quick checks)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--output", default=str(C.BENCHMARKS_MD), help=C.OUTPUT_HELP)
    args = p.parse_args()
    C.setup(args)
    rows = [["set", "scale", "rimkit", "MATLAB uint8", "Y first (SRCNN, A+)", "published",
             "LR Y pixels differing (rimkit, uint8)"]]  # fmt: skip
    for name in args.sets:
        images = [a for _, a in C.load(args, f"eval/{name}") if a.ndim == 3]  # RGB
        for k, scale in enumerate(SCALES):
            scores = [score(image, scale) for image in images]
            mean = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
            published = PUBLISHED.get(name, (None,) * len(SCALES))[k]
            rows.append([
                f"{name} ({len(images)})", f"x{scale}", f"{mean['rimkit']:.4f}",
                f"{mean['uint8']:.4f}", f"{mean['y-first']:.4f}",
                "-" if published is None else f"{published:.2f}", f"{100 * mean['differ']:.1f}%",
            ])  # fmt: skip
            print(rows[-1], flush=True)
    notes = (
        "Bicubic up-sampling (MATLAB `imresize(lr, s)`, rounded to 8 bits), PSNR on the Y "
        "channel with `s` pixels shaved, under three LR recipes: rimkit's protocol (the RGB "
        "image down-sampled in double precision, rounded to 8 bits once, then Y), MATLAB's "
        "`imresize` of the `uint8` image (rounded after the row pass as well), and SRCNN's / "
        "A+'s (Y of the HR, down-sampled in float). The last column: LR Y pixels in which the "
        "first two differ, mostly by one level."
    )
    C.write_table("sr-protocol", "Super-resolution: how the LR image is made", notes, rows,
                  args.output)  # fmt: skip


if __name__ == "__main__":
    main()
