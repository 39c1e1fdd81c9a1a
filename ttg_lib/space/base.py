"""What every kind of space shares: its error, its limits, and the interface a run reads.

A run, a worker and the results table only ever ask a space for its ``size``, its ``axes``
(name and column kind), one chunk of points (:meth:`Space.points`, as keyword arguments)
or the same chunk as numpy columns (:meth:`Space.columns`), and ``to_dict`` for the record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..config import ConfigError

if TYPE_CHECKING:
    import numpy as np

MAX_POINTS = 10**9
RESERVED = ("param_id", "value", "value_json", "worker", "attempt", "error")  # results columns
MASK64 = (1 << 64) - 1
INT64 = (-(2**63), 2**63 - 1)

Scalar = int | float | str | bool
DTYPES = {"int": "int64", "float": "float64", "bool": "bool"}  # str: numpy's unicode


class SpaceError(ConfigError):
    """A parameter space is not allowed; the message names the axis (or key) and what is."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        super().__init__(field_name, value, allowed)
        self.args = (f"invalid {field_name}={brief(value)}: {allowed}",)


def brief(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Column(Protocol):
    """What a results column needs of an axis: its name and its kind."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


class Space:
    """A validated parameter space: build one with :func:`ttg_lib.space.load_space`.

    Subclasses give ``size``, ``axes``, ``mode``, :meth:`columns` and :meth:`to_dict`; the
    points come from the columns unless a subclass has a faster plain-Python path."""

    size: int
    axes: tuple[Column, ...]
    mode: str  # grid, zip, random or union: how the points are laid out

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    @property
    def kinds(self) -> dict[str, str]:
        return {axis.name: axis.kind for axis in self.axes}

    def point(self, index: int) -> dict[str, Scalar]:
        """The point at ``index`` as keyword arguments for the compute function."""
        return self.points(index, 1)[0]

    def points(self, start: int, count: int) -> list[dict[str, Scalar]]:
        """The points ``start .. start + count - 1`` (a chunk), as keyword arguments."""
        columns = [column.tolist() for column in self.columns(start, count).values()]
        names = self.axis_names
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def columns(self, start: int, count: int,
                names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The same chunk as one numpy array per axis (int64, float64, bool or str), in the
        order of ``axes``; ``names``: only these axes (a filter needs a few)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The space as a space file would write it (for the run record and the tasks)."""
        raise NotImplementedError

    def check_range(self, start: int, count: int) -> None:
        if not (start >= 0 and count >= 0 and start + count <= self.size):
            raise IndexError(f"points {start}..{start + count - 1} are outside this space of "
                             f"{self.size:,} points (0..{self.size - 1})")
