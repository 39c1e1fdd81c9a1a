"""``union: [space, space, ...]``: the points of each sub-space in turn.

Every part has the same axes (any order) of the same kinds, so the results stay one table
and the function one signature; a part that does not vary an axis gives it one value. Point
``i`` is found by a bisection over the parts' offsets: nothing is materialised.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from .base import MAX_POINTS, Space, SpaceError

if TYPE_CHECKING:
    import numpy as np


class UnionSpace(Space):
    mode = "union"

    def __init__(self, parts: tuple[Space, ...]):
        first = parts[0]
        for i, part in enumerate(parts[1:], start=1):
            if set(part.axis_names) != set(first.axis_names):
                raise SpaceError(f"union[{i}]", list(part.axis_names),
                                 f"every part of a union has the same axes, so the results are "
                                 f"one table: {', '.join(first.axis_names)} (a part that does "
                                 f"not vary an axis gives it one value, e.g. width: [0])")
            for name, kind in part.kinds.items():
                if kind != first.kinds[name]:
                    raise SpaceError(f"union[{i}].{name}", kind,
                                     f"an axis has one type in every part; in union[0] "
                                     f"{name!r} is {first.kinds[name]} (write 1.0, not 1, for "
                                     f"a float)")
        self.parts = parts
        self.axes = first.axes
        self.offsets = (0, *accumulate(part.size for part in parts))
        self.size = self.offsets[-1]
        if self.size > MAX_POINTS:
            raise SpaceError("union", " + ".join(f"{p.size:,}" for p in parts),
                             f"a space has at most {MAX_POINTS:,} points; this union has "
                             f"{self.size:,}")

    def columns(self, start: int, count: int,
                names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        import numpy as np

        self.check_range(start, count)
        wanted = tuple(n for n in self.axis_names if names is None or n in names)
        pieces: list[dict[str, np.ndarray]] = []
        part = bisect_right(self.offsets, start) - 1
        while count > 0:
            offset = start - self.offsets[part]
            n = min(count, self.parts[part].size - offset)
            pieces.append(self.parts[part].columns(offset, n, wanted))
            start, count, part = start + n, count - n, part + 1
        if len(pieces) == 1:
            return {name: pieces[0][name] for name in wanted}
        return {name: np.concatenate([p[name] for p in pieces]) for name in wanted}

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "union", "union": [part.to_dict() for part in self.parts]}
