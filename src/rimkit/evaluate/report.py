"""Self-contained HTML reports and Markdown tables, written atomically.

:func:`write_report` writes one HTML file holding tables and figures, the figures embedded as
base64 ``data:`` URIs, so the file needs no network and no neighbouring files: it can be
mailed or attached to an issue as it is. ``rimkit eval`` and ``rimkit demo`` both use it.

A table is a list of rows whose first row is the header (cells are formatted with ``str``;
floats with :func:`format_cell`), or the text of a Markdown table (``| a | b |`` lines).

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> png = bytes.fromhex("89504e470d0a1a0a")  # any PNG bytes
    >>> _ = write_report(out, "Demo", [("Scores", [["method", "PSNR"], ["tv", 27.5]])],
    ...                  [("a figure", png)])
    >>> text = out.read_text()
    >>> "<td>27.50</td>" in text, 'src="data:image/png;base64,' in text
    (True, True)
    >>> print(markdown_table([["method", "PSNR"], ["tv", 27.5]]))
    | method | PSNR |
    |---|---|
    | tv | 27.50 |
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rimkit.writing import atomic_write

__all__ = [
    "Table",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_cell",
    "markdown_table",
    "parse_markdown_table",
    "render_report",
    "write_report",
]

Table = Sequence[Sequence[object]] | str
"""Rows with the header first, or the text of a Markdown table."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any] | Mapping[str, Any]]) -> str:
    """A CSV file's text: ``header``, then ``rows`` (sequences in the header's order, or dicts
    keyed by it), ``\\n`` line ends.

    Example:
        >>> csv_text(["a", "b"], [[1, "x,y"]])
        'a,b\\n1,"x,y"\\n'
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        cells = [row[key] for key in header] if isinstance(row, Mapping) else list(row)
        if len(cells) != len(header):
            raise ValueError(f"a row of {len(cells)} cells under a header of {len(header)}")
        writer.writerow(cells)
    return buffer.getvalue()


def format_cell(value: object, digits: int = 2) -> str:
    """Floats with ``digits`` decimals (NaN and None as ``-``), everything else with ``str``.

    Example:
        >>> format_cell(28.9141), format_cell(float("nan")), format_cell(0.81234, 4)
        ('28.91', '-', '0.8123')
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}f}"
    return str(value)


def parse_markdown_table(text: str) -> list[list[str]]:
    """The rows of a Markdown table (separator lines such as ``|---|`` dropped).

    Example:
        >>> parse_markdown_table("| a | b |\\n|---|---|\\n| 1 | 2 |")
        [['a', 'b'], ['1', '2']]
    """
    rows = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(c and set(c) <= set("-: ") for c in cells):
            continue
        rows.append(cells)
    return rows


def _rows(table: Table) -> list[list[str]]:
    if isinstance(table, str):
        return parse_markdown_table(table)
    return [[format_cell(c) for c in row] for row in table]


def markdown_table(table: Table) -> str:
    """A Markdown table from rows (header first); cells formatted with :func:`format_cell`.

    Example:
        >>> print(markdown_table([["method", "PSNR"], ["tv", 28.914]]))
        | method | PSNR |
        |---|---|
        | tv | 28.91 |
    """
    rows = _rows(table)
    if not rows:
        raise ValueError("a table needs at least a header row")
    width = len(rows[0])
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    for row in rows[1:]:
        cells = [c.replace("|", "\\|") for c in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data.lstrip().startswith((b"<svg", b"<?xml")):
        return "image/svg+xml"
    raise ValueError("an embedded figure must be PNG, JPEG, GIF or SVG data")


def _image_bytes(image: str | os.PathLike | bytes) -> bytes:
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    path = Path(image)
    if not path.is_file():
        raise ValueError(f"figure {str(path)!r} does not exist")
    return path.read_bytes()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 0.3em 0; }
figure { margin: 1em 0 2em; } figcaption { font-weight: bold; margin-bottom: 0.4em; }
img { max-width: 100%; image-rendering: pixelated; }
.notes li { margin: 0.2em 0; }
"""


def render_report(
    title: str,
    tables: Sequence[tuple[str, Table]] = (),
    images: Sequence[tuple[str, str | os.PathLike | bytes]] = (),
    notes: Sequence[str] = (),
    intro: str = "",
) -> str:
    """The HTML text of a report (see :func:`write_report`)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if intro:
        parts.append(f"<p>{esc(intro)}</p>")
    for caption, table in tables:
        rows = _rows(table)
        if not rows:
            continue
        parts.append(f"<table><caption>{esc(caption)}</caption>")
        parts.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in rows[0]) + "</tr>")
        for row in rows[1:]:
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    for caption, image in images:
        data = _image_bytes(image)
        uri = f"data:{_mime(data)};base64," + base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure><figcaption>{esc(caption)}</figcaption><img src="{uri}" '
            f'alt="{esc(caption)}"></figure>'
        )
    if notes:
        parts.append('<h2>Notes</h2><ul class="notes">')
        parts.extend(f"<li>{esc(n)}</li>" for n in notes)
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(
    path: str | os.PathLike,
    title: str,
    tables: Sequence[tuple[str, Table]] = (),
    images: Sequence[tuple[str, str | os.PathLike | bytes]] = (),
    *,
    notes: Sequence[str] = (),
    intro: str = "",
) -> Path:
    """Write a self-contained HTML report atomically; returns its path.

    ``tables``: ``(caption, rows or Markdown text)`` pairs; ``images``: ``(caption, PNG/JPEG
    path or bytes)`` pairs, embedded as base64 ``data:`` URIs; ``notes``: lines listed at the
    end. Text is HTML-escaped. An existing file at ``path`` is replaced.
    """
    text = render_report(title, tables, images, notes, intro)
    return atomic_write_text(path, text)
