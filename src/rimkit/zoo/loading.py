"""Loading a trained model by name (a shipped one) or path, and saving one for loading.

A shipped model is ``weights/NAME.safetensors`` (weights, with the training config in its
metadata) plus its card (:mod:`rimkit.zoo.cards`). ``load_model`` also takes a training run
folder (``model.safetensors``, else ``best``, else ``last``) or a ``.safetensors`` file written
by ``rimkit train``; of a run with ``optim.ema`` it loads the weight average, the weights that
run validates and ships.

Example:
    >>> loaded = load_model("denoise-gray")
    >>> loaded.card.name, loaded.model.channels
    ('denoise-gray', 1)
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from rimkit.models import RIM, RIMConfig
from rimkit.precision import apply_precision, check_precision
from rimkit.reconstruct import trained_start
from rimkit.zoo import cards
from rimkit.zoo.cards import ModelCard, list_models


@dataclass
class LoadedModel:
    """A model ready to run, its training config, and its card when it is a shipped one."""

    model: RIM
    config: dict[str, Any]
    source: Path
    card: ModelCard | None = None

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "a LoadedModel holds the model with its config and card: run its .model "
            "(load_model(name).model(likelihood, x0)), or give it to RIMReconstructor"
        )


def _resolve(name_or_path: str | os.PathLike) -> tuple[Path, ModelCard | None]:
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"load_model takes a model name, a run folder or a .safetensors file, got "
            f"{type(name_or_path).__name__}"
        )
    shipped = {card.name: card for card in list_models()}
    key = str(name_or_path)
    if key in shipped and isinstance(name_or_path, str):
        if Path(key).exists():
            warnings.warn(
                f"{key!r} names a shipped model and a path here; loading the shipped one "
                f"(give ./{key} or a Path for the local one)",
                UserWarning,
                stacklevel=3,
            )
        return cards.WEIGHTS_DIR / f"{key}.safetensors", shipped[key]
    path = Path(name_or_path)
    if path.is_dir():
        for stem in ("model", "best", "last"):
            if (path / f"{stem}.safetensors").is_file():
                return path / f"{stem}.safetensors", None
        raise ValueError(f"{key!r} is a folder without model/best/last.safetensors")
    if path.is_file():
        return path, None
    known = ", ".join(shipped) or "none shipped yet"
    raise ValueError(
        f"unknown model {key!r}: not a shipped model ({known}) nor a run folder or "
        ".safetensors file"
    )


def load_model(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "fp32"
) -> LoadedModel:
    """Load a shipped model by name, a run folder, or a ``.safetensors`` file.

    A string that names a shipped model loads it, even where a folder of that name lies here
    (with a warning); a ``Path`` or ``./NAME`` is always read as a path. ``device`` is where
    the model goes (``"cpu"``, ``"cuda"``, ...; one this machine lacks is a ``ValueError``).

    The model's ``start`` attribute says where reconstruction starts: ``"flat"`` for a model
    trained only on random projections, ``"task"`` otherwise
    (:func:`rimkit.reconstruct.trained_start`). It is float32, or float64 where every weight
    was saved so. ``precision="bf16"`` runs its cell under bfloat16 autocast, the estimate
    kept float32 (:mod:`rimkit.precision`; about 1.5 times as fast on a CPU with AVX512-BF16).

    Example:
        >>> load_model("no-such-model")
        Traceback (most recent call last):
        ...
        ValueError: unknown model 'no-such-model': ...
    """
    from rimkit.runtime import check_device

    check_device(str(device), "device")
    check_precision(precision)
    path, card = _resolve(name_or_path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        tensors = load_file(str(path))
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        hint = ""
        if path.suffix != ".safetensors":
            hint = (
                f"; {path.name} is no .safetensors file (a torch.save file? build the model, load "
                "its state dict, and save it with rimkit.zoo.save_model)"
            )
        raise ValueError(f"cannot read model weights from {str(path)!r}: {err}{hint}") from None
    config = meta.get("config", {})
    if "model" not in config:
        raise ValueError(f"{str(path)!r} has no model config in its metadata; not a rimkit model")
    with torch.random.fork_rng(devices=[]):  # its random start is overwritten: keep the user's
        model = RIMConfig.from_dict(config["model"]).build()
    weights = _shipped_weights(tensors)
    if all(w.dtype == torch.float64 for w in weights.values() if w.is_floating_point()):
        model = model.double()  # saved from a float64 model: loaded as one
    _load_weights(model, weights, path)
    model.start = trained_start(t.get("name", "") for t in config.get("tasks", []))
    model.trained_scales = trained_scales(config, card)
    model.eval()
    model = apply_precision(model.to(device), precision, device)
    return LoadedModel(model, config, path, card)


def trained_scales(config: dict[str, Any], card: Any = None) -> tuple[int, ...] | None:
    """The super-resolution scales a model was trained for (card, else config tasks); ``()``
    when its tasks include no super-resolution; ``None`` when unknown. :func:`load_model`
    keeps them as the model's ``trained_scales``, which :func:`rimkit.pipeline.restore` checks.

    Example:
        >>> trained_scales({"tasks": [{"name": "sr", "scales": [4, 2]}, {"name": "denoise"}]})
        (2, 4)
    """
    if card is not None and getattr(card, "scales", ()):
        return tuple(int(s) for s in card.scales)
    tasks = config.get("tasks")
    if not isinstance(tasks, list):
        return None
    scales: list[int] = []
    for entry in tasks:
        if isinstance(entry, dict) and entry.get("name") == "sr":
            scales += [int(s) for s in entry.get("scales", (2, 3, 4))]
    return tuple(sorted(set(scales)))


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    tasks: list[dict[str, Any]] | None = None,
    *,
    force: bool = False,
) -> Path:
    """Save ``model`` (built by :func:`~rimkit.models.build_rim` or ``RIMConfig(...).build()``,
    which keep what it was built from as ``model.config``; trained in a loop of one's own,
    say) as a ``.safetensors`` file that :func:`load_model` reads. ``tasks``, the task entries
    it was trained on (as in a recipe), set where it starts (a model trained only on
    ``projection`` starts flat). A :class:`LoadedModel` is saved with the tasks of its config.
    An existing file is kept unless ``force``.

    Example:
        >>> import tempfile
        >>> from rimkit.models import build_rim
        >>> path = Path(tempfile.mkdtemp()) / "mine.safetensors"
        >>> model = build_rim(features=4, hidden=4, train_steps=3)
        >>> _ = save_model(path, model, [{"name": "denoise"}])
        >>> load_model(path).model.train_steps
        3
    """
    from rimkit.train.checkpoint import export_weights

    if isinstance(model, LoadedModel):  # saved again, with the tasks it was trained on
        tasks = model.config.get("tasks") if tasks is None else tasks
        model = model.model
    config = getattr(model, "config", None)
    if not isinstance(config, RIMConfig):
        raise ValueError(
            f"save_model needs a model built by build_rim or RIMConfig(...).build(), which keep "
            f"what it was built from as model.config; this {type(model).__name__} has none "
            "(an i-RIM or an unrolled baseline: build_rim(variant='invertible' / 'unrolled', "
            "...) builds one that has)"
        )
    entries = list(tasks or [])
    if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in entries):
        raise ValueError(
            f"tasks are the recipe's task entries, dicts such as {{'name': 'denoise'}}, got "
            f"{entries!r}"
        )
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"save_model writes a .safetensors file, got {str(path)!r}")
    if path.exists() and not force:
        raise ValueError(f"{str(path)!r} exists; pass force=True to replace it")
    if not path.parent.is_dir():
        raise ValueError(f"the folder of {str(path)!r} does not exist")
    meta = {"config": {"model": config.to_dict(), "tasks": entries}}
    export_weights(path, model, meta)
    return path


EMA_PREFIX = "ema/module."
"""Where a checkpoint of a run with ``optim.ema`` keeps the averaged model's weights."""


def _shipped_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights a run validates and ships, from any file it writes: a checkpoint's weight
    average (``ema/module.*``, a run with ``optim.ema``) where it holds one, else its model
    weights (``model/*``, or the unprefixed ones of ``model.safetensors``); Adam's moments and
    the average's counter are left out.

    Example:
        >>> w, avg = torch.zeros(1), torch.ones(1)
        >>> _shipped_weights({"model/b": w, "ema/module.b": avg, "ema/n_averaged": w})
        {'b': tensor([1.])}
        >>> _shipped_weights({"model/b": w, "optim/exp_avg/b": avg})
        {'b': tensor([0.])}
    """
    if any(k.startswith(EMA_PREFIX) for k in tensors):
        return {
            k.removeprefix(EMA_PREFIX): v for k, v in tensors.items() if k.startswith(EMA_PREFIX)
        }
    return {
        k.removeprefix("model/"): v
        for k, v in tensors.items()
        if not k.startswith(("optim/", "ema/"))
    }


def _load_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    expected = set(model.state_dict())
    if set(weights) != expected:
        raise ValueError(
            f"the weights in {str(path)!r} do not fit the model built from its own config "
            f"(missing {sorted(expected - set(weights))[:3]}, "
            f"unexpected {sorted(set(weights) - expected)[:3]})"
        )
    model.load_state_dict(weights)


def load_pretrained(name: str, device: str | torch.device = "cpu") -> RIM:
    """The shipped model ``name``, ready for inference (see :func:`list_models`)."""
    if name not in {card.name for card in list_models()}:
        known = ", ".join(c.name for c in list_models()) or "none shipped yet"
        raise ValueError(f"unknown pretrained model {name!r}; known: {known}")
    return load_model(name, device).model


__all__ = ["EMA_PREFIX", "LoadedModel", "load_model", "load_pretrained", "save_model"]
