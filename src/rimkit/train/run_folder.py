"""A training run's folder: its lock, what it holds, and the checks that let a resumed run go on
only with the recipe, data and process count it started with.

Example:
    >>> import tempfile
    >>> run_files(tempfile.mkdtemp())
    []
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from rimkit.train.checkpoint import load_checkpoint, read_meta
from rimkit.train.config import (
    ExperimentConfig,
    OptimConfig,
)
from rimkit.train.distributed import dist_world
from rimkit.train.schedule import lr_at

LOCKED_BY_LAUNCHER = "RIMKIT_RUN_LOCKED"
"""Set in the processes :func:`rimkit.train.launch.launch` spawns: it holds the run's lock."""


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` while a run trains in ``out``, so that a second run there (a
    resume started twice) is refused instead of writing the same files; released (and the
    file removed) at the end, and by the system when the process dies.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with run_lock(folder):
        ...     with run_lock(folder):
        ...         pass
        Traceback (most recent call last):
        ...
        ValueError: ... is being trained by another process (PID ...): wait for it ...
    """
    try:
        import fcntl
    except ImportError:  # not on Linux or macOS: no lock
        yield
        return
    path = out / ".lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _still_named(handle, path):  # removed by a holder leaving as we came: busy
                raise BlockingIOError
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise ValueError(
                f"{str(out)!r} is being trained by another process (PID {pid}): wait for it or "
                "stop it, then resume"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            (out / ".lock").unlink(missing_ok=True)  # a run folder keeps no lock file
            fcntl.flock(handle, fcntl.LOCK_UN)


def _still_named(handle: Any, path: Path) -> bool:
    """Whether the open file ``handle`` is still the file at ``path`` (not removed since)."""
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def restore_last(
    out: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    average: AveragedModel | None,
    meta: dict[str, Any],
) -> tuple[int, int, list[float], float]:
    """Load ``out/last`` (its ``meta``, the recipe checked already); returns the iteration,
    skipped count, scores and best score."""
    if meta.get("world_size", 1) != dist_world():
        raise ValueError(
            f"the run in {str(out)!r} used {meta.get('world_size')} process(es), this one "
            f"{dist_world()}; resume with the same number so batches repeat"
        )
    load_checkpoint(out / "last", model, optimizer, average)
    best_file = out / "best.safetensors"
    best = read_meta(out / "best")["val_psnr_final"] if best_file.exists() else -math.inf
    scores = list(meta.get("val_psnr_per_step") or [])
    return meta["iteration"], meta.get("skipped", 0), scores, best


def check_same_data(out: Path, sizes: dict[str, int | str], meta: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` (its last checkpoint's ``meta``) on other images:
    its data paths may change (the same images, moved), but not the training and validation
    patches they give, counted and by a digest of their pixels (what a run saved before either
    was recorded lacks is not checked)."""
    saved = meta.get("data")
    if not isinstance(saved, dict):
        return
    differ = [
        f"{k} {saved[k]} then, {v} now" if k.endswith("patches") else f"{k[:-7]} pixels differ"
        for k, v in sizes.items()
        if k in saved and saved[k] != v
    ]
    if differ:
        raise ValueError(
            f"the run in {str(out)!r} was trained on other images ({'; '.join(differ)}); a "
            "resumed run continues on the same ones (data.train / val may say where they now "
            "lie): start a new run from it with optim.init instead"
        )


def check_same_recipe(out: Path, cfg: ExperimentConfig, meta: dict[str, Any]) -> None:
    """Refuse to resume the run in ``out`` (its last checkpoint's ``meta``) with another recipe
    than it was made with, but for :data:`RESUMABLE_CHANGES`; ``optim.iterations`` may only
    grow."""
    saved = meta.get("config", {})
    try:  # a run saved before a config key existed gets that key's default
        saved = ExperimentConfig.from_dict(saved).to_dict()
    except ValueError:
        pass  # an unreadable saved config: compare it as stored, which names what differs
    changed = _changed_keys(saved, cfg.to_dict())
    if changed:
        raise ValueError(
            f"the run in {str(out)!r} was made with another config ({', '.join(changed)} "
            "differ); a resumed run must repeat the same recipe (only optim.iterations may grow, "
            "and data.train / val / root may say where the same images now lie)"
        )
    _check_iterations(saved.get("optim", {}), cfg.optim, int(meta.get("iteration", 0)))


def _check_iterations(saved: dict[str, Any], optim: OptimConfig, reached: int) -> None:
    """``optim.iterations`` of a resumed run may only grow; a stretched schedule is noted with
    the jump it makes in the learning rate at the iteration the run resumes from."""
    before = int(saved.get("iterations", optim.iterations))
    if optim.iterations < before:
        raise ValueError(
            f"optim.iterations {optim.iterations} is below the run's {before}; a resumed run may "
            f"only grow (it reached iteration {reached}); start a new run for a shorter recipe"
        )
    if optim.iterations > before and optim.schedule != "constant":
        old = dataclasses.replace(optim, iterations=before)
        warnings.warn(
            f"optim.iterations {before} -> {optim.iterations} stretches the {optim.schedule} "
            f"schedule: the learning rate at iteration {reached} goes from "
            f"{lr_at(old, reached):.3g} to {lr_at(optim, reached):.3g}",
            UserWarning,
            stacklevel=2,
        )


RESUMABLE_CHANGES = {
    "optim.iterations",
    "optim.threads",
    "optim.tensorboard",
    "optim.device",
    "optim.precision",
    "data.train",
    "data.val",
    "data.root",
}
"""Config keys a resumed run may change: how long, how many threads, what it logs, what it
runs on (a GPU run continued on a CPU; its random projections are then drawn by the CPU's
generator, other draws stay those of the seed and iteration), and where its images now lie
(the same images, moved: a run resumed in another folder or machine)."""


def _changed_keys(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(saved) | set(now)):
        name = f"{prefix}{key}"
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{name}.")
        elif a != b and name not in RESUMABLE_CHANGES:
            keys.append(name)
    return keys


RUN_FILES = ("log.csv", "model.safetensors", "last.safetensors", "last.json", "best.safetensors")


def run_files(out: str | os.PathLike) -> list[str]:
    """The files of a run that ``out`` holds (:data:`RUN_FILES`, ``best.json``)."""
    return [name for name in (*RUN_FILES, "best.json") if (Path(out) / name).exists()]


def refuse_existing_run(
    out: Path, resume: str = "train(..., resume=True)", force: str = "force=True"
) -> None:
    """Refuse to start a fresh run in ``out`` when it holds another run's files; the message
    says how to continue it (``resume``, where it has a checkpoint) or start over (``force``),
    in the caller's words (the command line's flags, Python's keywords).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> refuse_existing_run(folder)  # an empty folder is fine
        >>> _ = (folder / "last.safetensors").write_bytes(b"")
        >>> try:
        ...     refuse_existing_run(folder)
        ... except ValueError as err:
        ...     print(str(err).split("; ")[1][:55])
        continue it with train(..., resume=True), or pass force
    """
    held = run_files(out)
    if held:
        go_on = f"continue it with {resume}, or " if "last.safetensors" in held else ""
        raise ValueError(
            f"{str(out)!r} holds a run ({', '.join(held)}); {go_on}pass {force} to start over "
            "in it (its files are removed)"
        )


def clear_run(out: Path) -> None:
    """A fresh start in a run folder (``force``) removes the old run's outputs first."""
    for name in (*RUN_FILES, "best.json"):
        (out / name).unlink(missing_ok=True)
    if (out / "tensorboard").is_dir():
        shutil.rmtree(out / "tensorboard")
