"""Image folders: decode once, keep as uint8 in memory (uint16 for images with more than 8
bits: 16-bit files, FITS, float ``.npy``; an 8-bit file stays 8-bit, its gray conversion
rounded), hand out ``[0, 1]`` float tensors. FITS images are divided by their largest value
(:func:`read_folder_image`).

Example:
    >>> import numpy as np, tempfile, os
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     Image.fromarray(np.full((8, 9), 40 * i, np.uint8)).save(os.path.join(root, f"{i}.png"))
    >>> folder = ImageFolder(root)
    >>> len(folder), folder[2].shape, round(folder[2].max().item(), 4)
    (3, torch.Size([1, 8, 9]), 0.3137)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rimkit.io import (
    FITS_SUFFIXES,
    IMAGE_SUFFIXES,
    check_image_range,
    file_suffix,
    is_fits,
    read_image,
    stored_white,
    to_uint8,
)

FOLDER_SUFFIXES = (*IMAGE_SUFFIXES, ".npy", *FITS_SUFFIXES)

OTHER_IMAGE_SUFFIXES = frozenset(
    {".pbm", ".jp2", ".j2k", ".heic", ".heif", ".avif"}
    | {".jxl", ".dng", ".cr2", ".nef", ".arw", ".raw", ".exr", ".hdr", ".dcm", ".nii", ".nii.gz"}
    | {".tga", ".psd", ".ico"}
)
"""Image formats a folder's reader skips (with a note): other pictures, raw, HDR, medical."""

STORED_WHITE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
"""The types images are kept in, and the value of white in each."""

DARK_PEAK = 1 / 16
"""An image whose largest value lies below this is noted as nearly black (12-bit data in a
16-bit file peaks at 4095 / 65535)."""


def to_stored(array: np.ndarray) -> np.ndarray:
    """An image in ``[0, 1]`` as kept in memory: uint8 where it holds 8-bit values (within
    1e-3 of a level), else uint16, so a 16-bit file keeps its precision.

    Example:
        >>> to_stored(np.array([0.0, 1.0, 128 / 255])).dtype, to_stored(np.array([0.5])).dtype
        (dtype('uint8'), dtype('uint16'))
    """
    clipped = np.clip(array, 0.0, 1.0)
    levels = clipped * 255.0
    if not levels.size or float(np.abs(levels - np.round(levels)).max()) < 1e-3:
        return np.round(levels).astype(np.uint8)
    return np.round(clipped * 65535.0).astype(np.uint16)


def as_unit_float(stored: np.ndarray) -> Tensor:
    """A kept image (or window of one) as a float32 tensor in ``[0, 1]``."""
    return torch.from_numpy(stored.astype(np.float32)) / STORED_WHITE[stored.dtype]


def read_folder_image(path: Path, gray: bool | None = None) -> np.ndarray:
    """One image of a training or evaluation folder in ``[0, 1]``, checked: real, with
    ``.npy`` arrays within the image range; a FITS image (its own units) divided by its
    largest value and clipped to ``[0, 1]`` (a sky's negative noise to 0)."""
    array = read_image(path, gray=gray)
    if np.iscomplexobj(array):
        raise ValueError(f"{str(path)!r} holds complex values; images to train on are real")
    if not is_fits(path):
        try:
            check_image_range(array, str(path), data_units=False)
        except ValueError:
            high = float(np.abs(array).max())
            raise ValueError(
                f"{str(path)!r} holds values up to {high:g}; images in a folder are in [0, 1] "
                "(.npy) or 8/16-bit: divide it by its maximum, or store data of another scale "
                "as FITS (each divided by its largest value)"
            ) from None
        return array
    peak = float(array.max())
    if not peak > 0:
        raise ValueError(f"{str(path)!r} has no positive value to scale the image by")
    return np.clip(array / peak, 0.0, 1.0)


def list_images(root: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``root`` (and its sub-folders), sorted by path."""
    root = Path(root)
    if root.exists() and not (root.is_file() or root.is_dir()):
        raise ValueError(
            f"{str(root)!r} is not a folder (a device or a pipe); give a folder of images"
        )
    if root.is_file():
        raise ValueError(
            f"{str(root)!r} is a file; give the folder of images it lies in (or a 3-D volume, "
            ".npy / .npz, where a volume is taken)"
        )
    if not root.is_dir():
        raise ValueError(
            f"image folder {str(root)!r} does not exist; give a folder of PNG/JPEG/TIFF/WebP/GIF/"
            "PGM/.npy/FITS images (e.g. ../shared/data/train/BSDS300-train)"
        )
    found = [
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]  # no hidden files or folders: ._x.png, .DS_Store, .ipynb_checkpoints/
    files = sorted(p for p in found if file_suffix(p) in FOLDER_SUFFIXES)
    if not files:
        raise ValueError(
            f"no images in {str(root)!r}; expected PNG, JPEG, TIFF, WebP, GIF, PGM, .npy or FITS "
            "files inside it"
        )
    others = sorted(p for p in found if file_suffix(p) in OTHER_IMAGE_SUFFIXES)
    if others:
        names = ", ".join(p.name for p in others[:3]) + (", ..." if len(others) > 3 else "")
        warnings.warn(
            f"{len(others)} image(s) in {str(root)!r} of a format not read here are left out "
            f"({names}); convert them to PNG, TIFF, .npy or FITS to train on them",
            UserWarning,
            stacklevel=2,
        )
    return files


class ImageFolder:
    """All images of a folder, decoded once and cached as ``(C, H, W)`` arrays (:func:`to_stored`).

    ``gray=True`` converts to luminance, ``gray=False`` to RGB, ``None`` keeps each file as
    stored (then all must agree). ``__getitem__`` returns a float32 tensor in ``[0, 1]``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        gray: bool | None = None,
        files: list[Path] | None = None,
    ) -> None:
        self.root = Path(root)
        self.files = list_images(root) if files is None else list(files)
        self.images: list[np.ndarray] = []
        dark = []
        for path in self.files:
            array = read_folder_image(path, gray)
            chw = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
            eight_bit = stored_white(path) == 255.0  # gray from colour too: 8-bit, as ever
            self.images.append(np.ascontiguousarray(to_uint8(chw) if eight_bit else to_stored(chw)))
            if array.size and float(array.max()) < DARK_PEAK:
                dark.append((path.name, float(array.max())))
        if dark:
            name, peak = dark[0]
            warnings.warn(
                f"{len(dark)} of {len(self.files)} image(s) in {str(self.root)!r} are nearly black "
                f"(largest value under 1/16 of white; {name!r}: {peak:.3g}), 12-bit data in 16-bit "
                "files perhaps: they train as they are; scale each to its range first, or store "
                "them as FITS (each divided by its largest value)",
                UserWarning,
                stacklevel=2,
            )
        channels = {img.shape[0] for img in self.images}
        if len(channels) > 1:
            raise ValueError(
                f"images in {str(self.root)!r} mix {sorted(channels)} channels; "
                "set gray=True or gray=False to convert them"
            )
        self.channels = channels.pop()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return as_unit_float(self.images[index])
