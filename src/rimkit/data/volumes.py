"""3-D volumes (MRI) as a stack of 2-D training images.

A volume file is an ``.npz`` (its one array, or the array called ``volume``) or an ``.npy``
holding a ``(D1, D2, D3)`` array (a trailing axis of length 1 is dropped), or a fastMRI file
(its reference images, slices along the last axis; :mod:`rimkit.fastmri`). It is scaled to
``[0, 1]`` by its own maximum and cut into 2-D slices along each of ``axes``; slices with
less than ``min_fill`` of their pixels above 5 % of that maximum (the empty ends of a brain
volume) are skipped. Each slice becomes a uint8 ``(1, H, W)`` image, the form
:class:`~rimkit.data.PatchSet` takes.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "head.npz")
    >>> vol = np.zeros((6, 8, 10), np.uint16)
    >>> vol[1:5, 2:6, 2:8] = 1000                  # a box in an empty field of view
    >>> np.savez(path, volume=vol)
    >>> slices = volume_slices(path, axes=(0,), min_fill=0.2)
    >>> len(slices), slices[0].shape, int(slices[0].max())
    (4, (1, 8, 10), 255)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rimkit.fastmri import is_fastmri, read_reference_volume
from rimkit.io import load_array

VOLUME_SUFFIXES = (".npz", ".npy", ".h5", ".hdf5")
SIGNAL_LEVEL = 0.05
"""A pixel counts as signal above this fraction of the volume's maximum."""


def fastmri_folder(path: str | os.PathLike) -> list[Path] | None:
    """The fastMRI files (``.h5``) in the folder ``path`` and its sub-folders, sorted, when it
    holds some and no images; else ``None`` (a folder of images, or not a folder)."""
    from rimkit.data.images import FOLDER_SUFFIXES
    from rimkit.io import file_suffix

    path = Path(path)
    if not path.is_dir():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if any(file_suffix(p) in FOLDER_SUFFIXES for p in files):
        return None
    found = [p for p in files if is_fastmri(p)]
    return found or None


def volume_axes(path: str | os.PathLike) -> tuple[int, ...]:
    """The axes training cuts a volume file along: all three for an ``.npz`` / ``.npy`` (a
    3-D scan), the slice axis alone for a fastMRI file (its reference images)."""
    return (2,) if is_fastmri(path) else (0, 1, 2)


def is_volume_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a volume for :func:`volume_slices` (by its suffix; a folder of
    images is not one)."""
    path = Path(path)
    return not path.is_dir() and path.suffix.lower() in VOLUME_SUFFIXES


def read_volume(path: str | os.PathLike) -> np.ndarray:
    """The ``(D1, D2, D3)`` float64 volume of ``path`` scaled to ``[0, 1]`` by its maximum."""
    path = Path(path)
    if path.suffix.lower() not in VOLUME_SUFFIXES:
        raise ValueError(
            f"volume {str(path)!r} is not an .npz, .npy or fastMRI .h5 file; give a 3-D volume "
            "such as ../shared/data/mri/mni152_t1_2009a.npz, or a folder of images"
        )
    if is_fastmri(path):  # its reference images, slices last
        return _check_volume(np.moveaxis(read_reference_volume(path), 0, -1), path)
    loaded = load_array(path, "a volume")
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            array = _pick_array(loaded, path)
    else:
        array = loaded
    return _check_volume(array, path)


def _pick_array(npz: np.lib.npyio.NpzFile, path: Path) -> np.ndarray:
    keys = list(npz.keys())
    if "volume" in keys:
        return npz["volume"]
    if len(keys) == 1:
        return npz[keys[0]]
    raise ValueError(
        f"{str(path)!r} holds arrays {keys}; name the volume 'volume' or keep one array in it"
    )


def _check_volume(array: np.ndarray, path: Path) -> np.ndarray:
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ValueError(f"{str(path)!r} holds an array of shape {array.shape}; expected 3-D")
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{str(path)!r} holds {array.dtype} values; expected real numbers")
    volume = array.astype(np.float64)
    if not np.isfinite(volume).all():
        raise ValueError(f"{str(path)!r} contains NaN or Inf values; replace them before use")
    if volume.min() < 0:
        raise ValueError(f"{str(path)!r} has negative values; expected magnitudes (>= 0)")
    peak = volume.max()
    if peak <= 0:
        raise ValueError(f"{str(path)!r} is all zeros")
    return volume / peak


def volume_planes(
    path: str | os.PathLike,
    axes: tuple[int, ...] = (0, 1, 2),
    min_fill: float = 0.25,
) -> list[tuple[str, np.ndarray]]:
    """``(name, plane)`` for the uint8 ``(1, H, W)`` slices of the volume in ``path`` along
    ``axes``, in order; ``name`` is ``axis<a>-<index>`` (e.g. ``axis2-017``)."""
    if not axes or any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"axes must be a non-empty subset of (0, 1, 2), got {axes}")
    if not 0.0 <= min_fill < 1.0:
        raise ValueError(f"min_fill must be in [0, 1), got {min_fill}")
    volume = read_volume(path)
    planes = []
    for axis in axes:
        for index in range(volume.shape[axis]):
            plane = np.take(volume, index, axis=axis)  # (H, W)
            if (plane > SIGNAL_LEVEL).mean() >= min_fill:
                image = np.round(plane * 255.0).astype(np.uint8)[None]  # (1, H, W)
                planes.append((f"axis{axis}-{index:03d}", image))
    if not planes:
        raise ValueError(
            f"no slice of {str(path)!r} has {min_fill:.0%} of its pixels above "
            f"{SIGNAL_LEVEL:.0%} of the maximum; lower min_fill"
        )
    return planes


def volume_slices(
    path: str | os.PathLike,
    axes: tuple[int, ...] = (0, 1, 2),
    min_fill: float = 0.25,
) -> list[np.ndarray]:
    """The uint8 ``(1, H, W)`` slices of :func:`volume_planes`, without their names."""
    return [plane for _, plane in volume_planes(path, axes, min_fill)]
