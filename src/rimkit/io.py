"""Reading images: PNG, JPEG, TIFF (8 or 16 bit), WebP, GIF, PGM / PPM, ``.npy`` and FITS, and
turning them into tensors and back. A PGM / PPM of another maximum than 255 or 65535 (e.g.
4095) is read by its header's maximum: its white is that value, its counts the file's. Writing
is :mod:`rimkit.writing`, masks :mod:`rimkit.masks`, BART k-space :mod:`rimkit.bart`.

Images come back as float64 numpy arrays of shape ``(H, W)`` (gray) or ``(H, W, C)``, with
8- and 16-bit integers (files or ``uint8`` / ``uint16`` arrays) scaled to ``[0, 1]``; float
``.npy`` arrays come back as stored (real or complex), and FITS images (astronomy's format;
the optional ``astropy``, ``pip install 'rimkit[fits]'``) in their own units, as stored.
Integers of other types have no implied range and are refused, as are ``(C, H, W)`` arrays; an
alpha channel is dropped with a warning.
``example:NAME`` reads an image bundled with scikit-image (``example:camera``,
``example:astronaut``, ...), so examples need no data of their own. :func:`check_image_range`
refuses float images far outside ``[0, 1]`` (e.g. stored as 0-255).

Example:
    >>> import numpy as np, tempfile, os
    >>> from rimkit.writing import write_image
    >>> path = os.path.join(tempfile.mkdtemp(), "ramp.png")
    >>> write_image(path, np.linspace(0, 1, 12).reshape(3, 4))
    >>> read_image(path).shape
    (3, 4)
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

_MOVED_TO = {
    "bart": ("read_cfl", "read_kspace", "read_bart_image"),
    "masks": ("DATA_QUALITY_HDUS", "MASK_SLACK", "ignored_bits", "read_mask"),
    "writing": (
        "atomic_write", "can_store_16_bits", "check_output", "check_output_folder",
        "to_uint16", "write_image",
    ),
}  # fmt: skip
MOVED: dict[str, str] = {name: module for module, names in _MOVED_TO.items() for name in names}
"""Names this module held before BART k-space, masks and writing became modules of their own
(:mod:`rimkit.bart`, :mod:`rimkit.masks`, :mod:`rimkit.writing`); still importable from here."""


def __dir__() -> list[str]:
    return sorted({*globals(), *MOVED})


def __getattr__(name: str) -> Any:
    module = MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"rimkit.{module}"), name)


IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".pnm",
)  # fmt: skip
"""Picture files read through Pillow (TIFF through tifffile first); all but GIF are written
too (WebP losslessly)."""
UNWRITTEN_SUFFIXES = {".gif": "GIF keeps at most 256 colours"}
"""Picture types read but not written, and why."""
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
"""FITS files: values in the data's own units (e.g. counts), read and written as stored."""
VALUE_SUFFIXES = (".npy", *FITS_SUFFIXES)
"""Output types that keep the values; the others store 8 bits of ``[0, 1]``."""
FILE_SUFFIXES = (*IMAGE_SUFFIXES, *VALUE_SUFFIXES)
"""Every file type rimkit reads as an image or an array (a name ending so is a file's)."""
EXAMPLE_PREFIX = "example:"
EXAMPLES = (
    "camera", "astronaut", "coffee", "moon", "brick", "grass", "gravel", "chelsea",
    "hubble_deep_field", "cell", "coins", "text",
)  # fmt: skip


FITS_EXTENSION = re.compile(r"^(?P<file>.+)\[(?P<ext>[^\[\]]+)\]$")
"""A FITS file with the HDU to read named in brackets: ``obs.fits[ERR]``, ``obs.fits[2]``."""


def file_suffix(path: str | os.PathLike) -> str:
    """The lower-case type of a file name, two parts for compressed FITS (an HDU named in
    brackets left out).

    Example:
        >>> file_suffix("deep.FITS.gz"), file_suffix("a.b.png"), file_suffix("obs.fits[ERR]")
        ('.fits.gz', '.png', '.fits')
    """
    name = _without_extension(path).name.lower()
    double = "".join(Path(name).suffixes[-2:])
    return double if double in FITS_SUFFIXES else Path(name).suffix


def is_fits(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a FITS file (by its name)."""
    return file_suffix(path) in FITS_SUFFIXES


def read_image(
    path: str | os.PathLike, gray: bool | None = None, counts: bool = False, alpha: bool = False
) -> np.ndarray:
    """Read an image file (or ``example:NAME``) as float64 ``(H, W)`` or ``(H, W, C)``.

    ``gray=True`` converts RGB to luminance (ITU-R 601, as Pillow's ``L`` mode), ``gray=False``
    converts gray to RGB, ``None`` keeps what the file holds. Alpha channels are dropped (with a
    ``UserWarning``), or kept as the last channel with ``alpha=True`` (then ``gray`` must be
    ``None``). ``counts=True`` keeps integers as stored (counts, e.g. a camera's 0-4095
    in a 16-bit TIFF) instead of scaling them to ``[0, 1]``; :func:`stored_white` tells the
    value their type's white is.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "counts.tif"
        >>> from rimkit.writing import write_image
        >>> write_image(path, np.array([[0.0, 1000 / 65535]]), bits=16)
        >>> read_image(path, counts=True).tolist(), stored_white(path)
        ([[0.0, 1000.0]], 65535.0)
    """
    name = str(path)
    if name.startswith(EXAMPLE_PREFIX):
        array, picture, white = _example(name.removeprefix(EXAMPLE_PREFIX)), False, None
    else:
        array, picture, white = _read_file(Path(path))
    if white is not None:  # a PGM / PPM's own maximum
        array = array.astype(np.float64) if counts else array / white
    elif counts and array.dtype != np.bool_ and np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float64)
    else:
        array = _scale_integers(array, name, int32_as_16_bit=picture)
    if alpha:
        if gray is not None:
            raise ValueError("read_image: alpha=True keeps the channels as stored; leave gray None")
        return array
    return _convert_channels(array, gray, name)


def stored_white(path: str | os.PathLike) -> float | None:
    """The value white is stored as in an image file of integers (255 for 8 bits, 65535 for
    16), read off its header; ``None`` for floats and for value files (``.npy``, FITS)."""
    name = str(path)
    if name.startswith(EXAMPLE_PREFIX):
        return INTEGER_RANGES.get(_example(name.removeprefix(EXAMPLE_PREFIX)).dtype)
    path = Path(path)
    suffix = file_suffix(path)
    if suffix not in IMAGE_SUFFIXES or not path.is_file():
        return None
    header = _netpbm_header(path)
    if header is not None:
        return float(header.white)
    if suffix in TIFF_SUFFIXES:
        with contextlib.suppress(Exception):  # not a TIFF inside: Pillow tells
            with _tifffile().TiffFile(path) as tif:
                return INTEGER_RANGES.get(np.dtype(tif.series[0].dtype).newbyteorder("="))
    try:
        with Image.open(path) as img:
            if img.mode == "F":
                return None
            return 65535.0 if img.mode.startswith("I") else 255.0  # Pillow's 16-bit: I;16, I
    except Exception:  # unreadable: read_image says why
        return None


@dataclass(frozen=True)
class NetpbmHeader:
    """A PGM / PPM header: kind (``P2`` / ``P5`` gray, ``P3`` / ``P6`` colour; ``P2`` / ``P3``
    text), width, height, the value white is stored as, and where the pixels start."""

    kind: bytes
    width: int
    height: int
    white: int
    offset: int

    @property
    def channels(self) -> int:
        return 3 if self.kind in (b"P3", b"P6") else 1

    @property
    def pillow_exact(self) -> bool:
        """Whether Pillow reads the values as stored: 8 bits, or gray of 16 bits."""
        return self.white == 255 or (self.white == 65535 and self.channels == 1)


NETPBM_SUFFIXES = (".pgm", ".ppm", ".pnm")
NETPBM_HEADER_BYTES = 65536
"""How much of a PGM / PPM file its header is looked for in (comments may be long)."""


def _netpbm_header(path: Path) -> NetpbmHeader | None:
    r"""The header of a PGM / PPM file (``.pgm``, ``.ppm``, ``.pnm``) of gray or colour values;
    ``None`` for other files (whose heads are not read).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "camera12.pgm"
        >>> _ = path.write_bytes(b"P5 # a 12-bit camera\n2 1\n4095\n" + bytes(4))
        >>> _netpbm_header(path)
        NetpbmHeader(kind=b'P5', width=2, height=1, white=4095, offset=30)
    """
    if file_suffix(path) not in NETPBM_SUFFIXES:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(NETPBM_HEADER_BYTES)
    except OSError:
        return None
    if head[:2] not in (b"P2", b"P3", b"P5", b"P6"):
        return None
    fields, at = [], 2
    while len(fields) < 3 and at < len(head):
        if head[at : at + 1] == b"#":  # a comment, to the end of its line
            end = head.find(b"\n", at)
            at = len(head) if end < 0 else end
        elif head[at : at + 1].isspace():
            at += 1
        else:
            end = at
            while end < len(head) and head[end : end + 1].isdigit():
                end += 1
            if end == at:
                return None
            fields.append(int(head[at:end]))
            at = end
    if len(fields) < 3 or not 0 < fields[2] < 65536 or at >= len(head):  # cut: Pillow's
        return None
    return NetpbmHeader(head[:2], fields[0], fields[1], fields[2], at + 1)


def _read_netpbm(path: Path, header: NetpbmHeader) -> np.ndarray:
    """The values of a PGM / PPM file as stored (``uint16``; Pillow scales a maximum other
    than 255 / 65535 and reads colour at 8 bits), checked against its maximum."""
    data = path.read_bytes()[header.offset :]
    shape = (
        (header.height, header.width, 3) if header.channels == 3 else (header.height, header.width)
    )
    count = math.prod(shape)
    if header.kind in (b"P5", b"P6"):
        dtype = np.dtype(">u2" if header.white > 255 else "u1")
        values = np.frombuffer(data[: count * dtype.itemsize], dtype)
    else:
        tokens = data.split(None, count)[:count]
        values = np.array([int(t) for t in tokens if t.isdigit()], np.int64)
    if values.size < count:
        raise ValueError(
            f"{str(path)!r} is not a readable image: it holds fewer values than its "
            f"header's {header.width}x{header.height} pixels (a cut file?)"
        )
    if values.max(initial=0) > header.white:
        raise ValueError(
            f"{str(path)!r} is not a readable image: values above its header's "
            f"maximum, {header.white}"
        )
    return values.reshape(shape).astype(np.uint16)


def _example(name: str) -> np.ndarray:
    if name not in EXAMPLES:
        raise ValueError(f"unknown example image {name!r}; known: {', '.join(EXAMPLES)}")
    from skimage import data

    return np.asarray(getattr(data, name)())


def _without_extension(path: str | os.PathLike) -> Path:
    """The file of ``obs.fits[ERR]``: ``obs.fits``; other paths (not FITS) as they are."""
    match = FITS_EXTENSION.match(str(path))
    fits_file = match and Path(match["file"]).name.lower().endswith(FITS_SUFFIXES)
    return Path(match["file"]) if fits_file else Path(path)


def names_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an existing file (``obs.fits[PSF]``: the FITS file).

    Example:
        >>> names_file(__file__), names_file("gaussian:1.6")
        (True, False)
    """
    return _without_extension(path).is_file()


def _read_file(path: Path) -> tuple[np.ndarray, bool, int | None]:
    """The array a file holds, integers as stored; whether it is a picture file (PNG,
    TIFF, ...: its 32-bit integers may hold 16-bit values, as Pillow's mode ``I`` stores
    them); and the value white is stored as where the file says so apart from its
    type (a PGM / PPM of a maximum other than 255 / 65535), else ``None``."""
    if not _without_extension(path).exists():
        raise ValueError(f"input file {str(_without_extension(path))!r} does not exist")
    if path.is_dir():
        raise ValueError(f"input {str(path)!r} is a folder; give an image file")
    suffix = file_suffix(path)
    if suffix == ".npy":
        return _check_array(load_array(path, "a .npy array"), str(path)), False, None
    if suffix in FITS_SUFFIXES:
        return _check_array(_read_fits(path), str(path)), False, None
    if suffix not in IMAGE_SUFFIXES:
        known = ", ".join((*IMAGE_SUFFIXES, *VALUE_SUFFIXES))
        raise ValueError(f"unsupported file type {suffix!r} for {str(path)!r}; known: {known}")
    if suffix in TIFF_SUFFIXES:
        array = _read_tiff(path)
        if array is not None:
            return _check_array(array, str(path)), True, None
    header = _netpbm_header(path)
    if header is not None and not header.pillow_exact:
        white = None if header.white in (255, 65535) else header.white
        return _read_netpbm(path, header), True, white
    try:
        with Image.open(path) as img:
            _refuse_what_pillow_cuts(img, path)
            img.load()
            palette = img.mode == "P"
            array = np.asarray(img.convert("RGB") if img.mode in ("P", "CMYK", "YCbCr") else img)
            gray_as_rgb = 0 if palette else {"WEBP": 2, "GIF": 0}.get(img.format)  # levels apart
            if gray_as_rgb is not None and array.shape[2:] == (3,):
                if _equal_channels(array, gray_as_rgb):
                    array = array[..., 0]  # WebP stores gray as RGB, a GIF or PNG as a palette
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{str(path)!r} is not a readable image: {err}") from None
    return array, True, None


def channels_agree(array: np.ndarray) -> bool:
    """Whether every colour channel of an ``(H, W, C)`` array (alpha, a fourth, left out)
    equals the first: a gray picture stored as colour (a mask, a kernel); an ``(H, W)`` array
    has one channel, which agrees with itself.

    Example:
        >>> gray = np.zeros((2, 2, 3), dtype=bool)
        >>> channels_agree(gray), channels_agree(np.dstack([gray[..., 0], ~gray[..., :2]]))
        (True, False)
    """
    if np.ndim(array) < 3:
        return True
    return bool((array[..., :3] == array[..., :1]).all())


def _equal_channels(array: np.ndarray, within: int = 0) -> bool:
    """Whether every channel of ``(H, W, C)`` integers lies ``within`` levels of the first."""
    return bool((np.abs(array.astype(np.int64) - array[..., :1]) <= within).all())


TIFF_SUFFIXES = (".tif", ".tiff")


def _tifffile():  # -> the tifffile module (a dependency of scikit-image)
    import tifffile

    return tifffile


def _read_tiff(path: Path) -> np.ndarray | None:
    """A TIFF's one 2-D image, gray (black 0) or RGB with its samples last, read by
    ``tifffile`` in its stored type (16-bit colour too), or ``None`` for Pillow to read: not a
    TIFF inside (a PNG named .tif), other photometrics (CMYK, palette, white-is-0, YCbCr, which
    Pillow converts), or a codec tifffile lacks here (LZW, JPEG without ``imagecodecs``).
    Stacks (z, time, several pages or channels) are refused with what to do."""
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(path) as tif:
            photometric = int(getattr(tif.pages[0], "photometric", -1)) if tif.pages else -1
            if photometric not in (1, 2):  # MINISBLACK, RGB
                return None
            series = tif.series[0]
            pages = sum(s.shape == series.shape for s in tif.series)  # not thumbnails
            if pages > 1:
                raise ValueError(
                    f"{str(path)!r} holds a stack of {pages} images of {series.shape} (as "
                    "separate series); rimkit restores one 2-D image (gray or colour) at a time: "
                    "save each as its own file"
                )
            kept = [
                (a, n) for a, n in zip(series.axes, series.shape, strict=True) if n > 1 or a in "YX"
            ]
            axes, shape = "".join(a for a, _ in kept), tuple(n for _, n in kept)
            colour = axes == "YXS" or (axes == "SYX" and shape[0] in (3, 4) and photometric == 2)
            if axes != "YX" and not colour:
                planes = int(np.prod([n for a, n in kept if a not in "YXS"]) or 1)
                raise ValueError(
                    f"{str(path)!r} holds a stack of {shape} ({axes}: {planes} planes); rimkit "
                    "restores one 2-D image (gray or colour) at a time: save each plane as its "
                    "own file, or loop in Python over tifffile.imread(path) with "
                    "rimkit.pipeline.restore"
                )
            try:
                array = series.asarray().reshape(shape)
            except ValueError as err:
                if "imagecodecs" in str(err):
                    return None
                raise
    except tifffile.TiffFileError:
        return None  # Pillow reads it or says why not
    except (OSError, EOFError) as err:
        raise ValueError(f"{str(path)!r} is not a readable image: {err}") from None
    return np.moveaxis(array, 0, -1) if axes == "SYX" else array


def _refuse_what_pillow_cuts(img: Image.Image, path: Path) -> None:
    """Refuse the pages of a TIFF stack or the frames of an animation after the first (Pillow
    would read the first alone; a camera's JPEG with extra pictures, MPO, reads its first, the
    photo); note colour of 16 bits per channel, which Pillow reads as 8."""
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":  # MPO: a camera's JPEG + extras
        what = "a stack" if img.format == "TIFF" else "an animation"
        raise ValueError(
            f"{str(path)!r} holds {img.n_frames} images ({what}); rimkit restores one 2-D "
            "image at a time: save each as its own file"
        )
    rawmodes = [tile[3][0] if isinstance(tile[3], tuple) else tile[3] for tile in img.tile]
    deep = any(str(raw).endswith((";16B", ";16L", ";16N")) for raw in rawmodes)
    if img.format in ("PNG", "TIFF") and img.mode in ("RGB", "RGBA") and deep:
        warnings.warn(
            f"{str(path)!r}: Pillow reads its 16 bits per channel as 8; to keep them save it "
            "as a 16-bit TIFF or a .npy (a TIFF with LZW or JPEG compression needs "
            "pip install imagecodecs)",
            UserWarning,
            stacklevel=5,
        )


def read_kernel(path: str | os.PathLike) -> np.ndarray:
    """A blur kernel file as float64 ``(H, W)``, unnormalised: a ``.npy`` of numbers as stored
    (any integer or float type: a kernel is divided by its sum), or a gray picture (a colour
    one whose channels agree is taken as gray); :func:`rimkit.operators.checked_kernel`
    checks and normalises it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "k.npy"
        >>> np.save(path, np.ones((3, 3), dtype=np.int64))
        >>> float(read_kernel(path).sum())
        9.0
    """
    path = Path(path)
    if not _without_extension(path).exists():
        raise ValueError(f"kernel file {str(_without_extension(path))!r} does not exist")
    if file_suffix(path) == ".npy":
        kernel = np.asarray(load_array(path, "a kernel"))
        if kernel.dtype.kind not in "biuf":
            raise ValueError(
                f"the kernel in {str(path)!r} holds {kernel.dtype} values; give real numbers"
            )
        return kernel.astype(np.float64)
    kernel = read_image(path)
    if kernel.ndim == 3:
        if not channels_agree(kernel):
            raise ValueError(
                f"the kernel in {str(path)!r} is a colour image whose channels differ; a blur "
                "kernel is one channel: save it as a gray image"
            )
        kernel = kernel[..., 0]
    return kernel


def load_array(path: Path, what: str) -> np.ndarray | np.lib.npyio.NpzFile:
    """``np.load`` of an ``.npy`` / ``.npz`` file without pickles; a missing or unreadable file
    is named as ``what`` (e.g. ``"a volume"``)."""
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read {str(path)!r} as {what}: {err}") from None


def _astropy_fits():  # -> astropy.io.fits
    try:
        from astropy.io import fits
    except ImportError:
        raise ValueError(
            "FITS files need astropy, an optional dependency: pip install 'rimkit[fits]'"
        ) from None
    return fits


def read_fits_measured(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A FITS image as :func:`read_image` reads it, but its blank (NaN) pixels set to 0, and
    the mask of its measured pixels (1; blank: 0), for a reconstruction that leaves them out.

    Example:
        >>> import tempfile
        >>> from astropy.io import fits
        >>> path = Path(tempfile.mkdtemp()) / "a.fits"
        >>> fits.PrimaryHDU(np.array([[1.0, np.nan], [3.0, 4.0]])).writeto(path)
        >>> image, measured = read_fits_measured(path)
        >>> image.tolist(), measured.tolist()
        ([[1.0, 0.0], [3.0, 4.0]], [[1.0, 0.0], [1.0, 1.0]])
    """
    data = _read_fits(Path(path), blank_ok=True)
    measured = np.isfinite(data)
    return np.where(measured, data, 0.0), measured.astype(np.float64)


def _read_fits(path: Path, blank_ok: bool = False) -> np.ndarray:
    """The first image of a FITS file (:func:`read_fits_header` names which) as float64 in its
    own units; a cube's leading axes of length 1 are dropped. Blank (NaN) pixels (unless
    ``blank_ok``) and cubes of several planes are refused, each with what to do."""
    with _fits_image_hdu(path) as (hdu, hdu_name):
        stored, blank = hdu.data, hdu.header.get("BLANK")
        data = np.array(stored, dtype=np.float64)
        if blank is not None and np.issubdtype(stored.dtype, np.integer):  # unscaled integers
            data[stored == blank] = np.nan
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(
            f"{str(path)!r} ({hdu_name}) holds a cube of shape {data.shape}; rimkit restores "
            "one 2-D image at a time: cut out the plane (band) you want first"
        )
    blank = int(np.isnan(data).sum())
    if blank and not blank_ok:
        raise ValueError(
            f"{str(path)!r} has {blank} blank (NaN) pixel(s) of {data.size}; fill them first "
            "(e.g. with the background level); in a measurement, rimkit reconstruct and compare "
            "leave them out as bad pixels"
        )
    if np.isinf(data).any():
        raise ValueError(f"{str(path)!r} holds Inf values; replace them before use")
    return data


@contextlib.contextmanager
def _fits_image_hdu(path: str | os.PathLike) -> Iterator[tuple[Any, str]]:
    """The FITS HDU to read and its label, from one opening of the file: the one named in
    brackets (``obs.fits[ERR]``, ``obs.fits[1]``), else the first that holds an image (2-D or
    more, told by its header): the primary one, else the first extension (as ``SCI`` in HST's
    files)."""
    fits = _astropy_fits()
    file, named = _without_extension(path), FITS_EXTENSION.match(str(path))
    if not file.is_file():
        raise ValueError(f"input file {str(file)!r} does not exist")
    try:
        hdus = fits.open(file, memmap=False)
    except (OSError, TypeError) as err:
        raise ValueError(f"{str(file)!r} is not a readable FITS file: {err}") from None
    with hdus:
        found = [
            (index, hdu)
            for index, hdu in enumerate(hdus)
            if getattr(hdu, "is_image", False) and hdu.header.get("NAXIS", 0) >= 2
        ]
        if named:
            ext = named["ext"].strip()
            found = [(i, h) for i, h in found if str(i) == ext or h.name.upper() == ext.upper()]
            if not found:
                names = ", ".join(f"{i} {hdu.name}".strip() for i, hdu in enumerate(hdus))
                raise ValueError(f"{str(file)!r} has no image HDU {ext!r}; its HDUs: {names}")
        if not found:
            raise ValueError(f"{str(file)!r} holds no image (no HDU with 2-D data)")
        index, hdu = found[0]
        yield hdu, f"HDU {index}" + (f" {hdu.name}" if hdu.name else "")


FITS_GEOMETRY = re.compile(
    r"(WCSAXES|WCSNAME|RADESYS|EQUINOX|LONPOLE|LATPOLE|CTYPE|CRPIX|CRVAL|CDELT|CUNIT|CROTA|CD\d_|"
    r"PC\d_|PV\d_|PS\d_|A_|B_|AP_|BP_|LTV|LTM|DATASEC|TRIMSEC|BIASSEC)"
)
"""Header keywords that tie pixels to the sky (WCS, SIP, IRAF's LTV / LTM, sections)."""
FITS_STRUCTURE = (
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT",
    "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM", "EXTNAME", "EXTVER",
)  # fmt: skip
"""Header keywords that describe the stored array, written anew for the output's."""


def read_fits_header(path: str | os.PathLike, geometry: bool = True) -> Any:
    """The header of the image :func:`read_image` reads from a FITS file, without the
    keywords of the stored array (``BITPIX``, ``NAXISn``, ``BSCALE``, ...); ``geometry=False``
    also drops those that tie pixels to the sky (WCS), for an output on no grid of the sky's
    (a lensed source; :func:`regrid_wcs` moves them to a resampled grid). An
    ``astropy.io.fits.Header``.

    Example:
        >>> import tempfile
        >>> from astropy.io import fits
        >>> path = Path(tempfile.mkdtemp()) / "a.fits"
        >>> hdu = fits.PrimaryHDU(np.ones((4, 4), np.float32))
        >>> hdu.header["BUNIT"], hdu.header["CRPIX1"] = "electron/s", 2.0
        >>> hdu.writeto(path)
        >>> sorted(read_fits_header(path)), sorted(read_fits_header(path, geometry=False))
        (['BUNIT', 'CRPIX1'], ['BUNIT'])
    """
    with _fits_image_hdu(path) as (hdu, _):
        header = hdu.header.copy()
    for key in list(header.keys()):
        structural = key.startswith(FITS_STRUCTURE) or key in ("", "COMMENT")
        sky = FITS_GEOMETRY.match(key) is not None
        third = sky and re.search(r"[3-9]$|[3-9]_\d+$", key) is not None  # a cube's axes
        if structural or (sky and (not geometry or third)):
            header.remove(key, ignore_missing=True, remove_all=True)
    if "WCSAXES" in header:
        header["WCSAXES"] = 2  # the image read is 2-D
    return header


SIP_TERM = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")
WCS_KEY = re.compile(r"(?:CTYPE|CRPIX|CRVAL|CDELT|CUNIT)\d([A-Z]?)$|(?:CD|PC)\d_\d([A-Z]?)$")
"""A keyword of a WCS, the primary (no letter) or an alternate one (its letter)."""


def regrid_wcs(header: Any, factor: float = 1.0, origin: tuple[int, int] = (0, 0)) -> Any:
    """A copy of a FITS ``header`` whose sky coordinates (WCS) fit a resampled, cropped grid:
    the output's pixel ``(row, col)`` (0-based) lies at the input's
    ``((row + origin[0] + 0.5) / factor - 0.5, (col + origin[1] + 0.5) / factor - 0.5)``, the
    pixel-centre convention of MATLAB's ``imresize`` (and of :mod:`rimkit.operators.bicubic`):
    ``factor`` 2 for a super-resolved image, 1/2 for one down-sampled, ``origin`` the pixels a
    crop drops at the top and left. In FITS's 1-based pixels,

        CRPIX' = factor (CRPIX - 1/2) + 1/2 - origin,    CD' = CD / factor,
        CDELT' = CDELT / factor,                         SIP A_p_q' = A_p_q factor^(1 - p - q)

    (the SIP polynomials map pixel offsets from CRPIX to pixel offsets), for the primary WCS
    and every alternate one (``CRPIX1A``, ...); where the grid changes, IRAF's physical
    coordinates and sections (``LTV``, ``LTM``, ``DATASEC``, ...) are dropped.

    Example:
        >>> from astropy.io import fits
        >>> h = fits.Header({"CTYPE1": "RA---TAN", "CRPIX1": 10.0, "CDELT1": -0.1})
        >>> h2 = regrid_wcs(h, factor=2)
        >>> h2["CRPIX1"], h2["CDELT1"]
        (19.5, -0.05)
    """
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"factor must be a positive number, got {factor}")
    header = header.copy()
    if factor == 1 and tuple(origin) == (0, 0):
        return header  # the same grid
    for key in list(header.keys()):
        if re.match(r"(LTV|LTM|DATASEC|TRIMSEC|BIASSEC)", key):
            header.remove(key, ignore_missing=True, remove_all=True)
    offsets = {"1": origin[1], "2": origin[0]}  # FITS axis 1 is the column, axis 2 the row
    for key in list(header.keys()):
        crpix, cdelt = re.match(r"CRPIX([12])([A-Z]?)$", key), re.match(r"CDELT\d[A-Z]?$", key)
        if crpix:
            header[key] = factor * (header[key] - 0.5) + 0.5 - offsets[crpix[1]]
        elif re.match(r"CD\d_\d[A-Z]?$", key) or (cdelt and not _has_cd(header, key[-1])):
            header[key] = header[key] / factor
        elif SIP_TERM.match(key):
            sip = SIP_TERM.match(key)
            header[key] = header[key] * factor ** (1 - int(sip[2]) - int(sip[3]))
        elif key in ("A_DMAX", "B_DMAX"):
            header[key] = header[key] * factor
    for letter in _wcs_letters(header):  # a pixel scale of 1 (the default) given explicitly
        if not _has_cd(header, letter):
            for axis in offsets:
                header.setdefault(f"CDELT{axis}{letter}", 1.0 / factor)
    return header


def _wcs_letters(header: Any) -> list[str]:
    """The WCS a header describes: ``""`` (the primary) and the letters of alternate ones
    (``CRPIX1A``, ``CD1_1O``, ...)."""
    letters = set()
    for key in header.keys():
        found = WCS_KEY.match(key)
        if found:
            letters.add(found[1] if found[1] is not None else found[2])
    return sorted(letters)


def _has_cd(header: Any, letter: str) -> bool:
    """Whether the WCS ``letter`` (``""``: the primary; a digit: the primary too, from a key's
    last character) has a CD matrix, which takes the place of its CDELT."""
    letter = "" if letter.isdigit() else letter
    return any(re.match(rf"CD\d_\d{letter}$", key) for key in header.keys())


INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
"""The integer types read as images, and the value each scales to 1."""


def _scale_integers(array: np.ndarray, name: str, int32_as_16_bit: bool = False) -> np.ndarray:
    """Integers to ``[0, 1]`` by their type's range; ``int32_as_16_bit``: Pillow's mode ``I``
    (how it opens some 16-bit PNG and TIFF files) with values in 0-65535 is read as 16-bit."""
    if np.iscomplexobj(array):
        return array
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float64)
    top = INTEGER_RANGES.get(array.dtype.newbyteorder("="))  # big-endian files too
    int32 = array.dtype.newbyteorder("=") == np.int32  # int16 holds no 16-bit values
    if top is None and int32_as_16_bit and int32 and 0 <= array.min() <= array.max() < 2**16:
        top = 65535.0
    if top is None:
        raise ValueError(
            f"{name} holds {array.dtype} values, whose range rimkit cannot tell: it reads uint8 "
            "as 0-255, uint16 as 0-65535 and floats as images in [0, 1]; convert it to one of "
            "those"
        )
    return array.astype(np.float64) / top


def _check_array(array: np.ndarray, name: str) -> np.ndarray:
    """A value file's array checked (shape, finite numbers); integers stay as stored."""
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name} holds an array of shape {array.shape}; expected (H, W) or (H, W, C)"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name} holds {array.dtype} values; expected numbers")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf values; replace them before use")
    if array.ndim == 3 and array.shape[2] > 4:
        raise ValueError(
            f"{name} holds an array of shape {array.shape}; an image is (H, W) or (H, W, C) "
            "with C = 1 or 3 (2 or 4 with alpha): for channels first, np.moveaxis(a, 0, -1)"
        )
    if np.iscomplexobj(array):
        return array.astype(np.complex128)
    return array


LUMA_601 = np.array([0.299, 0.587, 0.114])
"""ITU-R 601 luma weights of R, G, B: gray as Pillow's ``L`` mode makes it."""


def _convert_channels(array: np.ndarray, gray: bool | None, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] in (2, 4):
        warnings.warn(f"{name}: its alpha channel is dropped", UserWarning, stacklevel=3)
        array = array[..., :-1]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if gray is True and array.ndim == 3:
        if array.shape[2] != 3:
            raise ValueError(f"{name} has {array.shape[2]} channels; cannot convert to gray")
        array = array @ LUMA_601
    elif gray is False and array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array


IMAGE_RANGE_LIMIT = 16.0
"""How far outside ``[0, 1]`` an image's values may reach (noise at sigma 255 stays within 6)."""


def check_image_range(image: np.ndarray, name: str, data_units: bool = True) -> None:
    """Refuse a real image whose values reach beyond +-:data:`IMAGE_RANGE_LIMIT`: image tasks
    take images in ``[0, 1]`` with the noise level on the 0-255 scale, so such values mean
    another scale (e.g. a float array of 0-255), which would be restored as noise-free.
    ``data_units``: the caller reads data of other scales with ``units='data'`` (say so).

    Example:
        >>> check_image_range(np.full((4, 4), 200.0), "x.npy")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: x.npy holds values up to 200; rimkit takes images in [0, 1] ...
    """
    if image.size == 0:
        return
    if not np.isfinite(image).all():
        raise ValueError(
            f"{name} holds NaN or Inf values; replace them first (restore leaves pixels out "
            "with mask=..., white = measured)"
        )
    if np.iscomplexobj(image):
        return
    low, high = float(image.min()), float(image.max())
    if high > IMAGE_RANGE_LIMIT or low < -IMAGE_RANGE_LIMIT:
        extreme = f"up to {high:g}" if high > -low else f"down to {low:g}"
        other = ", or for data of another scale give --units data (Python: units='data')"
        raise ValueError(
            f"{name} holds values {extreme}; rimkit takes images in [0, 1] (sigma on the 0-255 "
            f"scale): divide it by 255 (or by its maximum){other if data_units else ''}"
        )


def to_tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` array to a ``(1, C, H, W)`` tensor (complex stays complex)."""
    chw = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    if np.iscomplexobj(chw):
        dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    if not chw.dtype.isnative:  # big-endian, as FITS files store them
        chw = chw.astype(chw.dtype.newbyteorder("="))
    if chw.dtype in (np.longdouble, np.clongdouble):  # torch has no extended precision
        chw = chw.astype(np.complex128 if np.iscomplexobj(chw) else np.float64)
    chw = np.ascontiguousarray(chw)
    if not chw.flags.writeable:  # torch warns of read-only memory; the caller's stays as it is
        chw = chw.copy()
    return torch.from_numpy(chw).to(dtype)[None]


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` tensor to an ``(H, W)`` or ``(H, W, C)`` float64/complex128 array.

    Example:
        >>> from_tensor(torch.zeros(1, 3, 4, 5)).shape, from_tensor(torch.zeros(1, 1, 4, 5)).shape
        ((4, 5, 3), (4, 5))
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image of shape (1, C, H, W), got {tuple(x.shape)}")
    chw = x[0].detach().cpu()
    chw = chw.to(torch.complex128 if chw.is_complex() else torch.float64).numpy()
    return chw[0] if chw.shape[0] == 1 else np.moveaxis(chw, 0, -1)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Clip to ``[0, 1]`` and round to 8 bits.

    Example:
        >>> to_uint8(np.array([-0.1, 0.5, 2.0])).tolist()
        [0, 128, 255]
    """
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
