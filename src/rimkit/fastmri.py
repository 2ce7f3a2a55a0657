"""Reading fastMRI files (Zbontar et al., "fastMRI: An open dataset and benchmarks for
accelerated MRI", 2018): one slice's k-space and the file's reference image.

A fastMRI HDF5 file holds one acquisition: ``kspace``, complex, ``(slices, H, W)`` for the
single-coil track or ``(slices, coils, H, W)`` for the multi-coil one, centred (the k-space
origin in the middle, as rimkit's MRI operators take it), with the phase encodes along the
width. Training and validation files are fully sampled and carry a reference magnitude image,
``reconstruction_esc`` (single coil: the inverse FFT of the k-space, cropped to the central
320 x 320) and ``reconstruction_rss`` (the root sum of squares of the coil images, cropped the
same way); test files are under-sampled (zero columns) and carry none. The readout (height) is
usually over-sampled twice, so a reconstruction of the whole k-space is taller than the
reference; :func:`center_crop` cuts it to the reference's size, as fastMRI's scoring does.

Needs ``h5py`` (``pip install 'rimkit[fastmri]'``).

Example:
    >>> import h5py, numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "file1000.h5")
    >>> with h5py.File(path, "w") as f:
    ...     _ = f.create_dataset("kspace", data=np.ones((3, 4, 16, 12), np.complex64))
    >>> piece = read_fastmri(path)
    >>> piece.kspace.shape, piece.index, piece.slices, piece.reference is None
    ((4, 16, 12), 1, 3, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUFFIXES = (".h5", ".hdf5")
REFERENCES = {3: ("reconstruction_esc", "reconstruction_rss"), 4: ("reconstruction_rss",)}
"""The reference images a file may hold by its k-space's dimensions, in the order they are
taken: single-coil k-space (3-D) is scored against the inverse FFT of itself (esc),
multi-coil (4-D) against the coils' root sum of squares (rss)."""


@dataclass(frozen=True)
class FastMRISlice:
    """One slice of a fastMRI file: its k-space ``(coils, H, W)`` (complex128, one coil for the
    single-coil track), which slice of how many, and the file's reference image of that slice
    (float64 ``(h, w)``, ``None`` in a test file) with the name of the dataset it came from."""

    kspace: np.ndarray
    index: int
    slices: int
    reference: np.ndarray | None
    reference_name: str | None


def is_fastmri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an HDF5 file (by its suffix), as fastMRI distributes them."""
    return Path(path).suffix.lower() in SUFFIXES


def read_fastmri(path: str | os.PathLike, slice_index: int | None = None) -> FastMRISlice:
    """Slice ``slice_index`` (default: the middle one) of the fastMRI file ``path``.

    Raises ``ValueError`` naming the problem for a missing file, a file that is not HDF5 or has
    no complex ``kspace`` dataset of 3 or 4 dimensions, and a slice out of range."""
    with _open(path) as handle:
        if "kspace" not in handle:
            held = ", ".join(sorted(handle.keys())) or "nothing"
            raise ValueError(
                f"{str(path)!r} has no 'kspace' dataset (it holds {held}); rimkit reads fastMRI "
                "files: kspace (slices, H, W) or (slices, coils, H, W)"
            )
        kspace = handle["kspace"]
        if kspace.ndim not in (3, 4) or kspace.dtype.kind != "c":
            raise ValueError(
                f"{str(path)!r}: kspace is {kspace.dtype} of shape {kspace.shape}; fastMRI "
                "k-space is complex (slices, H, W) or (slices, coils, H, W)"
            )
        if kspace.shape[-1] * 4 <= min(kspace.shape[-3:-1]):
            raise ValueError(
                f"{str(path)!r}: kspace has shape {kspace.shape}, whose last axis looks like "
                "slices or coils; fastMRI stores (slices, H, W) or (slices, coils, H, W)"
            )
        if kspace.ndim == 4 and kspace.shape[1] > min(kspace.shape[2:]):
            raise ValueError(
                f"{str(path)!r}: kspace has shape {kspace.shape}, more coils than pixels on a "
                "side: (H, W, coils, slices)? fastMRI stores (slices, coils, H, W): "
                "np.transpose(kspace, (3, 2, 0, 1))"
            )
        slices = kspace.shape[0]
        index = slices // 2 if slice_index is None else slice_index
        if not 0 <= index < slices:
            raise ValueError(
                f"slice {index} is out of range: {str(path)!r} has {slices} slices "
                f"(0 to {slices - 1})"
            )
        piece = np.asarray(kspace[index], dtype=np.complex128)
        piece = piece[None] if kspace.ndim == 3 else piece  # (coils, H, W)
        name = next((n for n in REFERENCES[kspace.ndim] if n in handle), None)
        reference = None if name is None else np.asarray(handle[name][index], dtype=np.float64)
    if not np.isfinite(piece).all():
        raise ValueError(f"{str(path)!r}: slice {index} of kspace holds NaN or Inf values")
    return FastMRISlice(piece, index, slices, reference, name)


def slice_count(path: str | os.PathLike) -> int:
    """How many slices the fastMRI file ``path`` holds (its k-space is not read)."""
    with _open(path) as handle:
        if "kspace" not in handle:
            raise ValueError(f"{str(path)!r} has no 'kspace' dataset; it is not a fastMRI file")
        return int(handle["kspace"].shape[0])


def read_reference_volume(path: str | os.PathLike) -> np.ndarray:
    """The reference images of every slice of the fastMRI file ``path``, float64 ``(slices,
    h, w)``: ``reconstruction_esc`` for single-coil k-space, else ``reconstruction_rss`` (what
    ``rimkit eval --data FILE.h5`` simulates k-space from, as from any magnitude volume)."""
    with _open(path) as handle:
        dims = 4 if "kspace" in handle and handle["kspace"].ndim == 4 else 3
        name = next((n for n in REFERENCES[dims] if n in handle), None)
        if name is None:
            raise ValueError(
                f"{str(path)!r} holds no reference images (reconstruction_esc / "
                "reconstruction_rss; a test-set file has none): evaluation needs a training or "
                "validation file"
            )
        return np.asarray(handle[name], dtype=np.float64)


def center_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The central ``shape`` of the last two axes of ``image`` (fastMRI's crop: the start is
    ``(size - crop) // 2``); an axis shorter than the crop is kept whole.

    Example:
        >>> center_crop(np.arange(24).reshape(4, 6), (2, 2))
        array([[ 8,  9],
               [14, 15]])
    """
    h, w = image.shape[-2:]
    ch, cw = min(shape[0], h), min(shape[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[..., top : top + ch, left : left + cw]


def _open(path: str | os.PathLike):
    """The HDF5 file ``path`` open for reading; a missing or non-HDF5 file is a ValueError."""
    h5py = _import_h5py()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"fastMRI file {str(path)!r} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise ValueError(f"{str(path)!r} is not an HDF5 file; fastMRI files are HDF5") from None


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ValueError(
            "reading fastMRI .h5 files needs h5py: pip install 'rimkit[fastmri]' (or h5py)"
        ) from None
    return h5py
