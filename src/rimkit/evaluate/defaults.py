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


TASK_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "scales": ("--scale", ("sr",)),
    "quantize": ("--quantize", ("denoise",)),
    "fractions": ("--fraction", ("inpaint",)),
    "kernels": ("--kernel", ("blur",)),
    "boundary": ("--boundary", ("blur",)),
    "kinds": ("--kinds", ("projection",)),
    "ratios": ("--ratio", ("projection",)),
    "patch": ("--patch", ("inpaint", *PATCH_TASKS)),
    "patches": ("--patches", ("inpaint", *PATCH_TASKS)),
    "einstein_radii": ("--einstein-radius", ("lensing",)),
    "psf": ("--psf", ("lensing",)),
    "accelerations": ("--acceleration", ("mri",)),
    "mask": ("--mask", ("mri",)),
    "coils": ("--coils", ("mri",)),
    "measured": ("--measured", ("mri",)),
}
"""The evaluation options only some tasks read: ``EvalSpec`` field -> (its ``rimkit eval``
flag, those tasks). The other tasks refuse them (:func:`refuse_options_of_other_tasks`)."""


def refuse_options_of_other_tasks(task: str, given: list[str]) -> None:
    """Refuse the :data:`TASK_OPTIONS` fields in ``given`` (set by a caller) that ``task``
    does not read; a task rimkit does not know is left to the caller's own error.

    Example:
        >>> refuse_options_of_other_tasks("sr", ["scales"])  # sr reads --scale
        >>> refuse_options_of_other_tasks("denoise", ["kinds"])
        Traceback (most recent call last):
        ValueError: --kinds applies to --task projection only, not denoise; leave it out
    """
    for name in given:
        flag, tasks = TASK_OPTIONS[name]
        if task in TASKS and task not in tasks:
            only = " / ".join(tasks)
            raise ValueError(f"{flag} applies to --task {only} only, not {task}; leave it out")
