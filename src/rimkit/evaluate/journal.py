"""A journal of finished (setting, image) pairs, so that a long evaluation survives a stop.

:func:`rimkit.evaluate.evaluate` with ``journal=PATH`` appends one JSON line per (setting, image)
as soon as every method has run on it: the score rows and the per-step PSNR curves of its cases.
Run the same evaluation again with the same journal and the finished pairs are read back
instead of recomputed; the result equals that of an uninterrupted run (rows in the same order,
curves averaged in the same order). The first line names the run (settings, methods, images)
so that a journal is never mixed into a different evaluation. A last line cut short by a stop
is dropped.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.jsonl"
    >>> log = Journal(path, {"settings": ["sigma=25"], "methods": ["tv"], "images": ["a"]})
    >>> log.record("sigma=25", "a", [{"psnr": 30.0}], [["tv", [28.0, 30.0]]])
    >>> log.close()
    >>> Journal(path, {"settings": ["sigma=25"], "methods": ["tv"], "images": ["a"]}).get(
    ...     "sigma=25", "a")["rows"]
    [{'psnr': 30.0}]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["Journal", "JournalMismatch", "kept_for_resume", "stopped"]


class JournalMismatch(ValueError):
    """A journal that another evaluation wrote: it is kept as it is."""


def stopped(path: str | os.PathLike) -> KeyboardInterrupt:
    """``rimkit eval``'s word on a stop: where the finished images are kept, and how to go on."""
    return KeyboardInterrupt(
        f"interrupted; the images finished so far are kept in {str(path)!r}: rerun the same "
        "command with --resume to continue"
    )


def kept_for_resume(path: str | os.PathLike) -> ValueError:
    """``rimkit eval``'s error for a journal in its folder that another evaluation wrote."""
    return ValueError(
        f"{str(path)!r} holds the finished images of an evaluation with other settings, "
        "methods or images, and is kept: rerun the command that started it with --resume, or "
        "start over with --force (which drops them)"
    )


class Journal:
    """Append-only JSON lines: a header ``{"journal": 1, "run": identity}``, then one entry
    ``{"setting", "image", "rows", "curves"}`` per finished (setting, image).

    ``identity`` (JSON-able) must equal the header's when the file exists, or a
    :class:`JournalMismatch` says so (delete the file or give another path) and the file is
    left as it was; a file that is no journal is a ``ValueError``.
    """

    VERSION = 1

    def __init__(self, path: str | os.PathLike, identity: dict[str, Any]) -> None:
        self.path = Path(path)
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        identity = json.loads(json.dumps(identity))  # tuples -> lists, as read back
        if self.path.exists():
            self._read(identity)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"journal": self.VERSION, "run": identity}) + "\n")
        self._file = self.path.open("a", encoding="utf-8")

    def _read(self, identity: dict[str, Any]) -> None:
        data = self.path.read_bytes()
        if b"\n" not in data:  # its header was cut short (or never written): nothing finished
            self.path.write_text(json.dumps({"journal": self.VERSION, "run": identity}) + "\n")
            return
        lines = data.split(b"\n")
        good = 0  # bytes of whole, parsed lines
        parsed = []
        for line in lines[:-1]:  # the last piece has no newline: cut short (or empty)
            try:
                parsed.append(json.loads(line))
            except ValueError:
                break
            good += len(line) + 1
        header = parsed[0] if parsed else None
        if not isinstance(header, dict) or header.get("journal") != self.VERSION:
            raise ValueError(
                f"{str(self.path)!r} is not an evaluation journal; give another --journal path"
            )
        if header.get("run") != identity:
            raise JournalMismatch(
                f"journal {str(self.path)!r} was written by a different evaluation (its "
                "settings, methods or images differ); delete it to start afresh or give "
                "another --journal path"
            )
        for entry in parsed[1:]:
            self.entries[(entry["setting"], entry["image"])] = entry
        if good < len(data):
            with self.path.open("r+b") as f:
                f.truncate(good)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, setting: str, image: str) -> dict[str, Any] | None:
        """The finished entry of ``(setting, image)``, or ``None``."""
        return self.entries.get((setting, image))

    def record(
        self, setting: str, image: str, rows: list[dict[str, Any]], curves: list[list[Any]]
    ) -> None:
        """Append the rows and ``[method, [psnr at t = 1, 2, ...]]`` curves of a finished
        (setting, image), flushed to disk."""
        entry = {"setting": setting, "image": image, "rows": rows, "curves": curves}
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.entries[(setting, image)] = entry

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        """Close and delete the journal (its evaluation has been written out)."""
        self.close()
        self.path.unlink(missing_ok=True)
