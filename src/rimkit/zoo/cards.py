"""The shipped models' cards: what each is for and how well it does, read without torch.

A shipped model is ``weights/NAME.safetensors`` plus ``weights/NAME.json`` (its model card:
task, channels, trained steps, data, recipe, hardware, network cost and measured scores) and
``weights/NAME.md`` (the card for people).

Example:
    >>> [card.name for card in list_models()] == sorted(c.name for c in list_models())
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelCard:
    """What a shipped model is for and how well it does, from ``weights/NAME.json``."""

    name: str
    task: str
    channels: int
    train_steps: int
    description: str = ""
    hardware: str = ""
    data: str = ""
    recipe: str = ""
    scales: tuple[int, ...] = ()
    sigma_range: tuple[float, float] | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    inference_gflop: float | None = None

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        values = json.loads(path.read_text())
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "scales" in known:
            known["scales"] = tuple(known["scales"])
        if known.get("sigma_range") is not None:
            known["sigma_range"] = tuple(known["sigma_range"])
        return cls(**known)


DEFAULT_MODELS: dict[str, dict[int, str]] = {
    "denoise": {1: "denoise-gray", 3: "denoise-rgb"},
    "sr": {1: "sr", 3: "sr"},
    "inpaint": {1: "3task", 3: "3task"},
    "blur": {1: "deblur", 3: "deblur"},
    "mri": {1: "mri", 3: "mri"},
    "lensing": {1: "lensing", 3: "lensing"},
}
"""task -> image channels -> the shipped model ``rimkit reconstruct`` runs without ``--model``."""
SCANNER_MRI_MODEL = "mri-measured"
"""The model ``reconstruct`` runs by default on k-space a scanner measured (BART, fastMRI)."""
ALTERNATIVE_MODELS: dict[str, tuple[str, ...]] = {"mri": (SCANNER_MRI_MODEL,)}
"""task -> other shipped models that ``rimkit compare`` runs beside the default one (mri: the
model for k-space measured on a scanner, which carries an image phase)."""


def default_model(task: str, channels: int = 1, scanner: bool = False) -> str:
    """The name of the shipped model for ``task`` on images of ``channels`` (1 or 3); for
    k-space a ``scanner`` measured (BART, fastMRI files) the MRI model trained with a scanner's
    image phase.

    Example:
        >>> default_model("denoise", 3), default_model("mri", scanner=True)
        ('denoise-rgb', 'mri-measured')
    """
    if task not in DEFAULT_MODELS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(DEFAULT_MODELS)}")
    if channels not in (1, 3):
        raise ValueError(f"channels is 1 (gray) or 3 (RGB), got {channels!r}")
    name = DEFAULT_MODELS[task][channels]
    shipped = [card.name for card in list_models()]
    if task == "mri" and scanner and SCANNER_MRI_MODEL in shipped:
        return SCANNER_MRI_MODEL
    if name not in shipped:
        raise ValueError(
            f"no shipped model for {task} yet (wanted {name!r}; shipped: "
            f"{', '.join(shipped) or 'none'}); give a model of your own (--model): a run folder "
            "of rimkit train"
        )
    return name


def alternative_models(task: str) -> list[str]:
    """The other shipped models that ``rimkit compare`` runs for ``task`` beside
    :func:`default_model`'s.

    Example:
        >>> alternative_models("mri"), alternative_models("denoise")
        (['mri-measured'], [])
    """
    if task not in DEFAULT_MODELS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(DEFAULT_MODELS)}")
    shipped = {card.name for card in list_models()}
    return [name for name in ALTERNATIVE_MODELS.get(task, ()) if name in shipped]


def list_models() -> list[ModelCard]:
    """The shipped models' cards, sorted by name."""
    if not WEIGHTS_DIR.is_dir():
        return []
    cards = sorted((ModelCard.read(p) for p in WEIGHTS_DIR.glob("*.json")), key=lambda c: c.name)
    return [c for c in cards if (WEIGHTS_DIR / f"{c.name}.safetensors").is_file()]
