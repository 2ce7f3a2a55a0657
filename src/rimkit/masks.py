"""Mask files: inpainting's observed pixels, MRI's sampled k-space points and astronomers'
data-quality flags (a FITS HDU named ``DQ`` or ``BPM``), read as float64 arrays of ``[0, 1]``
(white / 1 = observed).

Example:
    >>> import numpy as np, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "m.npy"
    >>> np.save(path, np.array([[True, False]]))
    >>> read_mask(path).tolist()
    [[1.0, 0.0]]
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from rimkit.io import (
    _fits_image_hdu,
    _read_fits,
    _without_extension,
    channels_agree,
    file_suffix,
    is_fits,
    load_array,
    read_image,
)

DATA_QUALITY_HDUS = ("DQ", "BPM")
"""FITS image HDUs read by :func:`read_mask` as data-quality flags (nonzero = bad pixel), as
HST's and JWST's ``DQ`` extensions and IRAF's and Gemini's bad-pixel masks (``BPM``) hold
them."""


def read_mask(path: str | os.PathLike, ignore_flags: str | int | None = None) -> np.ndarray:
    """A mask file (inpainting's observed pixels, MRI's sampled k-space points) as float64
    ``(H, W)``, or ``(W,)`` for a 1-D column mask in a ``.npy``: an image (white = observed) or a
    ``.npy`` of bools, integers (nonzero = observed) or floats in ``[0, 1]``. A 0/1 mask stored
    as 8 bits (black to the eye) counts as 0/1, and values 0 and 255 (or 65535) as 0 and 1. An
    image with an alpha channel is taken over black: its transparent pixels are holes (a mask
    with holes erased in a drawing program). A FITS HDU named ``DQ`` or ``BPM``
    (``obs.fits[DQ]``) holds data-quality flags: its nonzero pixels are the bad ones (0 here),
    but for the bits in ``ignore_flags`` (:func:`ignored_bits`: ``"4"`` or ``"4,8"`` ignore those
    bits, ``"~4"`` counts only bit 4).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "m.npy"
        >>> np.save(path, np.array([[0, 1], [1, 0]], dtype=np.int64))
        >>> read_mask(path).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    path = Path(path)
    if not _without_extension(path).exists():
        raise ValueError(f"mask file {str(_without_extension(path))!r} does not exist")
    if file_suffix(path) == ".npy":
        array = np.asarray(load_array(path, "a mask"))
        if array.dtype.kind not in "biuf" or array.size == 0:
            raise ValueError(
                f"mask {str(path)!r} holds {array.dtype} values of shape {array.shape}; a mask is "
                "0 / 1 (white = observed), (H, W) or (W,)"
            )
        if array.ndim == 1 or array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
            if np.iscomplexobj(array) or array.ndim not in (1, 2):
                raise ValueError(f"mask {str(path)!r} has shape {array.shape}; give (H, W) or (W,)")
            return (array > (0 if array.dtype.kind in "biu" else 0.5)).astype(np.float64)
    if is_fits(path):
        return _fits_mask(path, ignore_flags)
    if ignore_flags is not None:
        raise ValueError(
            f"ignore_flags is for data-quality flags in a FITS HDU named DQ or BPM; {str(path)!r} "
            "is not a FITS file"
        )
    mask = read_image(path, alpha=True)
    opacity = None
    if mask.ndim == 3 and mask.shape[2] in (2, 4):  # an alpha channel
        mask, opacity = mask[..., :-1], mask[..., -1]
        opacity = None if opacity.min() >= 1 else opacity  # opaque: it says nothing
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim == 3:  # a colour picture of a mask: its channels must agree
        if not channels_agree(mask):
            raise ValueError(
                f"mask {str(path)!r} is a colour image whose channels differ; a mask is gray, "
                "white = observed (holes marked in a colour are not read as holes): save it "
                "as a black-and-white image"
            )
        mask = mask[..., 0]
    if 0 < mask.max() <= 1 / 255 + 1e-9:  # 0/1 stored in 8 bits
        mask = (mask > 0).astype(np.float64)
    mask = _mask_values(mask, f"mask {str(path)!r}")
    if opacity is not None:  # over black: transparent pixels are holes
        mask = mask * opacity
        if not mask.any():
            raise ValueError(
                f"mask {str(path)!r} observes nothing once its transparent pixels are taken as "
                "holes (its opaque pixels are black); save it as a black-and-white image, white "
                "= observed"
            )
    return mask


MASK_SLACK = 0.01
"""How far a mask's values may stray outside ``[0, 1]`` (a resampled mask's overshoot)."""


def _mask_values(mask: np.ndarray, name: str, flags_hint: str = "") -> np.ndarray:
    """A mask's values in ``[0, 1]``: as they are (within :data:`MASK_SLACK`, clipped), or
    0 / 255 and 0 / 65535 masks scaled; anything else (flags, counts) refused."""
    if not mask.size:
        return mask
    low, high = float(mask.min()), float(mask.max())
    if low >= -MASK_SLACK and high <= 1 + MASK_SLACK:
        return np.clip(mask, 0.0, 1.0)
    if low == 0 and high in (255.0, 65535.0) and np.isin(mask, (0.0, high)).all():
        return mask / high
    raise ValueError(
        f"{name} holds values from {low:g} to {high:g}; a mask is 0/1 or in [0, 1] (also 0/255), "
        f"1 = measured{flags_hint}"
    )


def _fits_mask(path: Path, ignore_flags: str | int | None = None) -> np.ndarray:
    """A FITS mask: data-quality flags (an HDU of :data:`DATA_QUALITY_HDUS`; nonzero = bad,
    but for the bits in ``ignore_flags``), else values in ``[0, 1]`` (1 = measured)."""
    with _fits_image_hdu(path) as (hdu, label):
        flags = hdu.name.upper() in DATA_QUALITY_HDUS
    values = _read_fits(path)
    if ignore_flags is not None and not flags:
        raise ValueError(
            f"ignore_flags is for data-quality flags, and {str(path)!r} ({label}) is not an HDU "
            f"named {' or '.join(DATA_QUALITY_HDUS)}"
        )
    if flags:
        bad = _flagged(values, ignore_flags, f"{str(path)!r} ({label})")
        flagged = "flagged (nonzero) pixels"
        if ignore_flags is not None:
            text = str(ignore_flags).strip()
            which = f"bits {text[1:]}" if text.startswith("~") else f"bits {text} ignored"
            flagged = f"flagged pixels ({which})"
        warnings.warn(
            f"{str(path)!r} ({label}) holds data-quality flags: its {int(bad.sum())} {flagged}, "
            f"{100 * float(bad.mean()):.2g} % of them, are left out as bad",
            UserWarning,
            stacklevel=3,
        )
        return (~bad).astype(np.float64)
    hint = (
        ". Data-quality flags (nonzero = bad pixel) are read as such from an HDU named DQ or "
        "BPM (obs.fits[DQ]); or store 1 where the flags are 0"
    )
    return _mask_values(values, f"mask {str(path)!r} ({label})", hint)


def _flagged(values: np.ndarray, ignore_flags: str | int | None, name: str) -> np.ndarray:
    """The bad pixels of data-quality flags: nonzero once the bits of ``ignore_flags`` are
    cleared (:func:`ignored_bits`)."""
    if ignore_flags is None:
        return values != 0
    if not np.array_equal(values, np.round(values)) or values.min() < 0:
        raise ValueError(f"{name} holds non-integer or negative flags; bits cannot be ignored")
    return (values.astype(np.int64) & ~ignored_bits(ignore_flags)) != 0


def ignored_bits(ignore_flags: str | int) -> int:
    """The bits of data-quality flags that do not make a pixel bad, in astropy's bit-field
    syntax (``astropy.nddata.bitmask.interpret_bit_flags``): ``"4"``, ``"4,8"``, ``"4+8"`` or
    ``"(4,8)"`` ignore those bits (powers of 2); ``"~4"`` ignores all but bit 4.

    Example:
        >>> ignored_bits("4,8"), ignored_bits(6), ignored_bits("~4") & 4
        (12, 6, 0)
    """
    from astropy.nddata.bitmask import interpret_bit_flags

    hint = "give bit values such as 4 or 4,8 (powers of 2; ~4: only bit 4 counts as bad)"
    if isinstance(ignore_flags, bool) or str(ignore_flags).strip().startswith("-"):
        raise ValueError(f"bits to ignore {ignore_flags!r}: {hint}")
    try:
        bits = interpret_bit_flags(ignore_flags)
    except (ValueError, TypeError) as err:
        raise ValueError(f"bits to ignore {ignore_flags!r}: {err}; {hint}") from None
    if bits is None:
        raise ValueError(f"bits to ignore {ignore_flags!r}: {hint}")
    return int(bits)
