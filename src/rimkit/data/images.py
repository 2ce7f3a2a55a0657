"""Image folders: decode once, keep as uint8 in memory, hand out ``[0, 1]`` float tensors.
FITS images are divided by their largest value (:func:`read_folder_image`).

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
    to_uint8,
)

FOLDER_SUFFIXES = (*IMAGE_SUFFIXES, ".npy", *FITS_SUFFIXES)


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
    if root.is_file():
        raise ValueError(
            f"{str(root)!r} is a file; give the folder of images it lies in (or a 3-D volume, "
            ".npy / .npz, where a volume is taken)"
        )
    if not root.is_dir():
        raise ValueError(
            f"image folder {str(root)!r} does not exist; give a folder of PNG/JPEG/TIFF/.npy "
            "images (e.g. ../shared/data/train/BSDS300-train)"
        )
    files = sorted(p for p in root.rglob("*") if file_suffix(p) in FOLDER_SUFFIXES)
    if not files:
        raise ValueError(
            f"no images in {str(root)!r}; expected PNG, JPEG, TIFF, .npy or FITS files inside it"
        )
    return files


class ImageFolder:
    """All images of a folder, decoded once and cached as uint8 ``(C, H, W)`` arrays.

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
        for path in self.files:
            array = read_folder_image(path, gray)
            chw = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
            self.images.append(np.ascontiguousarray(to_uint8(chw)))
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
        return torch.from_numpy(self.images[index]).float() / 255.0
