"""Mends from an audit of training on one's own images: 16-bit images keep their precision,
nearly black images and left-out files are noted, and the recipe mistakes it found are
named where they are made."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from rimkit.data import ImageFolder, list_images
from rimkit.data.patches import PatchSet


def _ramp(height: int = 40, width: int = 48) -> np.ndarray:
    return np.linspace(0, 1, height * width).reshape(height, width)


def test_16_bit_images_keep_their_precision(tmp_path):
    deep = np.round(_ramp() * 65535).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.fromarray(np.round(_ramp() * 255).astype(np.uint8)).save(tmp_path / "flat.png")
    folder = ImageFolder(tmp_path)
    kept = {f.name: img for f, img in zip(folder.files, folder.images, strict=True)}
    assert kept["deep.png"].dtype == np.uint16 and kept["flat.png"].dtype == np.uint8
    restored = folder[0].numpy()[0]  # deep.png, sorted first
    assert np.abs(restored - deep / 65535).max() < 1e-6  # 8 bits would be off by up to 2e-3
    patch = PatchSet(folder.images, size=16, stride=8).patch(0)
    assert np.abs(patch.numpy()[0] - deep[:16, :16] / 65535).max() < 1e-6


def test_nearly_black_images_and_left_out_files_are_noted(tmp_path):
    twelve_bit = np.round(_ramp() * 4080).astype(np.uint16)  # 12-bit data in a 16-bit file
    Image.fromarray(twelve_bit).save(tmp_path / "dim.png")
    Image.fromarray(np.round(_ramp() * 255).astype(np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "notes.txt").write_text("labels")
    (tmp_path / "._ok.png").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble: skipped
    with pytest.warns(UserWarning, match=r"1 file\(s\) in .* are left out, .*\(notes.txt\)"):
        files = list_images(tmp_path)
    assert [f.name for f in files] == ["dim.png", "ok.png"]
    with pytest.warns(UserWarning, match=r"1 of 2 image\(s\) in .* are nearly black .*'dim.png'"):
        ImageFolder(tmp_path, files=files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolder(tmp_path, files=files[1:])
