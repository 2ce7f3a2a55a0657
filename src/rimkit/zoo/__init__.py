"""Shipped pretrained models, and loading any trained model by name or path.

A shipped model is ``weights/NAME.safetensors`` (weights, with the training config in its
metadata) plus ``weights/NAME.json`` (its model card: task, channels, trained steps, data,
recipe, hardware, network cost and measured scores) and ``weights/NAME.md`` (the card for
people). The cards (:mod:`rimkit.zoo.cards`) are read without importing torch, so listing them
is quick; loading (:mod:`rimkit.zoo.loading`) imports it when first used. The folder they are
read from is ``rimkit.zoo.cards.WEIGHTS_DIR``.

Example:
    >>> [card.name for card in list_models()] == sorted(c.name for c in list_models())
    True
    >>> from rimkit.zoo import load_model
    >>> load_model("denoise-gray").card.task
    'denoise'
"""

from __future__ import annotations

from typing import Any

from rimkit.zoo.cards import WEIGHTS_DIR, ModelCard, alternative_models, default_model, list_models

_LOADING = ("EMA_PREFIX", "LoadedModel", "load_model", "load_pretrained", "save_model")

__all__ = [
    "WEIGHTS_DIR",
    "ModelCard",
    "alternative_models",
    "default_model",
    "list_models",
    *_LOADING,
]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LOADING})


def __getattr__(name: str) -> Any:
    """The loading API (:mod:`rimkit.zoo.loading`, which imports torch), on first use."""
    if name in _LOADING:
        from rimkit.zoo import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'rimkit.zoo' has no attribute {name!r}")
