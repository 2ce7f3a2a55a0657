"""MATLAB ``rgb2ycbcr`` / ``ycbcr2rgb`` for images in ``[0, 1]`` (ITU-R BT.601, studio range).

    Y  = (16  +  65.481 R + 128.553 G +  24.966 B) / 255
    Cb = (128 -  37.797 R -  74.203 G + 112.000 B) / 255
    Cr = (128 + 112.000 R -  93.786 G -  18.214 B) / 255

Super-resolution papers measure PSNR and SSIM on this Y channel, and gray models restore a
colour image by working on Y and up-sampling Cb and Cr bicubically.

Example:
    >>> import numpy as np
    >>> white = np.ones((1, 1, 3))
    >>> round(float(rgb_to_ycbcr(white)[0, 0, 0] * 255), 6)
    235.0
    >>> bool(np.allclose(ycbcr_to_rgb(rgb_to_ycbcr(white)), white))
    True
"""

from __future__ import annotations

import numpy as np

_MATRIX = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.000],
        [112.000, -93.786, -18.214],
    ]
)
_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB in ``[0, 1]`` to ``(..., 3)`` YCbCr in ``[0, 1]`` (MATLAB's formula)."""
    _check_rgb(rgb)
    return (rgb @ _MATRIX.T + _OFFSET) / 255.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """The Y channel alone, ``(...)`` in ``[16/255, 235/255]`` for RGB in ``[0, 1]``."""
    _check_rgb(rgb)
    return (rgb @ _MATRIX[0] + _OFFSET[0]) / 255.0


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    _check_rgb(ycbcr)
    return (ycbcr * 255.0 - _OFFSET) @ np.linalg.inv(_MATRIX).T


def _check_rgb(array: np.ndarray) -> None:
    if array.ndim < 1 or array.shape[-1] != 3:
        raise ValueError(f"expected an image with 3 channels last, got shape {array.shape}")
