"""Enums whose members are their text: records, tables and JSON read them as plain strings."""

from __future__ import annotations

import enum


class TextEnum(str, enum.Enum):
    """A state or mode that is also its text (``str(x) == x.value``; ``x == "done"``)."""

    def __str__(self) -> str:
        return self.value
