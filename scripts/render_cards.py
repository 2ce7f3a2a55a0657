"""Re-render zoo model cards (``NAME.md``) from their JSON, after the JSON was edited by hand.

    python scripts/render_cards.py 3task sr     # the named cards
    python scripts/render_cards.py              # every card in src/rimkit/zoo/weights

A card's facts live in ``NAME.json`` (read by ``rimkit models``); its Markdown is always
``scripts/ship_model.py``'s rendering of them, which the tests hold every shipped card to.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from rimkit.evaluate.report import atomic_write_text
from rimkit.zoo import WEIGHTS_DIR


def _ship_model():
    path = Path(__file__).with_name("ship_model.py")
    spec = importlib.util.spec_from_file_location("ship_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_cards(names: list[str], folder: Path = WEIGHTS_DIR) -> list[Path]:
    """Rewrite ``folder/NAME.md`` from ``folder/NAME.json`` for each name (all cards when
    ``names`` is empty); returns the Markdown files that changed."""
    markdown = _ship_model()._markdown
    cards = [folder / f"{name}.json" for name in names] or sorted(folder.glob("*.json"))
    missing = [card.stem for card in cards if not card.is_file()]
    if missing:
        known = ", ".join(sorted(p.stem for p in folder.glob("*.json"))) or "none"
        raise SystemExit(f"error: no card named {', '.join(missing)} in {folder} (cards: {known})")
    changed = []
    for card in cards:
        try:
            text = markdown(json.loads(card.read_text()))
        except (ValueError, KeyError, TypeError) as err:
            message = f"error: {card} is not a model card ({type(err).__name__}: {err})"
            raise SystemExit(message) from None
        target = card.with_suffix(".md")
        if not target.is_file() or target.read_text() != text:
            atomic_write_text(target, text)
            changed.append(target)
    return changed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="card names, e.g. 3task (default: every card)")
    args = p.parse_args()
    changed = render_cards(args.names)
    print("\n".join(f"rendered {path}" for path in changed) or "every card was up to date")


if __name__ == "__main__":
    sys.exit(main())
