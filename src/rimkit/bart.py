"""k-space files of a scanner's reconstruction tools: BART's ``.cfl`` / ``.hdr`` pairs (complex
float32, column-major, up to 16 dimensions) and ``.npy`` k-space, read as ``(H, W)`` or
``(coils, H, W)`` complex arrays; a BART reference image for scoring.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from rimkit.io import load_array


def read_cfl(path: str | os.PathLike) -> np.ndarray:
    """A BART array: ``NAME.hdr`` (its dimensions) and ``NAME.cfl`` (raw complex64, Fortran
    order); ``path`` may name either file or the common stem. Trailing dimensions of 1 are
    dropped (BART writes 16), so a ``1 180 230 1 2 1 ... 1`` header gives shape
    ``(1, 180, 230, 1, 2)``.

    Example:
        >>> import tempfile
        >>> stem = Path(tempfile.mkdtemp()) / "img"
        >>> _ = stem.with_suffix(".hdr").write_text("# Dimensions\\n2 3 1 1\\n")
        >>> np.arange(6, dtype=np.complex64).tofile(stem.with_suffix(".cfl"))
        >>> read_cfl(stem).shape, read_cfl(stem)[1, 2]     # Fortran order: [1, 2] is 1 + 2 * 2
        ((2, 3), np.complex64(5+0j))
    """
    stem = Path(path)
    if stem.suffix in (".cfl", ".hdr"):
        stem = stem.with_suffix("")
    header, data = stem.with_suffix(".hdr"), stem.with_suffix(".cfl")
    for part in (header, data):
        if not part.is_file():
            raise ValueError(f"BART file {str(part)!r} does not exist (a .cfl needs its .hdr)")
    lines = [line for line in header.read_text().splitlines() if line.strip()]
    try:
        dims = [int(d) for d in lines[lines.index("# Dimensions") + 1].split()]
    except (ValueError, IndexError):
        raise ValueError(f"{str(header)!r} has no '# Dimensions' line of integers") from None
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    values = np.fromfile(data, dtype=np.complex64)
    if values.size != int(np.prod(dims)):
        raise ValueError(
            f"{str(data)!r} holds {values.size} values but its header says {dims} "
            f"({int(np.prod(dims))})"
        )
    return values.reshape(dims, order="F")


def read_kspace(path: str | os.PathLike, what: str = "k-space") -> np.ndarray:
    """Complex MRI data per coil as complex128 ``(coils, H, W)``: k-space, or coil sensitivity
    maps (``what`` names it in errors).

    ``.npy``: a complex ``(H, W)`` array (one coil) or ``(coils, H, W)``, coils first as in
    fastMRI. BART ``.cfl`` / ``.hdr`` (or their stem): dimensions 0-2 are space, of which two
    may exceed 1, and dimension 3 the coils, as BART writes them.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "k.npy"
        >>> np.save(path, np.ones((4, 6), dtype=np.complex64))
        >>> read_kspace(path).shape
        (1, 4, 6)
    """
    path = Path(path)
    if path.suffix.lower() in (".cfl", ".hdr") or (
        not path.suffix and path.with_suffix(".hdr").is_file()
    ):
        array = _bart_coils(read_cfl(path), str(path), what)
    elif path.suffix.lower() == ".npy":
        array = load_array(path, what)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise ValueError(
                f"{path} holds an array of shape {array.shape}; {what} is (H, W) for one coil "
                "or (coils, H, W)"
            )
        refuse_coils_last(array.shape, f"{path} holds an array of shape", what)
    else:
        raise ValueError(f"{what} must be a complex .npy array or a BART .cfl, got {str(path)!r}")
    if not np.iscomplexobj(array):
        raise ValueError(f"{path} holds real {array.dtype} values; {what} must be complex")
    if not np.isfinite(array).all():
        raise ValueError(f"{path} contains NaN or Inf values; {what} must be finite")
    return array.astype(np.complex128)


def refuse_coils_last(shape: tuple[int, ...], holder: str, what: str = "k-space") -> None:
    """Refuse a ``(coils, H, W)`` shape whose last axis is far shorter than the others: k-space
    in BART's and MATLAB's order, ``(H, W, coils)``. ``holder`` starts the message.

    Example:
        >>> refuse_coils_last((8, 64, 64), "k-space of shape")  # coils first: passes
        >>> refuse_coils_last((64, 64, 8), "k-space of shape")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: k-space of shape (64, 64, 8), which looks like (H, W, coils) ...
    """
    if len(shape) == 3 and shape[2] * 4 <= min(shape[:2]):
        raise ValueError(
            f"{holder} {shape}, which looks like (H, W, coils) (BART's and MATLAB's order); "
            f"{what} is (coils, H, W), coils first as in fastMRI: np.moveaxis(k, -1, 0)"
        )


def read_bart_image(path: str | os.PathLike) -> np.ndarray:
    """The magnitude ``(H, W)`` of a BART image (``.cfl`` / ``.hdr``), as a reference to score
    an MRI reconstruction against: of a ``pics`` result with several ESPIRiT maps (dimension
    4) the first map's image, which holds the image (a note says so); coil images refused.

    Example:
        >>> import tempfile
        >>> stem = Path(tempfile.mkdtemp()) / "img"
        >>> _ = stem.with_suffix(".hdr").write_text("# Dimensions\\n1 2 3 1 1\\n")
        >>> (-np.arange(6, dtype=np.complex64)).tofile(stem.with_suffix(".cfl"))
        >>> read_bart_image(stem).tolist()
        [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
    """
    array = read_cfl(path)
    dims = (*array.shape, *([1] * max(0, 5 - array.ndim)))
    if dims[4] > 1:
        warnings.warn(
            f"{str(path)!r} holds {dims[4]} ESPIRiT maps' images; the first, which holds the "
            "image, is taken as the reference",
            UserWarning,
            stacklevel=2,
        )
        array = array[:, :, :, :, 0]
    images = _bart_coils(array, str(path), "a reference image")
    if images.shape[0] > 1:
        raise ValueError(
            f"{str(path)!r} holds {images.shape[0]} coil images; a reference is one image: "
            "combine them first (bart rss 8)"
        )
    return np.abs(images[0]).astype(np.float64)


def _bart_coils(array: np.ndarray, name: str, what: str) -> np.ndarray:
    dims = (*array.shape, *([1] * max(0, 4 - array.ndim)))
    if any(d != 1 for d in dims[4:]):
        raise ValueError(
            f"{name} has dimensions {list(array.shape)}; {what} takes BART space (0-2) and coil "
            "(3) dimensions only: pick one map or slice first (bart slice)"
        )
    space = [d for d in dims[:3] if d != 1]
    if len(space) > 2:
        raise ValueError(f"{name} is a 3-D volume {dims[:3]}; give one 2-D slice")
    h, w = [*space, 1, 1][:2]
    volume = array.reshape(dims[:4], order="F")
    return np.moveaxis(volume.reshape(h, w, dims[3], order="F"), -1, 0)
