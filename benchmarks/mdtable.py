"""A benchmark's ``summary.md``: its Markdown table, and the file written, shown and named.

Every script ends the same way (the table a person reads, beside the JSON a test reads), so
the table's syntax and the ending are here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def table(head: Sequence[str], rows: Iterable[Sequence[Any]] = ()) -> list[str]:
    """A Markdown table's lines: the header, its rule, and a line a row (cells by ``str``)."""
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|",
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def publish(out: Path, text: str, *written: Path) -> Path:
    """Write ``text`` to ``out/summary.md``, print it, and say which files the run wrote
    (``written``, then the summary)."""
    summary = out / "summary.md"
    summary.write_text(text.rstrip("\n") + "\n")
    print(text.rstrip("\n"))
    print("wrote " + " and ".join(str(path) for path in (*written, summary)))
    return summary
