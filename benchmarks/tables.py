"""A benchmark's tables: Markdown for its ``summary.md`` (written, shown and named), and
aligned text for a terminal.

Every script ends the same way (the table a person reads, beside the JSON a test reads), so
the tables' syntax and the ending are here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def md_table(head: Sequence[str], rows: Iterable[Sequence[Any]] = ()) -> list[str]:
    """A Markdown table's lines: the header, its rule, and a line a row (cells by ``str``)."""
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|",
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def text_table(head: Sequence[str], rows: Iterable[Sequence[Any]],
               align: str = "") -> list[str]:
    """Columns padded to their widest cell, two spaces apart: ``align`` gives each column's
    ``<`` or ``>`` (default: the first to the left, names; the others to the right, figures).
    A short row (an error in place of figures) ends with its last cell as it is."""
    align = align or "<" + ">" * (len(head) - 1)
    table = [[str(cell) for cell in row] for row in (head, *rows)]

    def columns(row: list[str]) -> list[str]:  # a short row's last cell is not a column's
        return row if len(row) == len(head) else row[:-1]

    widths = [max((len(c[i]) for c in map(columns, table) if i < len(c)), default=0)
              for i in range(len(head))]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) if align[i] == "<" else cell.rjust(widths[i])
                 for i, cell in enumerate(columns(row))]
        lines.append("  ".join(cells + row[len(cells):]).rstrip())
    return lines


def publish(out: Path, text: str, *written: Path) -> Path:
    """Write ``text`` to ``out/summary.md``, print it, and say which files the run wrote
    (``written``, then the summary)."""
    summary = out / "summary.md"
    summary.write_text(text.rstrip("\n") + "\n")
    print(text.rstrip("\n"))
    print("wrote " + " and ".join(str(path) for path in (*written, summary)))
    return summary
