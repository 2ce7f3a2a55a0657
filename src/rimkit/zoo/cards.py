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


def list_models() -> list[ModelCard]:
    """The shipped models' cards, sorted by name."""
    if not WEIGHTS_DIR.is_dir():
        return []
    cards = sorted((ModelCard.read(p) for p in WEIGHTS_DIR.glob("*.json")), key=lambda c: c.name)
    return [c for c in cards if (WEIGHTS_DIR / f"{c.name}.safetensors").is_file()]
