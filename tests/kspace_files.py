"""Generated fastMRI-style data shared by the fastMRI tests: phantoms, their centred FFT and
files written in fastMRI's layout."""

from __future__ import annotations

import numpy as np


def fft2c(image: np.ndarray) -> np.ndarray:
    """fastMRI's centred orthonormal FFT over the last two axes."""
    axes = (-2, -1)
    shifted = np.fft.ifftshift(image, axes=axes)
    return np.fft.fftshift(np.fft.fft2(shifted, norm="ortho"), axes=axes)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    shifted = np.fft.ifftshift(kspace, axes=axes)
    return np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=axes)


def phantom(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth positive image in the middle half of a readout over-sampled twice, (2 h, w)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    body = np.exp(-(((yy - h / 2) / (h / 5)) ** 2) - ((xx - w / 2) / (w / 3)) ** 2)
    image = np.zeros((2 * h, w))
    image[h // 2 : h // 2 + h] = body * (0.8 + 0.2 * rng.random((h, w)))
    return image


def write_file(path, kspace, **datasets) -> None:
    """An HDF5 file with ``kspace`` and the named datasets (needs h5py)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
