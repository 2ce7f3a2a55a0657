"""``rimkit eval`` as a library call: :class:`EvalSpec` (the request), checked before any work;
:func:`run_eval` loads the models and images, runs :func:`rimkit.evaluate.runner.evaluate` and
writes the result files (:func:`rimkit.evaluate.outputs.write_outputs`).

Example:
    >>> spec = EvalSpec("denoise", Path("images"), sigmas=(15, 25))
    >>> [p.setting for p in make_protocols(spec)]
    ['sigma=15', 'sigma=25']
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rimkit.evaluate.defaults import (
    DEFAULT_BASELINES,
    DEFAULT_SIGMAS,
    JOURNAL,
    PATCH_TASKS,
    TASK_OPTIONS,
    TASKS,
    refuse_options_of_other_tasks,
)
from rimkit.evaluate.journal import JournalMismatch, kept_for_resume, stopped
from rimkit.evaluate.methods import Method, baseline_method, blind_method, rim_method
from rimkit.evaluate.metrics import quantize
from rimkit.evaluate.outputs import slug, weights_note, write_outputs
from rimkit.evaluate.protocols import (
    DeblurProtocol,
    DenoiseProtocol,
    InpaintProtocol,
    LensingProtocol,
    MRIProtocol,
    ProjectionProtocol,
    Protocol,
    SuperResolutionProtocol,
)
from rimkit.evaluate.runner import evaluate
from rimkit.io import LUMA_601
from rimkit.noise_level import IMAGE_TASKS
from rimkit.operators import (
    DEFAULT_KERNEL,
    PROJECTION_KINDS,
)
from rimkit.precision import check_precision
from rimkit.self_ensemble import ENSEMBLE_TASKS, check_size
from rimkit.solvers.selection import (
    check_baselines,
)
from rimkit.tasks import TASKS as TRAINING_TASKS
from rimkit.zoo.loading import trained_scales


@dataclass
class EvalSpec:
    """Everything ``rimkit eval`` needs; ``None`` means the task's default.

    ``sigmas`` (0-255 scale): denoising default 15, 25, 50; otherwise 0. ``baselines``:
    default :data:`DEFAULT_BASELINES`; an empty tuple runs none. ``baseline_options``: name ->
    constructor options. ``steps``: the RIM's reported step (default its trained ``T``);
    ``curve_steps``: run the RIM that far for the convergence curve (default ``steps``).
    ``ensemble``: average the RIM over that many flips and rotations of each measurement.
    ``sigma_estimate``: tell every method the noise level estimated from each measurement by
    this :func:`~rimkit.noise_level.estimate_noise_level` method (``pca``, ``wavelet``) instead
    of the true one (blind restoration; image tasks only). ``precision``: the RIMs' cells in
    ``fp32`` or ``bf16`` (:mod:`rimkit.precision`).
    """

    task: str
    data: Path
    out: Path | None = None
    model: str | Sequence[str] | None = None
    label: str | Sequence[str] | None = None
    sigmas: tuple[float, ...] | None = None
    scales: tuple[int, ...] = (2, 3, 4)
    fractions: tuple[float, ...] = (0.5,)
    kernels: tuple[str, ...] = (DEFAULT_KERNEL,)
    boundary: str = "circular"
    kinds: tuple[str, ...] = PROJECTION_KINDS
    ratios: tuple[float, ...] = (0.1, 0.3, 0.5)
    patch: int = 32
    patches: int | None = None
    einstein_radii: tuple[float, ...] = (0.45,)
    psf: float = 0.0
    accelerations: tuple[float, ...] = (4.0,)
    mask: str = "columns"
    coils: int = 1
    measured: bool = False
    quantize: bool = False
    baselines: tuple[str, ...] | None = None
    baseline_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: int | None = None
    curve_steps: int | None = None
    limit: int | None = None
    seed: int = 0
    tile: int | None = None
    ensemble: int = 1
    sigma_estimate: str | None = None
    precision: str = "fp32"
    crop: int = 96
    force: bool = False
    resume: bool = False
    quiet: bool = False

    @property
    def models(self) -> tuple[str, ...]:
        """The models to evaluate, in order (``model`` as a tuple)."""
        if self.model is None:
            return ()
        models = [self.model] if isinstance(self.model, str | Path) else self.model
        return tuple(str(m) for m in models)

    @property
    def labels(self) -> tuple[str, ...]:
        """The table names given for the models, in order (``label`` as a tuple; empty when
        none is given: then each model gets its default name, see :func:`load_models`)."""
        if self.label is None:
            return ()
        return (self.label,) if isinstance(self.label, str) else tuple(map(str, self.label))

    def __post_init__(self) -> None:
        _refuse_options_of_other_tasks(self)
        one_name = not self.models and len(self.labels) == 1  # baselines only: the folder's
        if self.labels and len(self.labels) != len(self.models) and not one_name:
            raise ValueError(
                f"{len(self.labels)} --label for {len(self.models)} --model: give one --label "
                "per --model, in the same order, or none"
            )

    def model_record(self) -> dict[str, Any]:
        """``model`` and ``label`` as ``summary.json`` records them: a string for one model
        given as one, else a list (``None`` where not given)."""
        one = not isinstance(self.model, list | tuple)
        return {
            "model": (self.models[0] if one else list(self.models)) if self.models else None,
            "label": (self.labels[0] if one else list(self.labels)) if self.labels else None,
        }

    def command_line(self) -> str:
        """The ``rimkit eval`` command that reproduces this evaluation."""
        parts = ["rimkit", "eval", "--task", self.task, "--data", str(self.data)]
        for model in self.models:
            parts += ["--model", model]
        for label in self.labels:
            parts += ["--label", label]
        if self.sigmas is not None:
            parts += ["--sigma", *(f"{s:g}" for s in self.sigmas)]
        if self.task == "sr":
            parts += ["--scale", *map(str, self.scales)]
        if self.task == "inpaint":
            parts += ["--fraction", *(f"{f:g}" for f in self.fractions)]
        if self.task == "blur":
            parts += ["--kernel", *self.kernels]
            if self.boundary != "circular":
                parts += ["--boundary", self.boundary]
        if self.task == "projection":
            parts += ["--kinds", *self.kinds, "--ratio", *(f"{r:g}" for r in self.ratios)]
        if self.task == "lensing":
            parts += ["--einstein-radius", *(f"{r:g}" for r in self.einstein_radii)]
            parts += ["--psf", f"{self.psf:g}"]
        if self.task == "mri":
            parts += ["--acceleration", *(f"{r:g}" for r in self.accelerations)]
            parts += ["--mask", self.mask]
            if self.coils > 1:
                parts += ["--coils", str(self.coils)]
            if self.measured:
                parts.append("--measured")
        if self.quantize:
            parts.append("--quantize")
        if self.baselines is not None:
            parts += ["--baselines", ",".join(self.baselines) or "none"]
        for name, opts in self.baseline_options.items():
            for key, value in opts.items():
                parts += ["--baseline-option", f"{name}.{key}={value}"]
        for flag, value in (
            ("--steps", self.steps),
            ("--curve-steps", self.curve_steps),
            ("--limit", self.limit),
            ("--tile", self.tile),
            ("--patches", self.patches),
            ("--ensemble", self.ensemble if self.ensemble != 1 else None),
            ("--sigma-estimate", self.sigma_estimate),
            ("--precision", self.precision if self.precision != "fp32" else None),
        ):
            if value is not None:
                parts += [flag, str(value)]
        parts += ["--seed", str(self.seed)]
        if self.out is not None:
            parts += ["--out", str(self.out)]
        return " ".join(shlex.quote(p) for p in parts)


def _refuse_options_of_other_tasks(spec: EvalSpec) -> None:
    """Refuse a task-specific option set away from its default for a task that ignores it
    (:data:`~rimkit.evaluate.defaults.TASK_OPTIONS`), and ``--patch`` without ``--patches`` for
    inpainting (whole images).

    Example:
        >>> EvalSpec("denoise", Path("images"), scales=(3,))
        Traceback (most recent call last):
        ValueError: --scale applies to --task sr only, not denoise; leave it out
    """
    defaults = {f.name: f.default for f in fields(spec)}
    refuse_options_of_other_tasks(
        spec.task, [name for name in TASK_OPTIONS if getattr(spec, name) != defaults[name]]
    )
    if spec.task == "inpaint" and spec.patch != defaults["patch"] and spec.patches is None:
        raise ValueError(
            "--patch is the size of the --patches crops; inpainting runs whole images unless "
            "--patches is given"
        )


def make_protocols(spec: EvalSpec) -> list[Protocol]:
    """The protocols of a request, one per setting (noise level, scale, fraction, ...)."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r}; known: {', '.join(TASKS)}")
    sigmas = spec.sigmas
    if sigmas is None:
        sigmas = DEFAULT_SIGMAS.get(spec.task, (0.0,))
    if not sigmas:
        raise ValueError("give at least one noise level (--sigma)")
    seed = spec.seed
    if spec.task == "denoise":
        return [DenoiseProtocol(float(s), spec.quantize, seed) for s in sigmas]
    if spec.task == "sr":
        if not spec.scales:
            raise ValueError("give at least one scale (--scale)")
        for s in sigmas:
            if s:
                raise ValueError("the super-resolution protocol has no added noise; drop --sigma")
        return [SuperResolutionProtocol(_int_scale(s), seed) for s in spec.scales]
    if spec.task == "inpaint":
        patches = spec.patches or 1
        patch = spec.patch if spec.patches else None
        return [
            InpaintProtocol(float(f), float(s), seed, patch, patches)
            for f in spec.fractions
            for s in sigmas
        ]
    if spec.task == "blur":
        if not spec.kernels:
            raise ValueError(f"give at least one kernel (--kernel), e.g. {DEFAULT_KERNEL}")
        return [
            DeblurProtocol(k, float(s), seed, spec.boundary) for k in spec.kernels for s in sigmas
        ]
    if spec.task == "mri":
        if not spec.accelerations:
            raise ValueError("give at least one acceleration (--acceleration)")
        return [
            MRIProtocol(float(r), spec.mask, float(s), seed, spec.coils)
            for r in spec.accelerations
            for s in sigmas
        ]
    if spec.task == "lensing":
        return [
            LensingProtocol(
                float(r), float(s), float(spec.psf), seed, spec.patch, spec.patches or 4
            )
            for r in spec.einstein_radii
            for s in sigmas
        ]
    return [
        ProjectionProtocol(k, float(r), float(s), seed, spec.patch, spec.patches or 4)
        for k in spec.kinds
        for r in spec.ratios
        for s in sigmas
    ]


def _int_scale(scale: object) -> int:
    if isinstance(scale, bool) or not float(scale).is_integer() or float(scale) < 2:  # type: ignore[arg-type]
        raise ValueError(f"scale must be an integer >= 2, got {scale}")
    return int(scale)  # type: ignore[arg-type]


def load_images(
    folder: str | Path, limit: int | None = None, channels: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """The images of ``folder`` (sorted by path; the first ``limit``), as ``(name, array)``.
    ``folder`` may also be a 3-D volume file (``.npz`` / ``.npy``, e.g. MRI, or a fastMRI
    ``.h5``) or a folder of fastMRI files: the slices along the last axis, each volume scaled
    by its maximum and rounded to 8 bits, as gray images.

    ``channels=1`` converts RGB to gray (ITU-R 601 luma, rounded to 8 bits), ``3`` gray to
    RGB, ``None`` keeps each image as stored. An empty or missing folder, or an unreadable
    file, is a ``ValueError`` naming it.

    Example:
        >>> load_images("/no/such/folder")
        Traceback (most recent call last):
        ...
        ValueError: image folder '/no/such/folder' does not exist; ...
    """
    from rimkit.data.images import list_images, read_folder_image
    from rimkit.data.volumes import fastmri_folder, is_volume_file, volume_planes

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    folder = Path(folder)
    volumes = [folder] if is_volume_file(folder) else fastmri_folder(folder)
    if volumes:
        planes = [
            (f"{volume.stem}/{name}", plane[0] / 255.0)
            for volume in volumes
            for name, plane in volume_planes(volume, axes=(2,), min_fill=0.0)
        ]
        return planes[:limit]
    files = list_images(folder)[:limit]
    out = []
    for path in files:
        array = read_folder_image(path)
        if array.ndim == 3 and array.shape[2] != 3:
            raise ValueError(f"{str(path)!r} has {array.shape[2]} channels; expected gray or RGB")
        out.append((path.relative_to(folder).as_posix(), convert_channels(array, channels)))
    return out


def convert_channels(array: np.ndarray, channels: int | None) -> np.ndarray:
    """RGB to gray (ITU-R 601 luma rounded to 8 bits) for ``channels=1``, gray to RGB for
    ``3``; unchanged for ``None`` or when it already fits."""
    if channels == 1 and array.ndim == 3:
        return quantize(array @ LUMA_601)
    if channels == 3 and array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    return array


def trained_sigma_range(
    config: dict[str, Any], card: Any = None, task: str = "denoise"
) -> tuple[float, float] | None:
    """The noise range (0-255) a model was trained for on ``task`` (``denoise`` or ``blur``),
    when its card (denoising) or config says; ``None`` otherwise.

    Example:
        >>> trained_sigma_range({"tasks": [{"name": "blur", "sigma": [0, 15]}]}, task="blur")
        (0.0, 15.0)
    """
    if task == "denoise" and card is not None and getattr(card, "sigma_range", None):
        return tuple(card.sigma_range)  # type: ignore[return-value]
    for entry in config.get("tasks") or []:
        if isinstance(entry, dict) and entry.get("name") == task:
            low, high = entry.get("sigma", TRAINING_TASKS[task]().sigma)  # else its default
            return float(low), float(high)
    return None


def _check_out(spec: EvalSpec) -> Path:
    out = spec.out
    if out is None:
        names = spec.labels or [_folder_name(m) for m in spec.models] or ["baselines"]
        out = Path("evals") / f"{slug('_'.join(names))}-{spec.task}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder")
    data = Path(spec.data).resolve()
    if out.resolve() == data or data in out.resolve().parents:
        raise ValueError(f"--out {str(out)!r} lies inside --data; write the results elsewhere")
    journal = out / JOURNAL
    if spec.resume:
        if not journal.is_file():
            raise ValueError(
                f"nothing to resume: {str(journal)!r} does not exist (it is kept only while a "
                "run is unfinished); run without --resume"
            )
    elif out.is_dir() and any(out.iterdir()):
        if not spec.force:
            hint = " or --resume to continue the stopped run" if journal.is_file() else ""
            raise ValueError(
                f"output folder {str(out)!r} exists and holds results; pass --force to "
                f"overwrite them{hint}, or choose another --out"
            )
        journal.unlink(missing_ok=True)
    return out


def _folder_name(model: str | os.PathLike) -> str:
    """What names a model in the default output folder: a shipped model's name, else its
    folder's name and its own (``runs/denoise-gray``: ``runs_denoise-gray``; never a shipped
    name, whose results it would meet)."""
    from rimkit.zoo import list_models

    if isinstance(model, str) and model in {card.name for card in list_models()}:
        return model
    return f"{Path(model).resolve().parent.name}_{_file_or_folder_name(model)}"


def _file_or_folder_name(model: str | os.PathLike) -> str:
    """What names a model given by path in a table: a file's stem, a folder's name
    (``runs/v1.2``: ``v1.2``)."""
    path = Path(model)
    return path.stem if path.is_file() else path.resolve().name


def load_models(spec: EvalSpec) -> list[tuple[str, Any]]:
    """``(label, loaded)`` for each model of ``spec``, in order: the label given, else a
    shipped model's name, else ``rim`` for a lone model and the file or folder name of one of
    several."""
    from rimkit.zoo import load_model

    labels = (spec.labels if spec.models else ()) or (None,) * len(spec.models)
    found = []
    for name, label in zip(spec.models, labels, strict=True):
        loaded = load_model(name, precision=spec.precision)
        if not label:
            label = (loaded.card.name if loaded.card else None) or (
                "rim" if len(spec.models) == 1 else _file_or_folder_name(name)
            )
        found.append((label, loaded))
    return found


def _check_model(spec: EvalSpec, name: str, loaded: Any, notes: list[str]) -> int | None:
    """The channel count images get for model ``name``; errors and notes for what does not
    fit."""
    model, config = loaded.model, loaded.config
    cell = (config.get("model") or {}).get("cell")
    trained_on = _training_overlap(spec.data, config.get("data") or {})
    if trained_on is not None:
        _note(
            notes,
            f"--data {str(spec.data)!r} overlaps the images model {name!r} was trained or "
            f"validated on ({trained_on}): its scores there say how well it fits, not how it "
            "generalises",
        )
    mri_model = cell == "mri" or model.channels == 2
    if mri_model and spec.task != "mri":
        raise ValueError(f"model {name!r} is an MRI model; use it with --task mri")
    if spec.task == "mri":
        if model.channels == 3:
            raise ValueError(
                f"model {name!r} restores RGB images; MRI takes an MRI model (complex images "
                "as 2 channels) or a gray one (magnitude images as real)"
            )
        if not mri_model:
            _note(notes, f"model {name!r} is a gray model: it reconstructs the images as real")
        return None
    if spec.task == "sr":
        if model.channels != 1:
            raise ValueError(
                f"super-resolution is reconstructed and measured on the Y channel; model "
                f"{name!r} has {model.channels} channels, give a gray (1-channel) model"
            )
        scales = trained_scales(config, loaded.card)
        if scales:
            other = [s for s in spec.scales if int(s) not in scales]
            if other:
                raise ValueError(
                    f"model {name!r} was trained for scales {', '.join(map(str, scales))}, not "
                    f"{', '.join(map(str, other))}; choose --scale among those"
                )
        else:
            why = "no super-resolution" if scales == () else "no record of its scales"
            _note(notes, f"model {name!r} has {why}; scales {spec.scales} are not checked")
    if spec.task in DEFAULT_SIGMAS:
        bounds = trained_sigma_range(config, loaded.card, spec.task)
        sigmas = spec.sigmas or DEFAULT_SIGMAS[spec.task]
        if bounds is not None:
            outside = [s for s in sigmas if not bounds[0] <= s <= bounds[1]]
            if outside:
                _note(
                    notes,
                    f"model {name!r} was trained for sigma {bounds[0]:g}-{bounds[1]:g}; "
                    f"sigma {', '.join(f'{s:g}' for s in outside)} lies outside",
                )
    if spec.task == "sr":
        return None  # the protocol makes the Y channel of each image itself
    return int(model.channels)


def _training_overlap(data: Path, config_data: dict[str, Any]) -> str | None:
    """The training or validation source (``data.train`` / ``data.val`` of a run's config) that
    holds the evaluation folder ``data`` or lies inside it, where it can be found on this
    machine; else ``None``."""
    from rimkit.train.config import DataConfig, resolve_folder

    sources = config_data.get("train") or ()
    sources = [sources] if isinstance(sources, str) else list(sources)
    sources += [config_data["val"]] if config_data.get("val") else []
    here = Path(data).resolve()
    root = config_data.get("root")
    for source in sources:
        try:
            folder = resolve_folder(DataConfig(root=root), str(source)).resolve()
        except (ValueError, OSError):
            continue  # its data root is not on this machine
        if folder.exists() and (folder == here or folder in here.parents or here in folder.parents):
            return str(source)
    return None


def _note(notes: list[str], text: str) -> None:
    notes.append(text)
    warnings.warn(text, stacklevel=3)


def run_eval(spec: EvalSpec) -> Path:
    """Run ``rimkit eval``; returns the output folder (see the module docstring)."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r}; known: {', '.join(TASKS)}")
    check_size(spec.ensemble)
    check_precision(spec.precision, "--precision")
    if spec.ensemble > 1 and spec.task not in ENSEMBLE_TASKS:
        raise ValueError(
            "--ensemble needs an operator that commutes with flips and rotations (denoise, sr, "
            f"inpaint); {spec.task} does not: leave --ensemble out"
        )
    if spec.boundary != "circular" and spec.task != "blur":
        raise ValueError(f"--boundary applies to --task blur only, not {spec.task}")
    if spec.sigma_estimate is not None and spec.task not in IMAGE_TASKS:
        raise ValueError(
            f"--sigma-estimate estimates the noise of image measurements "
            f"({', '.join(IMAGE_TASKS)}); {spec.task} has none: leave it out"
        )
    out = _check_out(spec)
    names = DEFAULT_BASELINES[spec.task] if spec.baselines is None else spec.baselines
    unknown_opts = sorted(set(spec.baseline_options) - set(names))
    if unknown_opts:
        raise ValueError(
            f"options given for baseline(s) {', '.join(unknown_opts)} that are not run; "
            f"running: {', '.join(names) or 'none'}"
        )
    check_baselines(names, spec.task)
    if not spec.models and not names:
        raise ValueError("nothing to evaluate: give --model and/or --baselines")
    if spec.measured:
        from rimkit.evaluate.measured import run_measured

        return run_measured(spec, out, names, [])
    protocols = make_protocols(spec)
    notes: list[str] = []
    methods: list[Method] = []
    model_channels: dict[str, int | None] = {}
    trained: dict[str, int | None] = {}
    patch_task = spec.task in PATCH_TASKS
    if spec.tile and patch_task and spec.models:
        _note(notes, f"--tile is ignored for {spec.task} (its patches run whole)")
    for (label, loaded), name in zip(load_models(spec), spec.models, strict=True):
        notes.append(weights_note(loaded, label if len(spec.models) > 1 else None))
        model_channels[name] = _check_model(spec, name, loaded, notes)
        tile = None if patch_task else spec.tile
        method = rim_method(loaded.model, label, spec.steps, spec.curve_steps, tile, spec.ensemble)
        trained[label] = method.trained_steps
        if spec.curve_steps is not None and spec.curve_steps < method.report_step:
            _note(
                notes,
                f"--curve-steps {spec.curve_steps} is below the step {label} reports "
                f"({method.report_step}); its curve runs to that step",
            )
        methods.append(method)
    if len(set(model_channels.values())) > 1:
        raise ValueError(
            "the models restore images of different channels ("
            + ", ".join(f"{n!r}: {c}" for n, c in model_channels.items())
            + "); evaluate them in separate runs"
        )
    channels = next(iter(model_channels.values()), None)
    methods += [baseline_method(n, spec.task, spec.baseline_options.get(n)) for n in names]
    if len({m.name for m in methods}) != len(methods):
        raise ValueError(f"two methods share a name: {[m.name for m in methods]}; use --label")
    if spec.sigma_estimate is not None:
        methods = [blind_method(m, spec.sigma_estimate) for m in methods]
    images = load_images(spec.data, spec.limit)
    if spec.task == "mri":
        channels = 1
    if channels is not None and any((a.ndim == 3) != (channels == 3) for _, a in images):
        what = "gray (ITU-R 601 luma, 8 bits)" if channels == 1 else "RGB"
        whom = "MRI" if spec.task == "mri" else f"the {channels}-channel model"
        notes.append(f"images were converted to {what} for {whom}")
        images = [(n, convert_channels(a, channels)) for n, a in images]
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    journal = out / JOURNAL
    try:
        result = evaluate(images, protocols, methods, progress=not spec.quiet, journal=journal)
    except JournalMismatch:
        raise kept_for_resume(journal) from None
    except KeyboardInterrupt:
        raise stopped(journal) from None
    except ValueError:  # bad input met mid-run: a rerun meets it again, so nothing to resume
        journal.unlink(missing_ok=True)
        if fresh and not any(out.iterdir()):
            out.rmdir()
        raise
    write_outputs(result, out, spec, protocols, trained, notes, len(images))
    journal.unlink()
    return out
