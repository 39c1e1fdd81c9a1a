"""Enums whose members are their text: records, tables and JSON read them as plain strings."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

E = TypeVar("E", bound="Lenient")


class TextEnum(str, enum.Enum):
    """A state or mode that is also its text (``str(x) == x.value``; ``x == "done"``)."""

    def __str__(self) -> str:
        return self.value


class Lenient(TextEnum):
    """A vocabulary a newer TTG may extend (a record's events, reasons, activities): its
    members include ``OTHER = "other"``, and :meth:`of` reads text it does not know as that."""

    @classmethod
    def of(cls: type[E], text: Any) -> E:
        try:
            return cls(text)
        except ValueError:
            return cls("other")
