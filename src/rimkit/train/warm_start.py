"""``optim.init``: a run that starts from the weights of a shipped model, a run folder or a
``.safetensors`` file of the same architecture (a fine-tune).
"""

from __future__ import annotations

import contextlib
from typing import Any

from torch import nn

from rimkit.models import RIMConfig
from rimkit.models.opponent import SplitOpponentColorRIM
from rimkit.models.utils import load_widened
from rimkit.zoo import load_model

ARCHITECTURE_KEYS = ("variant", "cell", "cell_channels", "link")
"""What must match for ``optim.init``: a gray model's weights start an opponent-colour one (and
a guided one, whose guide inputs then start at zero)."""


def load_init(init: str) -> Any:
    """The model ``optim.init`` names, or the error that says where its path is read from."""
    try:
        return load_model(init)
    except ValueError as err:
        raise ValueError(
            f"optim.init: {err} (a path is read from the working folder; the recipes in "
            "rimkit's configs/ name theirs from the repository's root: run them from there, or "
            "--set optim.init=PATH)"
        ) from None


def start_from(model: nn.Module, init: str, model_cfg: RIMConfig) -> None:
    """Copy the weights of ``init`` (a shipped name, run folder or file) into ``model``."""
    source = load_init(init)
    theirs = RIMConfig.from_dict(source.config["model"])
    differ = [
        f"{key} {getattr(theirs, key)!r} there, {getattr(model_cfg, key)!r} here"
        for key in ARCHITECTURE_KEYS
        if getattr(theirs, key) != getattr(model_cfg, key)
    ]
    state = source.model.state_dict()
    split_cells = isinstance(model, SplitOpponentColorRIM)
    if split_cells and not isinstance(source.model, SplitOpponentColorRIM):  # e.g. guided -> split
        state = SplitOpponentColorRIM.state_from_one_cell(state)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    their_shapes = {k: tuple(v.shape) for k, v in state.items()}
    if not differ and shapes != their_shapes:
        sizes = ("channels", "features", "hidden", "color")
        differ = [
            f"{key} {getattr(theirs, key)!r} there, {getattr(model_cfg, key)!r} here"
            for key in sizes
            if getattr(theirs, key, None) != getattr(model_cfg, key, None)
        ] or [f"features {theirs.features} / hidden {theirs.hidden} there"]
        if _guides(model) > _guides(source.model):  # e.g. opponent -> opponent-guided
            with contextlib.suppress(ValueError):
                load_widened(model, state)
                return
    if differ:
        raise ValueError(
            f"optim.init {init!r} is another architecture ({'; '.join(differ)}); give the model "
            f"section of the run it came from: {source.config['model']}"
        )
    model.load_state_dict(state)


def _guides(model: nn.Module) -> int:
    return getattr(model, "guide_channels", 0)
