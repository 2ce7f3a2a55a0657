"""Figures of an evaluation: a side-by-side crop grid (Pillow) and PSNR against step t
(matplotlib, the optional extra ``rimkit[plot]``).

Both return PNG bytes, so callers can write them atomically or embed them in a report.

Example:
    >>> import numpy as np
    >>> truth = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    >>> png = crop_grid([("truth", truth), ("noisy", truth[::-1])], crop=32, zoom=2)
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rimkit.evaluate.metrics import to_8bit

__all__ = ["best_window", "convergence_figure", "crop_grid", "have_matplotlib"]

_PAD = 6
_LINE = 13


def best_window(image: np.ndarray, size: int) -> tuple[int, int, int]:
    """``(top, left, size)`` of the ``size x size`` window with the most detail (the largest
    variance among a 3 x 3 grid of candidate positions); ``size`` is cut to the image.

    Example:
        >>> best_window(np.zeros((10, 40)), 16)
        (0, 0, 10)
    """
    h, w = image.shape[:2]
    size = min(size, h, w)
    best, where = -1.0, (0, 0)
    for top in np.linspace(0, h - size, 3).astype(int):
        for left in np.linspace(0, w - size, 3).astype(int):
            var = float(np.var(image[top : top + size, left : left + size]))
            if var > best:
                best, where = var, (int(top), int(left))
    return where[0], where[1], size


def _tile(array: np.ndarray, box: tuple[int, int, int], zoom: int) -> Image.Image:
    top, left, size = box
    crop = to_8bit(array[top : top + size, left : left + size])
    img = Image.fromarray(crop).convert("RGB")
    return img.resize((img.width * zoom, img.height * zoom), Image.NEAREST)


def crop_grid(
    panels: Sequence[tuple[str, np.ndarray]],
    crop: int = 96,
    zoom: int = 2,
    box: tuple[int, int, int] | None = None,
) -> bytes:
    """One row of crops of same-sized images (gray ``(H, W)`` or RGB ``(H, W, 3)`` in
    ``[0, 1]``), each under its label (a ``\\n`` starts a second line), as PNG bytes.

    The crop is ``box = (top, left, size)`` or the most detailed window of the first panel.
    """
    if not panels:
        raise ValueError("a crop grid needs at least one panel")
    shape = panels[0][1].shape[:2]
    for label, array in panels:
        if array.shape[:2] != shape:
            raise ValueError(f"panel {label!r} is {array.shape[:2]}, the first one {shape}")
    box = best_window(panels[0][1], crop) if box is None else box
    tiles = [_tile(array, box, zoom) for _, array in panels]
    lines = max(label.count("\n") + 1 for label, _ in panels)
    tw, th = tiles[0].size
    head = lines * _LINE + _PAD
    canvas = Image.new("RGB", (len(tiles) * (tw + _PAD) + _PAD, th + head + _PAD), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, ((label, _), tile) in enumerate(zip(panels, tiles, strict=True)):
        x = _PAD + i * (tw + _PAD)
        for j, text in enumerate(label.split("\n")):
            draw.text((x, _PAD // 2 + j * _LINE), text, fill="black", font=font)
        canvas.paste(tile, (x, head))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def have_matplotlib() -> bool:
    """Whether the optional plotting extra (matplotlib) is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def convergence_figure(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    trained_steps: int | Sequence[int] | None = None,
    title: str = "PSNR against step t",
) -> bytes | None:
    """PSNR against step ``t`` (1-based), one panel per setting and one line per method, as
    PNG bytes; ``None`` when matplotlib is not installed. A dashed line marks each RIM's
    trained number of steps; the step axis is logarithmic when some method runs over 50.
    """
    if not have_matplotlib():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = [s for s in curves if curves[s]]
    if not settings:
        return None
    cols = min(3, len(settings))
    rows = math.ceil(len(settings) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=100)
    FigureCanvasAgg(fig)
    longest = max(len(c) for s in settings for c in curves[s].values())
    for k, setting in enumerate(settings):
        ax = fig.add_subplot(rows, cols, k + 1)
        for method, values in curves[setting].items():
            steps = np.arange(1, len(values) + 1)
            ax.plot(steps, values, label=method, marker="." if len(values) <= 50 else None)
        marks = [trained_steps] if np.ndim(trained_steps) == 0 else trained_steps
        for mark in (m for m in marks if m):
            ax.axvline(mark, color="grey", linestyle="--", linewidth=0.8)
        if longest > 50:
            ax.set_xscale("log")
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("step t")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
