"""Checks of what a person hands :func:`rimkit.pipeline.restore` and
:func:`rimkit.degrade.degrade`: one image as a numpy array, and a mask of its pixels.

Each refuses what the two would misread (tensors, integer images, channels first, images on
another scale than ``[0, 1]``, masks of another shape or that measure nothing) with a message
that names the fix.

Example:
    >>> import numpy as np
    >>> check_image(np.zeros((3, 8, 8)), "denoise", "degrade")
    Traceback (most recent call last):
    ...
    ValueError: the image has shape (3, 8, 8); ... (channels first: np.moveaxis(a, 0, -1))
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from rimkit.io import channels_agree, check_image_range
from rimkit.masks import MASK_SLACK

WHAT_EACH_TAKES = {
    "restore": (
        "one measurement as a numpy array, (H, W) or (H, W, C) (MRI k-space: (H, W) or "
        "(coils, H, W))",
        "for batches of tensors use rimkit.reconstruct.RIMReconstructor",
    ),
    "degrade": (
        "one image as a numpy array, (H, W) or (H, W, C) (MRI: a gray or complex (H, W))",
        "for batches of tensors use rimkit.noise.simulate with an operator",
    ),
}
"""What each function takes, and where a batch of tensors goes instead."""


def check_array_type(image: object, who: str = "restore") -> None:
    """Refuse anything but a numpy array (a tensor, a list, a path) for ``who``."""
    if not isinstance(image, np.ndarray):
        takes, batches = WHAT_EACH_TAKES[who]
        raise TypeError(f"{who} takes {takes}, got {type(image).__name__}; {batches}")


def check_image(image: np.ndarray, task: str, who: str = "restore") -> None:
    """Refuse what ``who`` would misread: tensors, integer images, channels first, and images
    on another scale than ``[0, 1]`` (MRI, of any scale: only the array's type)."""
    check_array_type(image, who)
    if task == "mri":
        if np.issubdtype(image.dtype, np.number) and not np.isfinite(image).all():
            raise ValueError("the image holds NaN or Inf values; replace them first")
        return
    if not (np.issubdtype(image.dtype, np.floating) or np.iscomplexobj(image)):
        other = ", or give data of another scale with units='data'" if who == "restore" else ""
        raise ValueError(
            f"the image holds {image.dtype} values; {who} takes float images in [0, 1]: divide "
            f"8-bit data by 255 and 16-bit by 65535 (rimkit.io.read_image scales image "
            f"files){other}"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        alpha = {2: "gray and alpha: a[..., 0]", 4: "RGBA: drop the alpha, a[..., :3]"}
        hint = alpha.get(image.shape[-1], "") if image.ndim == 3 else ""
        raise ValueError(
            f"the image has shape {image.shape}; {who} takes (H, W) or (H, W, C) with C = 1 "
            f"or 3 ({hint or 'channels first: np.moveaxis(a, 0, -1)'})"
        )
    check_image_range(image, "the image", data_units=who == "restore")


def check_mask_values(
    mask: np.ndarray | torch.Tensor, shape: tuple[int, int], columns: bool = False
) -> None:
    """Refuse an image mask that is not an array of ``shape`` (``columns``: or of its ``W``
    columns), not real and finite, or that marks no pixel as measured (none above 0.5).

    Example:
        >>> check_mask_values(np.zeros((4, 4)), (4, 4))
        Traceback (most recent call last):
        ...
        ValueError: the mask marks no pixel as measured (none above 0.5; white = measured): ...
    """
    if isinstance(mask, str | os.PathLike):
        raise TypeError(
            f"mask is an array (H, W) of 0 / 1, not a path ({str(mask)!r}): read the file with "
            "rimkit.masks.read_mask(path)"
        )
    values = mask_of_shape(mask, shape, columns)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"the mask holds {values.dtype} values; give 0 / 1 (white = measured)")
    if not np.isfinite(values).all():
        raise ValueError("the mask holds NaN or Inf values; give 0 / 1 (white = measured)")
    if not (values > 0.5).any():
        raise ValueError(
            "the mask marks no pixel as measured (none above 0.5; white = measured): nothing is "
            "measured"
        )
    top = max(float(values.max()), 1.0)  # an integer mask may be 0 / 255
    scaled = values.astype(np.float64) / top
    between = float(np.mean((scaled > MASK_SLACK) & (scaled < 1 - MASK_SLACK)))
    if between > 0:
        binary = "0 / 1" if top == 1 else f"0 / {top:g}"
        warnings.warn(
            f"the mask is not {binary}: {100 * between:.3g}% of its pixels lie between; those "
            "above 0.5 count as measured, the others as missing",
            UserWarning,
            stacklevel=3,
        )


def mask_tensor(mask: np.ndarray, shape: tuple[int, int], columns: bool = False) -> torch.Tensor:
    """``(1, 1, H, W)`` of 0 / 1 from a mask array (numpy or torch) of ``shape``, observed
    where above 0.5; ``columns``: a 1-D mask of the ``W`` columns is taken for every row."""
    mask = mask_of_shape(mask, shape, columns)
    return torch.from_numpy((mask > 0.5).astype(np.float32))[None, None]  # (1, 1, H, W)


def mask_of_shape(mask: np.ndarray, shape: tuple[int, int], columns: bool = False) -> np.ndarray:
    """``mask`` (numpy or torch) as a numpy array of ``shape``, else the error that says which
    mask to give; ``columns``: a 1-D mask of the ``W`` columns is taken for every row."""
    mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if mask.ndim == 3 and mask.shape[:2] == shape and mask.shape[2] in (1, 3, 4):  # (H, W, C)
        if not channels_agree(mask):
            raise ValueError(
                f"the mask has {mask.shape[2]} channels that differ; a mask is one channel "
                f"({shape[0]}, {shape[1]}) of 0 / 1 (white = measured)"
            )
        mask = mask[..., 0]
    if columns and mask.ndim == 1 and mask.shape[0] == shape[1]:
        mask = np.broadcast_to(mask, shape)
    if mask.shape != shape:
        columns_too = f", or ({shape[1]},) columns" if columns else ""
        raise ValueError(
            f"the mask has shape {mask.shape} but the measurement is {shape[0]}x{shape[1]}; "
            f"give the mask written with this measurement ({shape[0]}, {shape[1]}){columns_too}"
        )
    return mask
