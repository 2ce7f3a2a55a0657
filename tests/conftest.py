"""Shared fixtures: generated training images (the tests never need ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def smooth_images(count: int, shape: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Piecewise-smooth uint8 gray images: blurred random blobs and a gradient."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=4)
        field = (field > 0).astype(float) * 0.5 + np.linspace(0, 0.4, shape[1])[None, :]
        field = ndimage.gaussian_filter(field, sigma=1) + 0.05
        images.append(np.round(np.clip(field, 0, 1) * 255).astype(np.uint8))
    return images


@pytest.fixture
def image_folder(tmp_path):
    """A folder of 6 generated 40x48 gray PNGs."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(smooth_images(6, (40, 48))):
        Image.fromarray(img).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture
def image():
    """Two smooth 16x16 gray images as a ``(2, 1, 16, 16)`` tensor."""
    import torch

    from blobs import smooth_images

    return smooth_images(2, 16, torch.Generator().manual_seed(0))
