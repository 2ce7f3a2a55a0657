"""A training run's log: ``log.csv`` (a row per iteration), TensorBoard (optional) and the
progress bar.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rimkit.train.config import (
    ExperimentConfig,
)
from rimkit.writing import atomic_write


class CsvLog:
    """Append rows of metrics to a CSV file (the header is fixed by the first row) and, with
    ``tensorboard``, to TensorBoard scalars in the same folder."""

    def __init__(self, path: Path, columns: list[str], tensorboard: bool = False) -> None:
        self.path = path
        self.columns = columns
        if not path.exists():
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(columns)
        self.board = _tensorboard(path.parent) if tensorboard else None

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([_fmt(row.get(c)) for c in self.columns])
        if self.board is not None:
            for name, value in row.items():
                if name != "iteration" and isinstance(value, (int, float)):
                    self.board.add_scalar(name, value, row["iteration"])
            self.board.flush()

    def truncate_after(self, iteration: int) -> None:
        """Drop rows past ``iteration`` (written after the checkpoint a resume starts from)."""
        with self.path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= iteration]

        def rewrite(tmp: str) -> None:
            with open(tmp, "w", newline="") as handle:
                csv.writer(handle).writerows(kept)

        atomic_write(self.path, rewrite)


def check_tensorboard(cfg: ExperimentConfig) -> None:
    """With ``optim.tensorboard``, fail before anything is written when TensorBoard is missing.

    Example:
        >>> check_tensorboard(ExperimentConfig())  # tensorboard off: nothing to check
    """
    if cfg.optim.tensorboard:
        _summary_writer()


def _summary_writer() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "optim.tensorboard needs TensorBoard, which is not installed: "
            "pip install 'rimkit[tensorboard]' (or set optim.tensorboard=false)"
        ) from None
    return SummaryWriter


def _tensorboard(folder: Path):
    return _summary_writer()(str(folder / "tensorboard"))


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def progress_bar(start: int, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="it", dynamic_ncols=True)
