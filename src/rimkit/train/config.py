"""Typed training configuration read from YAML; unknown keys and wrong types are errors.

A config has four sections: ``model`` (:class:`rimkit.models.RIMConfig`), ``data``
(:class:`DataConfig`), ``tasks`` (a list of task entries, each ``name`` plus the fields of that
task class in :data:`rimkit.tasks.TASKS`, plus a ``weight``) and ``optim``
(:class:`OptimConfig`). ``--set section.key=value`` overrides are applied before validation.

Example:
    >>> cfg = ExperimentConfig.from_dict({
    ...     "model": {"features": 8, "hidden": 8, "train_steps": 4},
    ...     "tasks": [{"name": "denoise", "sigma": [0, 55]}],
    ...     "optim": {"iterations": 10},
    ... })
    >>> cfg.optim.iterations, cfg.tasks[0]["sigma"]
    (10, [0, 55])
    >>> apply_overrides(cfg.to_dict(), ["optim.lr=0.0005"])["optim"]["lr"]
    0.0005
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from rimkit.models import LOSSES, WEIGHT_SCHEMES, RIMConfig
from rimkit.precision import check_precision
from rimkit.runtime import DEVICE_FORM
from rimkit.tasks import TASKS, Task, TaskMixture

SHARED_DATA_CANDIDATES = ("../shared/data", "shared/data")


@dataclass(frozen=True)
class DataConfig:
    """Where the patches come from.

    ``train`` is a folder of images (absolute, or relative to ``root``), a 3-D volume file
    (``.npz`` / ``.npy``, cut into 2-D slices along each axis; see
    :func:`rimkit.data.volumes.volume_slices`), a fastMRI ``.h5`` file or a folder of them
    (their reference images, slice by slice), or a list of such sources whose images are
    pooled. The last ``val_images`` images of the (first) source are held out and
    ``val_patches`` validation patches are drawn from them, unless ``val`` names another
    source. ``root`` defaults to ``$RIMKIT_DATA`` or ``../shared/data``.
    """

    train: str | tuple[str, ...] = "train/BSDS300-train"
    val: str | None = None
    root: str | None = None
    gray: bool = True
    patch_size: int = 32
    stride: int = 4
    val_images: int = 10
    val_patches: int = 1000

    def __post_init__(self) -> None:  # a Path (or a list of them) is kept as str
        for name in DATA_PATHS:
            object.__setattr__(self, name, paths_as_str(getattr(self, name)))


DATA_PATHS = ("train", "val", "root")
"""The :class:`DataConfig` fields that name files or folders (a ``Path`` is taken too)."""


def paths_as_str(value: Any) -> Any:
    """``value`` with every ``os.PathLike`` in it (or in a list of them) as a ``str``.

    Example:
        >>> paths_as_str(Path("imgs")), paths_as_str([Path("a"), "b"]), paths_as_str(None)
        ('imgs', ['a', 'b'], None)
    """
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(paths_as_str(v) for v in value)
    return value


@dataclass(frozen=True)
class OptimConfig:
    """Adam, a learning-rate schedule, clipping, loss over time, and the run's rhythm.

    ``tensorboard: true`` also writes every metric as TensorBoard scalars into the run folder
    (the optional extra ``rimkit[tensorboard]``). ``precision: bf16`` runs the RIM's cell under
    bfloat16 autocast (the estimate, the likelihood gradient and the loss stay float32;
    :mod:`rimkit.precision`): for GPUs, and CPUs with AVX512-BF16 or AMX.
    ``init`` fine-tunes: the run starts from those weights (a shipped model's name, or a run folder
    or ``.safetensors`` file relative to the working directory, of the architecture the ``model``
    section describes) with a fresh optimiser and schedule, instead of a random initialisation.
    ``ema`` (e.g. ``0.999``; ``0`` is off) keeps an exponential moving average of the weights,
    ``w_avg <- ema * w_avg + (1 - ema) * w`` after every step: validation, ``best`` and the
    exported weights are then the average's, which smooths the noise of small batches.
    ``max_train_steps`` (``None``: always ``model.train_steps``) unrolls each iteration a number
    of steps drawn uniformly from ``model.train_steps .. max_train_steps``, with the loss on
    every step, so the model learns to hold its estimate past the ``T`` it is run with.
    ``step_weights`` weighs the loss of each step (:mod:`rimkit.models.losses`): ``uniform``
    (the default) is the mean over steps, ``sum`` the paper's sum, ``T`` times larger, which
    ``clip_grad`` (the norm the gradient is clipped to) then meets ``T`` times sooner.
    ``fit_weight`` (``0``: off) adds ``fit_weight * sum_t w_t ||A(x_t) - A(x)||^2 / n`` to the
    loss, the error in what each batch's operator measures
    (:func:`rimkit.models.losses.measurement_fit_loss`).
    """

    iterations: int = 10000
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup: int = 0
    min_lr_ratio: float = 0.05
    clip_grad: float = 1.0
    weight_decay: float = 0.0
    loss: str = "mse"
    step_weights: str = "uniform"
    val_every: int = 500
    val_steps: int | None = None
    checkpoint_every: int = 500
    max_nonfinite: int = 20
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    tensorboard: bool = False
    init: str | None = None
    ema: float = 0.0
    max_train_steps: int | None = None
    fit_weight: float = 0.0


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole recipe: model, data, tasks and optimisation."""

    model: RIMConfig = field(default_factory=RIMConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tasks: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "denoise"}])
    optim: OptimConfig = field(default_factory=OptimConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        if not isinstance(values, dict):
            raise ValueError(f"a config is a mapping of sections, got {type(values).__name__}")
        _reject_unknown(values, cls, "config")
        tasks = values.get("tasks", [{"name": "denoise"}])
        if not isinstance(tasks, list) or not tasks:
            raise ValueError("tasks must be a non-empty list of {name: ..., ...} entries")
        cfg = cls(
            model=typed(RIMConfig, values.get("model", {}), "model"),
            data=typed(DataConfig, _data_paths(values.get("data", {})), "data"),
            tasks=[dict(t) if isinstance(t, dict) else t for t in tasks],
            optim=typed(OptimConfig, values.get("optim", {}), "optim"),
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise a ``ValueError`` naming the first wrong entry: types, ranges and names of every
        section, so a config built from the dataclasses is checked as a YAML one is.

        Example:
            >>> ExperimentConfig(optim=OptimConfig(schedule="cosin")).check()
            Traceback (most recent call last):
            ...
            ValueError: unknown optim.schedule 'cosin'; known: ('constant', 'cosine', 'step')
        """
        for section, cls in (("model", RIMConfig), ("data", DataConfig), ("optim", OptimConfig)):
            value = getattr(self, section)
            if not isinstance(value, cls):
                raise ValueError(f"{section} must be a {cls.__name__}, got {type(value).__name__}")
            typed(cls, dataclasses.asdict(value), section)  # the types, as from_dict checks them
        if not isinstance(self.tasks, list) or not self.tasks:
            raise ValueError("tasks must be a non-empty list of {name: ..., ...} entries")
        _check_model(self.model)
        _check_data(self.data)
        build_tasks(self.tasks)  # validates every task entry now, not mid-run
        _check_mri_channels(self.tasks, self.model.channels)
        _check_optim(self.optim)
        most = self.optim.max_train_steps
        if most is not None and most < self.model.train_steps:
            raise ValueError(
                f"optim.max_train_steps ({most}) is below model.train_steps "
                f"({self.model.train_steps}); give at least that, or leave it out"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "tasks": [dict(t) for t in self.tasks],
            "optim": dataclasses.asdict(self.optim),
        }


SCHEDULES = ("constant", "cosine", "step")
DEVICE_FORMS = "cpu, cuda, cuda:N (N = 0, 1, ...) or mps"


def _data_paths(values: Any) -> Any:
    """The data section with its paths as strings (a ``Path`` given from Python)."""
    if not isinstance(values, dict):
        return values
    return {k: paths_as_str(v) if k in DATA_PATHS else v for k, v in values.items()}


def _check_mri_channels(tasks: list[dict[str, Any]], channels: int) -> None:
    """MRI tasks measure complex images, seen as 2 channels (real, imaginary): refused beside
    image tasks or for a model of other channels, at once rather than at the first MRI batch.

    Example:
        >>> _check_mri_channels([{"name": "mri"}], 1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: tasks: mri sees complex images as 2 channels (real, imaginary); set ...
    """
    names = [str(t.get("name")) for t in tasks]
    if "mri" not in names:
        return
    others = sorted({n for n in names if n != "mri"})
    if others:
        raise ValueError(
            f"tasks: mri (complex images as 2 channels) cannot share a model with "
            f"{', '.join(others)} (real images); train them apart"
        )
    if channels != 2:
        raise ValueError(
            "tasks: mri sees complex images as 2 channels (real, imaginary); set "
            f"model.channels: 2 (and model.cell: mri), not {channels}"
        )


def _check_model(model: RIMConfig) -> None:
    """The model builder's own checks (names, widths, steps), on the meta device: no memory."""
    try:
        with torch.device("meta"):
            model.build()
    except ValueError as err:
        raise ValueError(f"model: {err}") from None


def _check_data(data: DataConfig) -> None:
    held_out = ("val_images",) if data.val is None else ()  # else data.val validates
    for name in ("patch_size", "stride", "val_patches", *held_out):
        if getattr(data, name) < 1:
            raise ValueError(f"data.{name} must be >= 1, got {getattr(data, name)}")
    if isinstance(data.train, (list, tuple)) and not data.train:
        raise ValueError("data.train is an empty list; give a folder of images or a volume file")


def _check_optim(optim: OptimConfig) -> None:
    positive = ("iterations", "batch_size", "val_every", "checkpoint_every", "max_nonfinite")
    for name in positive:
        if getattr(optim, name) < 1:
            raise ValueError(f"optim.{name} must be >= 1, got {getattr(optim, name)}")
    if not (optim.lr > 0 and math.isfinite(optim.lr)):
        raise ValueError(f"optim.lr must be a finite number > 0, got {optim.lr}")
    if not (optim.clip_grad > 0 and math.isfinite(optim.clip_grad)):
        raise ValueError(
            f"optim.clip_grad is the norm the gradient is clipped to, a number > 0 (a large one "
            f"for no clipping), got {optim.clip_grad}"
        )
    if not 0 <= optim.min_lr_ratio <= 1:
        raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {optim.min_lr_ratio}")
    if not (optim.weight_decay >= 0 and math.isfinite(optim.weight_decay)):
        raise ValueError(f"optim.weight_decay must be >= 0, got {optim.weight_decay}")
    if not (optim.fit_weight >= 0 and math.isfinite(optim.fit_weight)):
        raise ValueError(
            f"optim.fit_weight weighs the measurement-fit loss, a number >= 0 (0 turns it off), "
            f"got {optim.fit_weight}"
        )
    for name in ("warmup", "seed"):
        if getattr(optim, name) < 0:
            raise ValueError(f"optim.{name} must be >= 0, got {getattr(optim, name)}")
    for name in ("val_steps", "threads"):
        if getattr(optim, name) is not None and getattr(optim, name) < 1:
            raise ValueError(
                f"optim.{name} must be >= 1 or null (the default), got {getattr(optim, name)}"
            )
    if not 0 <= optim.ema < 1:
        raise ValueError(f"optim.ema must be in [0, 1) (0 turns it off), got {optim.ema}")
    if optim.schedule not in SCHEDULES:
        raise ValueError(f"unknown optim.schedule {optim.schedule!r}; known: {SCHEDULES}")
    if not DEVICE_FORM.fullmatch(optim.device):
        raise ValueError(f"unknown optim.device {optim.device!r}; give one of {DEVICE_FORMS}")
    check_precision(optim.precision, "optim.precision")
    if optim.loss not in LOSSES:
        raise ValueError(f"unknown optim.loss {optim.loss!r}; known: {', '.join(LOSSES)}")
    if optim.step_weights not in WEIGHT_SCHEMES:
        raise ValueError(
            f"unknown optim.step_weights {optim.step_weights!r}; known: {', '.join(WEIGHT_SCHEMES)}"
        )


def _reject_unknown(values: dict[str, Any], cls: type, where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; known: {', '.join(known)}")


NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
"""A number written as text: what YAML leaves a string (``1e-3``) is read as one."""


def typed(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``values``, checking keys and types against its fields."""
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping, got {type(values).__name__}")
    _reject_unknown(values, cls, where)
    hints = typing.get_type_hints(cls)
    converted = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    return cls(**converted)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_type(value, option, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0])
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            pair = origin is tuple and len(args) == 2 and args[1] is not Ellipsis
            hint_pair = f" (one value as a range: [{value!r}, {value!r}])" if pair else ""
            raise ValueError(f"{where} must be a list, got {value!r}{hint_pair}")
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        if (
            origin is tuple
            and len(args) >= 2
            and args[1] is not Ellipsis
            and len(items) != len(args)
        ):
            raise ValueError(f"{where} must have {len(args)} items, got {len(items)}")
        return tuple(items) if origin is tuple else items
    if hint is Any or hint is dict or origin is dict:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    return value


def build_tasks(entries: list[dict[str, Any]]) -> Task:
    """A :class:`TaskMixture` from config entries ``{name, weight, <task fields>}``."""
    tasks, weights = [], []
    for i, entry in enumerate(entries):
        where = f"tasks[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{where} must be a mapping with a name ({', '.join(TASKS)})")
        fields = dict(entry)
        name = fields.pop("name")
        weight = _check_type(fields.pop("weight", 1.0), float, f"{where}.weight")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"{where}.weight must be a number >= 0, got {weight:g}")
        if name not in TASKS:
            raise ValueError(
                f"unknown task {name!r} in {where}; known: {', '.join(TASKS)} (a task of your "
                "own: rimkit.tasks.register_task, then train from Python)"
            )
        tasks.append(typed(TASKS[name], fields, f"{where} ({name})"))
        weights.append(weight)
    if not sum(weights) > 0:
        raise ValueError("every task's weight is 0; give at least one a weight > 0")
    return TaskMixture(tasks, weights)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML recipe, apply ``section.key=value`` overrides, validate."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config {str(path)!r} is a folder, not a YAML file; give the recipe file")
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config {str(path)!r} is not valid YAML{where}: {problem}") from None
    if values is None:
        raise ValueError(
            f"config {str(path)!r} is empty; a config is a mapping of sections "
            "(model, data, tasks, optim): start from a recipe in configs/"
        )
    return ExperimentConfig.from_dict(apply_overrides(values, overrides or []))


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` (value parsed as YAML) in a nested dict; returns a new dict."""
    result = yaml.safe_load(yaml.safe_dump(values))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes key=value (e.g. optim.lr=0.0005), got {item!r}")
        parts = key.split(".")
        node = result
        for part in parts[:-1]:
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if isinstance(node, list):
                raise ValueError(_no_list_entry(key, part, node))
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
            if node is None:
                raise ValueError(f"--set {key}: {part!r} is not a section")
        last = parts[-1]
        value = yaml.safe_load(raw)
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list):
            raise ValueError(_no_list_entry(key, last, node))
        else:
            raise ValueError(f"--set {key}: cannot set {last!r} here")
    return result


def _no_list_entry(key: str, part: str, entries: list) -> str:
    """``--set``'s message for an index beyond a list (e.g. ``tasks.1`` of one task)."""
    return (
        f"--set {key}: {part!r} is no entry of a list of {len(entries)} (entries 0 to "
        f"{len(entries) - 1}); add an entry in the config file itself"
    )


def resolve_data_root(data: DataConfig) -> Path:
    """The data root: ``data.root``, else ``$RIMKIT_DATA``, else ``../shared/data``.

    A root named explicitly (``data.root`` or ``$RIMKIT_DATA``) must be a folder: a typo is an
    error, not a silent fall back to the default.
    """
    wanted = "a folder holding train/BSDS300-train/*.jpg"
    if data.root:
        _check_root(data.root, "data.root", f"set it to {wanted}, or leave it out")
        return Path(data.root)
    if os.environ.get("RIMKIT_DATA"):
        root = os.environ["RIMKIT_DATA"]
        _check_root(root, "$RIMKIT_DATA", f"point it at {wanted}, or unset it")
        return Path(root)
    for candidate in SHARED_DATA_CANDIDATES:
        if Path(candidate).is_dir():
            return Path(candidate)
    raise ValueError(
        "no data folder found (tried "
        + ", ".join(repr(c) for c in SHARED_DATA_CANDIDATES)
        + f"); set data.root (or $RIMKIT_DATA) to {wanted}, "
        "or set data.train to an absolute folder of images"
    )


def _check_root(root: str, name: str, fix: str) -> None:
    path = Path(root)
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise ValueError(f"{name} {root!r} {problem}; {fix}")


def resolve_folder(data: DataConfig, folder: str) -> Path:
    """``folder`` if absolute or existing, else ``folder`` inside the data root."""
    path = Path(folder)
    if path.is_absolute() or path.exists():
        return path
    try:
        root = resolve_data_root(data)
    except ValueError as err:
        raise ValueError(f"{folder!r} is not in {str(Path.cwd())!r} and {err}") from None
    return root / path
