"""A training run's data: the images of ``data.train`` / ``data.val`` (folders, volumes,
fastMRI files) cut into patch sets, the checks made before any work, and a digest of the pixels
that a resumed run compares.

Example:
    >>> import numpy as np
    >>> pixels_digest([np.zeros((4, 4), np.uint8)]) == pixels_digest([np.zeros((4, 4), np.uint8)])
    True
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from torch import Tensor

from rimkit.data import ImageFolder, PatchSet, list_images, validation_patches
from rimkit.data.volumes import (
    fastmri_folder,
    is_volume_file,
    read_volume,
    volume_axes,
    volume_slices,
)
from rimkit.train.config import (
    DataConfig,
    ExperimentConfig,
    resolve_data_root,
    resolve_folder,
)


def check_data(cfg: ExperimentConfig) -> None:
    """Fail early, with the usual message, when a data folder or volume is missing or empty."""
    for source in (*_sources(cfg.data.train), cfg.data.val):
        if source is None:
            continue
        path = resolve_folder(cfg.data, source)
        volumes = [path] if is_volume_file(path) else fastmri_folder(path)
        for volume in volumes or []:
            read_volume(volume)
        if not volumes:
            list_images(path)


def refuse_run_inside_data(cfg: ExperimentConfig, out: str | os.PathLike) -> None:
    """Refuse a run folder ``out`` that is an image folder of ``data.train`` / ``data.val`` or
    lies inside one: image folders are read with their sub-folders, so a run's files (and any
    image written there later) would sit among the training data.

    Example:
        >>> cfg = ExperimentConfig.from_dict({"data": {"train": "/photos"}})
        >>> refuse_run_inside_data(cfg, "/photos/run")
        Traceback (most recent call last):
        ...
        ValueError: the run folder '/photos/run' is inside the image folder of data.train ...
    """
    run = Path(out).resolve()
    for key, source in [("data.train", s) for s in _sources(cfg.data.train)] + [
        ("data.val", cfg.data.val)
    ]:
        if source is None:
            continue
        try:
            folder = resolve_folder(cfg.data, source).resolve()
        except (ValueError, OSError):
            continue  # a missing source gets its own message when the run reads it
        if folder.is_file() or folder not in (run, *run.parents):
            continue
        where = "is" if folder == run else "is inside"
        raise ValueError(
            f"the run folder {str(out)!r} {where} the image folder of {key} ({source!r}), "
            "which is read with its sub-folders; give a run folder outside it (e.g. runs/NAME)"
        )


def _sources(train: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(train, str):
        return (train,)
    if not train:
        raise ValueError("data.train is an empty list; give a folder of images or a volume file")
    return tuple(train)


def _same_folder(data: DataConfig, source: str, others: tuple[str, ...]) -> bool:
    """Whether ``source`` names the folder of one of ``others``, or one inside it, however
    the paths are written (``imgs/``, ``./imgs``, absolute, in the data root)."""
    try:
        folder = resolve_folder(data, source).resolve()
        return any(
            resolve_folder(data, other).resolve() in (folder, *folder.parents) for other in others
        )
    except (ValueError, OSError):
        return source in others


def _warn_if_eval_set(data: DataConfig, source: str, key: str) -> None:
    """A note where a training or validation source lies in the data root's ``eval/`` folder,
    which holds the benchmark sets (``../shared/data``'s layout): scores on them would then
    measure images the run has seen."""
    try:
        root = resolve_data_root(data).resolve()
        folder = resolve_folder(data, source).resolve()
    except (ValueError, OSError):
        return
    if root / "eval" in (folder, *folder.parents):
        warnings.warn(
            f"{key} {source!r} is an evaluation set (in the data root's eval/ folder): the "
            "benchmarks then score images this run has seen; train and validate on train/",
            UserWarning,
            stacklevel=5,
        )


def _source_images(data: DataConfig, source: str) -> list[np.ndarray]:
    """The uint8 (or uint16) ``(C, H, W)`` images of a folder, or the 2-D slices of a volume
    file or of a folder of fastMRI files (their reference images)."""
    path = resolve_folder(data, source)
    if is_volume_file(path):
        return volume_slices(path, volume_axes(path))
    files = fastmri_folder(path)
    if files:
        return [plane for f in files for plane in volume_slices(f, volume_axes(f))]
    folder = ImageFolder(path, gray=data.gray)
    small = [
        f"{f.name} ({img.shape[1]}x{img.shape[2]})"
        for f, img in zip(folder.files, folder.images, strict=True)
        if min(img.shape[1:]) < data.patch_size
    ]
    if small:
        names = ", ".join(small[:3]) + (", ..." if len(small) > 3 else "")
        raise ValueError(
            f"{len(small)} image(s) in {source!r} are smaller than data.patch_size "
            f"{data.patch_size}: {names}; leave them out or lower data.patch_size"
        )
    return folder.images


def load_patches(cfg: ExperimentConfig) -> tuple[PatchSet, Tensor]:
    data = cfg.data
    first, *others = _sources(data.train)
    for source in _sources(data.train):
        _warn_if_eval_set(data, source, "data.train")
    if data.val is not None:
        _warn_if_eval_set(data, data.val, "data.val")
    images = _source_images(data, first)
    if data.val is not None:
        if _same_folder(data, data.val, _sources(data.train)):
            warnings.warn(
                f"data.val {data.val!r} is one of the training sources: validation then scores "
                "images the model trains on; give held-out images",
                UserWarning,
                stacklevel=4,
            )
        train, val = images, _source_images(data, data.val)
    else:
        if len(images) <= data.val_images or data.val_images < 1:
            raise ValueError(
                f"{len(images)} image(s) in {first!r}: too few to hold out "
                f"data.val_images={data.val_images} for validation and train on the rest"
            )
        train, val = images[: -data.val_images], images[-data.val_images :]
    for source in others:
        train = train + _source_images(data, source)
    if len({img.shape[0] for img in train + val}) > 1:
        raise ValueError(
            f"the sources {list(_sources(data.train))} mix gray and colour images; "
            "set data.gray to convert them"
        )
    channels = train[0].shape[0]
    if channels != cfg.model.channels and not _is_mri(cfg):
        raise ValueError(
            f"the images have {channels} channel(s) but model.channels is "
            f"{cfg.model.channels}; set data.gray accordingly"
        )
    val_source = f"data.val {data.val!r}" if data.val is not None else f"data.train {first!r}"
    patches = _patch_set(train, data.patch_size, data.stride, f"data.train {data.train!r}")
    val_set = _patch_set(val, data.patch_size, data.patch_size, val_source)
    if len(val_set) < data.val_patches:
        warnings.warn(
            f"data.val_patches is {data.val_patches}, but the validation images ({val_source}) "
            f"hold {len(val_set)} non-overlapping patches: it validates on those; hold out more "
            "images (data.val_images) or give data.val_patches <= that",
            UserWarning,
            stacklevel=4,
        )
    return patches, validation_patches(val_set, data.val_patches, cfg.optim.seed)


def _patch_set(images: list[np.ndarray], size: int, stride: int, source: str) -> PatchSet:
    """:class:`PatchSet` whose refusal names the config entry the images came from."""
    try:
        return PatchSet(images, size, stride)
    except ValueError as err:
        raise ValueError(f"{source}: {err} (or leave such images out)") from None


def _is_mri(cfg: ExperimentConfig) -> bool:
    return any(t.get("name") == "mri" for t in cfg.tasks)


def pixels_digest(arrays: list[np.ndarray]) -> str:
    """A short digest of arrays' shapes and values, in order: the same images give the same
    digest wherever they lie.

    Example:
        >>> a = np.zeros((1, 2, 2), np.uint8)
        >>> pixels_digest([a]) == pixels_digest([a.copy()]) != pixels_digest([a + 1])
        True
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]
