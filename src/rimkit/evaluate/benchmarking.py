"""Provenance and BENCHMARKS.md sections: what the benchmark scripts share.

Every number in ``BENCHMARKS.md`` comes with the machine it was measured on, the date, the
command and the seed (:func:`machine_info`, :func:`provenance`). Each script owns one named
section between markers and replaces only that one (:func:`replace_section`), atomically, so
the scripts run independently and in any order.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "BENCHMARKS.md"
    >>> _ = replace_section(path, "speed", "| a |\\n|---|\\n| 1 |")
    >>> _ = replace_section(path, "speed", "new text")
    >>> text = path.read_text()
    >>> text.count("<!-- begin: speed -->"), "new text" in text, "| 1 |" in text
    (1, True, False)
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

from rimkit.evaluate.report import atomic_write_text

__all__ = ["cpu_model", "machine_info", "provenance", "replace_section"]

HEADER = (
    "# rimkit benchmarks\n\n"
    "Every section below is written by a script in `benchmarks/` and can be regenerated on its "
    "own; each states the machine, date, command and seed it was measured with. Published "
    "numbers are quoted beside ours, never instead of ours.\n"
)


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info() -> dict[str, object]:
    """CPU model, cores, torch threads, torch / Python versions, GPU if any, and the UTC date.

    Example:
        >>> sorted(machine_info())
        ['cores', 'cpu', 'date', 'gpu', 'python', 'threads', 'torch']
    """
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": gpu,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def provenance(seed: int | None = None, command: str | None = None) -> str:
    """Markdown lines stating machine, date, command and seed of a table.

    Example:
        >>> "seed 0" in provenance(0, "python benchmarks/speed.py")
        True
    """
    info = machine_info()
    command = command or " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    gpu = f", GPU {info['gpu']}" if info["gpu"] else ""
    lines = [
        f"- machine: {info['cpu']}, {info['cores']} cores ({info['threads']} torch threads){gpu}; "
        f"torch {info['torch']}, Python {info['python']}",
        f"- date: {info['date']}",
        f"- command: `{command}`",
    ]
    if seed is not None:
        lines.append(f"- seed {seed}")
    return "\n".join(lines)


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"a section name is letters, digits, '.', '_' or '-'; got {name!r}")
    return f"<!-- begin: {name} -->", f"<!-- end: {name} -->"


def replace_section(path: str | os.PathLike, name: str, body: str) -> Path:
    """Put ``body`` between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` in ``path``.

    An existing section of that name is replaced, other text kept; a new section is appended
    (a missing file is created with a short header). The file is rewritten atomically.
    """
    path = Path(path)
    begin, end = _markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if text.count(begin) > 1:
        raise ValueError(f"{str(path)!r} holds section {name!r} more than once; fix it by hand")
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    return atomic_write_text(path, text)
