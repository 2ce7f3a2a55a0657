"""Writing images and values, atomically: pictures of 8 or 16 bits, ``.npy`` and FITS; the
checks an output path passes before any work (never an input, never another run's folder
without ``force``).

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ramp.png")
    >>> write_image(path, np.linspace(0, 1, 12).reshape(3, 4))
    >>> os.path.getsize(path) > 0
    True
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rimkit.io import (
    FITS_SUFFIXES,
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    UNWRITTEN_SUFFIXES,
    VALUE_SUFFIXES,
    _astropy_fits,
    _tifffile,
    file_suffix,
    to_uint8,
)


def write_image(
    path: str | os.PathLike,
    array: np.ndarray,
    force: bool = False,
    header: Any = None,
    bits: int = 8,
) -> None:
    """Write an image atomically: a temporary file in the same folder, then a rename.

    ``.npy`` stores the array exactly, FITS (gray only) as float32 values with ``header`` (an
    ``astropy.io.fits.Header``, e.g. :func:`rimkit.io.read_fits_header` of the input) where given;
    image formats store it clipped to ``[0, 1]`` and rounded to ``bits`` (8, or 16 for TIFF and
    gray PNG / PGM: :func:`can_store_16_bits`), gray or RGB. An existing file is kept unless
    ``force``; a failed write leaves no file.
    """
    path = check_output(path, force)
    suffix = file_suffix(path)
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if bits == 16 and suffix not in VALUE_SUFFIXES and not can_store_16_bits(path, array):
        raise ValueError(f"{str(path)!r} cannot hold 16 bits of this image; write .tif or .npy")
    if suffix != ".npy" and np.iscomplexobj(array):
        raise ValueError(f"complex data cannot be stored as {suffix}; write a .npy file")
    if suffix != ".npy" and not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"an image file holds gray or RGB; got an array of shape {array.shape}")
    netpbm = {".pgm": (2, "gray", ".ppm"), ".ppm": (3, "colour", ".pgm")}.get(suffix)
    if netpbm and np.ndim(array) != netpbm[0]:
        raise ValueError(f"a {suffix} file holds {netpbm[1]} images: write this one as {netpbm[2]}")
    fits = _astropy_fits() if suffix in FITS_SUFFIXES else None
    if fits is not None and array.ndim != 2:
        raise ValueError(
            f"{str(path)!r}: rimkit writes one 2-D image to a FITS file, got shape "
            f"{array.shape}; write colour as .npy or .png"
        )

    def save(tmp: str) -> None:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array)
        elif fits is not None:
            hdu = fits.PrimaryHDU(np.asarray(array, dtype=np.float32), header=header)
            from rimkit import __version__

            line = f"written by rimkit {__version__}"
            if line not in [str(h) for h in hdu.header.get("HISTORY", [])]:
                hdu.header["HISTORY"] = line
            hdu.writeto(tmp, overwrite=True)
        elif bits == 16 and suffix in TIFF_SUFFIXES:
            _tifffile().imwrite(
                tmp, to_uint16(array), photometric="rgb" if array.ndim == 3 else None
            )
        elif bits == 16:
            Image.fromarray(to_uint16(array)).save(
                tmp, format=Image.registered_extensions()[suffix]
            )
        else:
            fmt = Image.registered_extensions()[suffix]
            lossless = {"lossless": True} if fmt == "WEBP" else {}
            Image.fromarray(to_uint8(array)).save(tmp, format=fmt, **lossless)

    atomic_write(path, save)


def can_store_16_bits(path: str | os.PathLike, array: np.ndarray) -> bool:
    """Whether :func:`write_image` can store ``array`` in 16 bits at ``path``: a TIFF, or a
    PNG or PGM of a gray image."""
    suffix = file_suffix(path)
    return suffix in TIFF_SUFFIXES or (suffix in (".png", ".pgm") and np.ndim(array) == 2)


def to_uint16(array: np.ndarray) -> np.ndarray:
    """Clip to ``[0, 1]`` and round to 16 bits."""
    return np.round(np.clip(array, 0.0, 1.0) * 65535.0).astype(np.uint16)


def check_output(path: str | os.PathLike, force: bool = False) -> Path:
    """Refuse an output path :func:`write_image` could not write: an unknown type, a folder, a
    missing folder, or an existing file without ``force``. Call it before the work that makes
    the output, so a bad path fails at once."""
    path = Path(path)
    suffix = file_suffix(path)
    if path.is_dir():
        raise ValueError(f"output {str(path)!r} is a folder; give a file name")
    known = [s for s in (*IMAGE_SUFFIXES, *VALUE_SUFFIXES) if s not in UNWRITTEN_SUFFIXES]
    if suffix in UNWRITTEN_SUFFIXES:
        raise ValueError(
            f"rimkit does not write {suffix} ({UNWRITTEN_SUFFIXES[suffix]}): give {str(path)!r} "
            "another type, e.g. .png"
        )
    if suffix not in known:
        raise ValueError(
            f"unsupported output type {suffix!r} for {str(path)!r}; known: {', '.join(known)}"
        )
    if path.exists() and not force:
        raise ValueError(f"output {str(path)!r} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise ValueError(
            f"the folder of output {str(path)!r} does not exist; create it first "
            f"(mkdir -p {shlex.quote(str(path.parent))})"
        )
    try:  # a probe, so a folder that takes no files fails now, not after the work
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise ValueError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_output_folder(
    out: str | os.PathLike,
    force: bool = False,
    inputs: Sequence[str | os.PathLike | None] = (),
    what: str = "output folder",
) -> Path:
    """Refuse an output folder that is a file, that holds files (unless ``force``) or that holds
    one of the ``inputs`` files, which the outputs could overwrite (even with ``force``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{what} {str(out)!r} is a file; give a folder")
    for source in inputs:
        if source is not None and Path(source).is_file():
            if out.resolve() in Path(source).resolve().parents:
                raise ValueError(
                    f"{what} {str(out)!r} holds the input {str(source)!r}, which the outputs "
                    "could overwrite; choose another folder"
                )
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"{what} {str(out)!r} is not empty; pass --force or choose another folder")
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failure or a kill leaves ``path`` as it was and no temporary file behind (short of a
    kill between the write and the rename). The file gets the permissions an ordinary new
    file would (``mkstemp`` alone makes it readable by its owner only), or those of the file
    it replaces.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"the folder of {str(path)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    except OSError as err:
        raise OSError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _mode(path))
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
