"""What ``rimkit eval`` and the evaluation runner do when not told: the tasks they know, the
baselines and noise levels run by default, the journal's file name.

Example:
    >>> DEFAULT_SIGMAS["denoise"]
    (15.0, 25.0, 50.0)
"""

from __future__ import annotations

TASKS = ("denoise", "sr", "inpaint", "blur", "projection", "lensing", "mri")


PATCH_TASKS = ("projection", "lensing")
"""Tasks evaluated on small patches with a global operator: run whole, drawn at 4x."""


DEFAULT_BASELINES: dict[str, tuple[str, ...]] = {
    "denoise": ("tv",),
    "sr": ("bicubic",),
    "inpaint": ("tv",),
    "blur": ("tv",),
    "projection": ("tv",),
    "lensing": ("tv",),
    "mri": ("zero-filled", "tv"),
}
"""Baselines run when none are named: cheap ones (BM3D takes seconds per image)."""


DEFAULT_SIGMAS: dict[str, tuple[float, ...]] = {
    "denoise": (15.0, 25.0, 50.0),
    "blur": (2.55, 7.65),
}
"""Noise levels (0-255) when none are given: the published ones; other tasks are noiseless."""


JOURNAL = "journal.jsonl"
"""``rimkit eval`` records finished images in ``OUT/journal.jsonl`` until it writes results."""
