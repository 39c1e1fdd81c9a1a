"""A space with ``derived:`` axes and a ``where:`` filter over another space's points.

Derived axes are computed per chunk from the other axes (vectorised, :mod:`.expr`). A filter
keeps the candidate points where its condition holds; point ``i`` of the filtered space is the
``i``-th accepted candidate. The index that makes this lazy is one count per block of
:data:`BLOCK` candidates, built at load in vectorised passes of :data:`SCAN` candidates: a
prefix sum locates the block holding accepted point ``i``, and a chunk re-evaluates only the
blocks it spans. At 10^8 candidates the index is 24,415 counts (195 KiB), never a list of
accepted positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .base import Space, SpaceError
from .expr import Expr

if TYPE_CHECKING:
    import numpy as np

BLOCK = 4096  # candidates per index block: the index keeps one count per block
SCAN = 256 * BLOCK  # candidates evaluated per vectorised pass (about 10^6)
CHECK_ALL_MAX = 10**8  # derived values checked at load up to this many points; then per chunk


@dataclass(frozen=True)
class DerivedAxis:
    """An axis computed from others: ``width: 2 ** log_width``."""

    name: str
    expr: Expr

    @property
    def kind(self) -> str:
        return self.expr.kind

    def spec(self) -> str:
        return self.expr.text


class ConstrainedSpace(Space):
    """``base`` with derived axes appended and, if ``where`` is given, only its matches."""

    def __init__(self, base: Space, derived: tuple[DerivedAxis, ...], where: Expr | None):
        self.base, self.derived, self.where = base, derived, where
        self.axes = (*base.axes, *derived)
        self.mode = base.mode
        self._deps = {d.name: d.expr.names for d in derived}
        self._cum: np.ndarray | None = None  # accepted candidates before each block
        if where is not None:
            self._cum = self._index()
            self.size = int(self._cum[-1])
            if self.size == 0:
                raise SpaceError("where", where.text, "no point of the space passes the filter; "
                                                      "the space would be empty")
        else:
            self.size = base.size
            if derived and self.size <= CHECK_ALL_MAX:
                for pos in range(0, self.size, SCAN):
                    self._check_derived(self._evaluate(pos, min(SCAN, self.size - pos)), pos)

    def columns(self, start: int, count: int,
                names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        self.check_range(start, count)
        wanted = names if names is not None else self.axis_names
        if self.where is None:
            cols = self._evaluate(start, count, wanted)
        else:
            cols = self._accepted(start, count, wanted)
        self._check_derived(cols, start)
        return {name: cols[name] for name in self.axis_names if name in wanted}

    def to_dict(self) -> dict[str, Any]:
        data = self.base.to_dict()
        if self.derived:
            data["derived"] = {d.name: d.spec() for d in self.derived}
        if self.where is not None:
            data["where"] = self.where.text
        return data

    @cached_property
    def index_bytes(self) -> int:
        """The filter's index in memory (0 without a filter)."""
        return 0 if self._cum is None else int(self._cum.nbytes)

    # -- internals --

    def _needs(self, names: tuple[str, ...] | frozenset[str]) -> set[str]:
        """``names`` and every axis their derived axes read, transitively."""
        need, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in need:
                need.add(name)
                todo.extend(self._deps.get(name, ()))
        return need

    def _evaluate(self, start: int, count: int,
                  names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Candidates ``start ..`` of the base, with the derived axes ``names`` needs."""
        need = self._needs(names) if names is not None else None
        base_names = tuple(n for n in self.base.axis_names if need is None or n in need)
        cols = self.base.columns(start, count, base_names)
        for axis in self.derived:
            if need is None or axis.name in need:
                try:
                    cols[axis.name] = axis.expr.evaluate(cols, count)
                except ValueError as exc:
                    raise SpaceError(f"derived.{axis.name}", axis.expr.text, str(exc)) from None
        return cols

    def _mask(self, cols: dict[str, np.ndarray], count: int) -> np.ndarray:
        import numpy as np

        assert self.where is not None
        try:
            return np.asarray(self.where.evaluate(cols, count), dtype=bool)
        except ValueError as exc:
            raise SpaceError("where", self.where.text, str(exc)) from None

    def _index(self) -> np.ndarray:
        """Accepted candidates per block, as a prefix sum; derived values checked on the way."""
        import numpy as np

        assert self.where is not None
        total = self.base.size
        blocks = math.ceil(total / BLOCK)
        counts = np.zeros(blocks + 1, dtype=np.int64)
        check = self.derived and total <= CHECK_ALL_MAX
        names = tuple(self.axis_names if check else self._needs(self.where.names))
        for pos in range(0, total, SCAN):
            n = min(SCAN, total - pos)
            cols = self._evaluate(pos, n, names)
            mask = self._mask(cols, n)
            whole = math.ceil(n / BLOCK)
            padded = np.zeros(whole * BLOCK, dtype=bool)
            padded[:n] = mask
            first = pos // BLOCK
            counts[first + 1:first + 1 + whole] = padded.reshape(whole, BLOCK).sum(axis=1)
            if check:
                self._check_derived({d.name: cols[d.name][mask] for d in self.derived}, None)
        return np.cumsum(counts)

    def _accepted(self, start: int, count: int, names: tuple[str, ...]) -> dict[str, Any]:
        """Accepted points ``start .. start + count - 1``: only the blocks holding them are
        evaluated."""
        import numpy as np

        assert self._cum is not None and self.where is not None
        cum = self._cum
        first = int(np.searchsorted(cum, start, side="right")) - 1
        last = int(np.searchsorted(cum, start + count - 1, side="right")) - 1
        skip = start - int(cum[first])
        need = tuple(self._needs((*names, *self.where.names)))
        pieces: list[dict[str, np.ndarray]] = []
        end = min((last + 1) * BLOCK, self.base.size)
        for pos in range(first * BLOCK, end, SCAN):
            n = min(SCAN, end - pos)
            cols = self._evaluate(pos, n, need)
            mask = self._mask(cols, n)
            pieces.append({name: cols[name][mask] for name in names})
        return {name: np.concatenate([p[name] for p in pieces])[skip:skip + count]
                for name in names}

    def _check_derived(self, cols: dict[str, Any], start: int | None) -> None:
        """A derived float that is not finite (log(0), 1/0) is refused, naming the point."""
        import numpy as np

        for axis in self.derived:
            if axis.kind != "float" or axis.name not in cols:
                continue
            bad = np.flatnonzero(~np.isfinite(cols[axis.name]))
            if len(bad):
                at = f" at point {start + int(bad[0])}" if start is not None else ""
                raise SpaceError(f"derived.{axis.name}", axis.expr.text,
                                 f"gives {cols[axis.name][bad[0]]}{at}: a derived value must "
                                 f"be a finite number (filter such points out with where)")
