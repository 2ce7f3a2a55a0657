"""Checkpoints: one safetensors file per checkpoint, written atomically, with a JSON beside it.

``NAME.safetensors`` holds the model weights (``model/...``), each Adam moment
(``optim/exp_avg/...``, ``optim/exp_avg_sq/...``), the weight average of a run with
``optim.ema`` (``ema/...``) and, in its metadata, the resolved config,
the iteration, the validation scores and the optimizer's step counts. ``NAME.json`` repeats
the metadata for people. The file is written to a temporary name and renamed, so a kill at any
moment leaves the previous checkpoint intact. :func:`export_weights` writes the weights alone
for shipping. :func:`split_checkpoint` and :func:`join_checkpoint` cut a checkpoint into one
file per part (weights, each Adam moment) and back, for transfers that limit the file size.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> model = torch.nn.Linear(2, 2)
    >>> opt = torch.optim.Adam(model.parameters())
    >>> folder = Path(tempfile.mkdtemp())
    >>> save_checkpoint(folder / "last", model, opt, {"iteration": 3})
    >>> load_checkpoint(folder / "last", model, opt)["iteration"]
    3
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from rimkit.writing import atomic_write

MOMENTS = ("exp_avg", "exp_avg_sq")


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    average: nn.Module | None = None,
) -> None:
    """Write ``stem.safetensors`` (weights, Adam moments, the weight ``average`` when given,
    metadata) and ``stem.json``."""
    stem = Path(stem)
    tensors = _tensors(model, "model/")
    if average is not None:
        tensors.update(_tensors(average, "ema/"))
    steps: dict[str, float] = {}
    if optimizer is not None:
        names = _param_names(model)
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state.get(p, {})
                name = names[id(p)]
                for moment in MOMENTS:
                    if moment in state:
                        tensors[f"optim/{moment}/{name}"] = state[moment].detach().contiguous()
                if "step" in state:
                    steps[name] = float(state["step"])
    meta = {**meta, "optimizer_steps": steps}
    if optimizer is not None:
        meta["optimizer_lr"] = [g["lr"] for g in optimizer.param_groups]
    _write(stem, tensors, meta)


def _tensors(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().contiguous() for k, v in module.state_dict().items()}


def _write(stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """``stem.safetensors`` (tensors, ``meta`` as metadata) and ``stem.json``, atomically."""
    text = json.dumps(meta, indent=2, sort_keys=True)
    atomic_write(
        stem.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp, {"meta": text})
    )
    atomic_write(stem.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text + "\n"))


def read_meta(stem: Path) -> dict[str, Any]:
    """The metadata of a checkpoint, from its safetensors file (the JSON is for people)."""
    return _meta_of(Path(stem).with_suffix(".safetensors"))


def _meta_of(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is missing")
    try:
        with safe_open(str(path), "pt") as handle:
            return json.loads((handle.metadata() or {})["meta"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as err:
        msg = f"checkpoint {str(path)!r} is corrupt or not a rimkit checkpoint: {err}"
        raise ValueError(msg) from None


def load_checkpoint(
    stem: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    average: nn.Module | None = None,
) -> dict[str, Any]:
    """Restore weights (and Adam state when ``optimizer`` is given, the weight average when
    ``average`` is); returns the metadata."""
    meta = read_meta(stem)
    path = Path(stem).with_suffix(".safetensors")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is corrupt: {err}") from None
    _load_part(tensors, "model", model, path)
    if average is not None:
        _load_part(tensors, "ema", average, path)
    if optimizer is not None:
        names = _param_names(model)
        steps = meta.get("optimizer_steps", {})
        for group, lr in zip(optimizer.param_groups, meta.get("optimizer_lr", []), strict=False):
            group["lr"] = lr
        for group in optimizer.param_groups:
            for p in group["params"]:
                name = names[id(p)]
                if name not in steps:
                    continue
                state = optimizer.state[p]
                state["step"] = torch.tensor(steps[name])
                for moment in MOMENTS:
                    state[moment] = tensors[f"optim/{moment}/{name}"].to(p.device).clone()
    return meta


def _load_part(
    tensors: dict[str, torch.Tensor], prefix: str, module: nn.Module, path: Path
) -> None:
    head = prefix + "/"
    weights = {k.removeprefix(head): v for k, v in tensors.items() if k.startswith(head)}
    missing = set(module.state_dict()) - set(weights)
    unexpected = set(weights) - set(module.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit this model ({prefix}: missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); was it made with "
            "another model config?"
        )
    module.load_state_dict(weights)


def export_weights(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write the model weights alone (for shipping), with ``meta`` as safetensors metadata."""
    tensors = _tensors(model)
    text = json.dumps(meta, sort_keys=True)
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, {"meta": text}))


PARTS = ("model", *(f"optim/{m}" for m in MOMENTS), "ema")
"""The parts :func:`split_checkpoint` writes, one file each: the weights, each Adam moment
and, for a run with ``optim.ema``, the weight average."""


def _piece_path(folder: Path, name: str, part: str) -> Path:
    return Path(folder) / f"{name}.{part.replace('/', '.')}.safetensors"


def split_checkpoint(
    stem: Path, folder: Path, *, moments_dtype: torch.dtype | None = None
) -> list[Path]:
    """Write checkpoint ``stem`` as one file per part of :data:`PARTS` into ``folder``.

    Each piece ``NAME.PART.safetensors`` carries the full metadata; :func:`join_checkpoint`
    puts them back together. Example: a 2.4 M-parameter model's 28 MB checkpoint becomes three
    files of about 9.4 MB. With ``moments_dtype`` (e.g. ``torch.bfloat16``) both Adam moments
    go into one piece ``NAME.optim.safetensors`` in that dtype instead (4.7 MB each for that
    model): a resumed run then continues from moments rounded to it.
    """
    stem = Path(stem)
    meta = read_meta(stem)
    tensors = load_file(str(stem.with_suffix(".safetensors")))
    text = json.dumps(meta, indent=2, sort_keys=True)
    Path(folder).mkdir(parents=True, exist_ok=True)
    pieces: dict[str, dict[str, torch.Tensor]] = {}
    for part in PARTS:
        piece = {k: v for k, v in tensors.items() if k.startswith(part + "/")}
        if piece and moments_dtype is not None and part.startswith("optim/"):
            pieces.setdefault("optim", {}).update(
                {k: v.to(moments_dtype) for k, v in piece.items()}
            )
        elif piece:
            pieces[part] = piece
    written = []
    for part, piece in pieces.items():
        path = _piece_path(folder, stem.name, part)
        atomic_write(path, lambda tmp, piece=piece: save_file(piece, tmp, {"meta": text}))
        written.append(path)
    return written


def join_checkpoint(folder: Path, name: str, stem: Path) -> None:
    """Rebuild checkpoint ``stem`` (``.safetensors`` and ``.json``) from the pieces ``NAME.*``
    that :func:`split_checkpoint` wrote into ``folder``."""
    model_piece = _piece_path(folder, name, "model")
    if not model_piece.is_file():
        raise ValueError(f"no checkpoint pieces {name}.* in {str(folder)!r} ({model_piece.name})")
    meta = _meta_of(model_piece)
    tensors: dict[str, torch.Tensor] = {}
    for part in (*PARTS, "optim"):
        path = _piece_path(folder, name, part)
        if path.is_file():
            if _meta_of(path) != meta:
                raise ValueError(f"{path.name} is from another checkpoint than {model_piece.name}")
            tensors.update(load_file(str(path)))
    _write(Path(stem), {k: _as_weight(k, v, tensors) for k, v in tensors.items()}, meta)


def _as_weight(key: str, value: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """An Adam moment in its weight's dtype (pieces may hold it in a smaller one)."""
    weight = tensors.get("model/" + key.split("/", 2)[-1])
    return value.to(weight.dtype) if key.startswith("optim/") and weight is not None else value


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of all weights, to compare models bit for bit."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
