"""How the command line stores what it made: 8- or 16-bit pictures with the source's white,
values divided by their maximum for a picture of data in their own units, FITS headers that keep
a source's sky coordinates on the output's pixel grid (and mark values on the 0-1 image scale),
and a reconstruction's steps as an animated GIF or numbered PNGs.

Example:
    >>> output_grid("sr", 3), output_grid("mri", 1)
    ((3.0, (0, 0)), None)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE_UNITS_KEY = "RIMUNITS"
"""A FITS keyword ``rimkit degrade`` writes where its output holds the 0-1 image scale."""


def image_units_header(output: Path, header: Any) -> Any:
    """``header`` (or a new one) marked :data:`IMAGE_UNITS_KEY` for a FITS ``output`` of values
    on the 0-1 image scale, so reading it back takes image units; other outputs: as given."""
    from rimkit.io import is_fits

    if not is_fits(output):
        return header
    from astropy.io import fits

    header = fits.Header() if header is None else header.copy()
    header[IMAGE_UNITS_KEY] = ("image", "values on rimkit's 0-1 image scale")
    return header


def picture_of_values(output: Path, units: str) -> bool:
    """Whether ``output`` is an 8-bit picture (it holds ``[0, 1]``) of values in their own
    units, which are divided by their maximum for it."""
    return units == "data" and not keeps_values(str(output))


def picture_encoding(source: str, output: Path, image: np.ndarray) -> tuple[float | None, int]:
    """How a picture output stores what was restored from ``source``: the bits, 16 for a source
    of more than 8 bits where ``output`` can hold them (TIFF, gray PNG / PGM), else 8; and the
    value white is stored as in ``source`` (8- or 16-bit integers) where the output keeps that
    depth and ``image``, in their counts under --units data, fits under it, else ``None`` (a
    picture of values divided by their maximum)."""
    from rimkit.io import stored_white
    from rimkit.writing import can_store_16_bits

    white = stored_white(source)
    if white is None or np.iscomplexobj(image):  # values, or MRI k-space (a .npy)
        return None, 8
    bits = 16 if white > 255 and can_store_16_bits(output, image) else 8
    keeps = white == (65535 if bits == 16 else 255)  # not a PGM's 4095: divided by its maximum
    return (white if keeps and float(np.max(image)) <= white else None), bits


def fits_header(source: str, grid: tuple[float, tuple[int, int]] | None) -> Any:
    """The header a FITS output takes from a FITS ``source``: all but the stored array's
    keywords, and the sky coordinates (WCS) where the output's pixel grid is the source's
    resampled by ``grid[0]`` and cropped by ``grid[1]`` (:func:`rimkit.io.regrid_wcs`);
    without them where ``grid`` is ``None`` (a lensed source's plane, k-space); ``None`` for
    a source of another type."""
    from rimkit.io import is_fits, read_fits_header, regrid_wcs

    if not is_fits(source):
        return None
    if grid is None:
        return read_fits_header(source, geometry=False)
    return regrid_wcs(read_fits_header(source), *grid)


def measurement_grid(
    task: str, scale: float, operator: Any
) -> tuple[float, tuple[int, int]] | None:
    """How a simulated measurement's pixel grid lies on its image's (:func:`fits_header`):
    down-sampled by ``scale``, cropped by a valid blur's margins, or not on the sky's."""
    if task == "blur":
        top, _, left, _ = operator.margins()
        return 1.0, (top, left)
    if task == "sr":
        return 1.0 / scale, (0, 0)
    return output_grid(task, scale)


def output_grid(task: str, scale: float) -> tuple[float, tuple[int, int]] | None:
    """How a restored image's pixel grid lies on its measurement's (:func:`fits_header`):
    the same, super-resolved by ``scale``, or (lensing, MRI) not on the sky's."""
    from rimkit.compare import SAME_GRID_TASKS

    if task in SAME_GRID_TASKS:
        return 1.0, (0, 0)
    return (float(scale), (0, 0)) if task == "sr" else None


def keeps_values(path: str) -> bool:
    """Whether a file holds values as they are (.npy, FITS), not an 8/16-bit picture."""
    from rimkit.io import VALUE_SUFFIXES, file_suffix

    return file_suffix(path) in VALUE_SUFFIXES


def positive_maximum(array: np.ndarray) -> float:
    """The largest value, at least the smallest positive float (a divisor for pictures)."""
    return max(float(np.max(array)), np.finfo(float).tiny)


def write_trajectory(target: Path, frames: list[np.ndarray]) -> None:
    """Write x_1..x_T as an animated GIF (``.gif``) or as numbered PNGs in a folder, where
    the steps past T of an earlier, longer trajectory are removed (no other file is touched)."""
    from PIL import Image

    from rimkit.io import to_uint8
    from rimkit.writing import atomic_write, write_image

    if target.suffix.lower() == ".gif":
        images = [Image.fromarray(to_uint8(f)) for f in frames]
        atomic_write(
            target,
            lambda tmp: images[0].save(
                tmp, format="GIF", save_all=True, append_images=images[1:], duration=150, loop=0
            ),
        )
        return
    target.mkdir(exist_ok=True)
    for t, frame in enumerate(frames, 1):
        write_image(target / f"step-{t:03d}.png", frame, force=True)
    for stale in target.glob("step-*.png"):
        step = stale.stem.removeprefix("step-")
        if step.isdigit() and len(step) >= 3 and int(step) > len(frames):
            stale.unlink()
