"""A space in words, for the lines printed before a run (``ttg run --dry-run``, notebooks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Scalar, Space


def describe_space(data: Mapping[str, Any]) -> str:
    """``grid over lr × depth`` from a space's dict (the run record's), without loading it."""
    if "union" in data:
        text = "union of " + " and ".join(describe_space(part) for part in data["union"])
    else:
        names = [*(data.get("axes") or {}), *(data.get("derived") or {})]
        text = f"{data.get('mode', 'grid')} over {' × '.join(names)}"
        return text + (f" where {data['where']}" if data.get("where") else "")
    if data.get("derived"):
        text += f", with {', '.join(data['derived'])}"
    return text + (f" where {data['where']}" if data.get("where") else "")


def preview(space: Space, count: int = 5) -> list[dict[str, Scalar]]:
    """The space's first ``count`` points, as the function will receive them."""
    return space.points(0, min(count, space.size))
