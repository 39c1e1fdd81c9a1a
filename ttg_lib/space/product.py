"""The product spaces: grid (mixed radix, the last axis fastest), zip (position by
position) and random (a counter-based draw per axis keyed by (seed, axis name)).

A task carries only ``start`` and ``count``: point ``i`` is computed from ``i`` alone, so any
chunk of a 10^9-point space costs the same small memory as the first one, and a random space
with more samples and the same seed keeps its first points: point ``i`` depends on (seed,
axis name, i), never on ``samples``.

Two paths compute the same points: :meth:`ProductSpace.points` in plain Python (what a worker
calls before ``fn(**point)``: no numpy import at start-up) and :meth:`ProductSpace.columns`
with numpy (what the results table needs). They agree bit for bit: both use the same IEEE
operations, and the transcendental forms (logspace, loguniform) evaluate Python's own
``**``/``math`` in both, never numpy's SIMD variants.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from .axes import Axis
from .base import Scalar, Space

if TYPE_CHECKING:
    import numpy as np

MODES = ("grid", "zip", "random")


@dataclass(frozen=True)
class ProductSpace(Space):
    """Grid, zip or random over axes: point ``i`` computed from ``i`` alone."""

    mode: str
    axes: tuple[Axis, ...]  # type: ignore[assignment]
    size: int
    samples: int | None = None
    seed: int | None = None

    def point(self, index: int) -> dict[str, Scalar]:
        """The point at ``index`` as keyword arguments for the compute function."""
        self.check_range(index, 1)
        return {axis.name: self._value(axis, j, index) for j, axis in enumerate(self.axes)}

    def points(self, start: int, count: int) -> list[dict[str, Scalar]]:
        """The points ``start .. start + count - 1`` (a chunk), as keyword arguments.

        Grid and zip: plain Python over each axis's table of values (no numpy import in a
        worker). Random: :meth:`columns` (numpy, imported on the first random chunk), since
        drawing in Python costs microseconds a value; the values are the same either way."""
        self.check_range(start, count)
        if self.mode == "random":
            columns = [column.tolist() for column in self.columns(start, count).values()]
        else:
            columns = [self._run(j, start, count) for j in range(len(self.axes))]
        names = self.axis_names
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def _run(self, j: int, start: int, count: int) -> list[Scalar]:
        axis, indices = self.axes[j], range(start, start + count)
        table, stride, length = axis.table, self._strides[j], axis.length
        if table is None:
            return [axis.at(self._digits(j, i)) for i in indices]
        if self.mode == "zip":
            return [table[i] for i in indices]
        return [table[(i // stride) % length] for i in indices]

    @cached_property
    def _strides(self) -> tuple[int, ...]:
        """How many points one step of each axis spans in a grid (the last axis: 1)."""
        return tuple(math.prod(axis.length for axis in self.axes[j + 1:])
                     for j in range(len(self.axes)))

    def columns(self, start: int, count: int,
                names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        import numpy as np
        self.check_range(start, count)
        index = np.arange(start, start + count, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for j, axis in enumerate(self.axes):
            if names is not None and axis.name not in names:
                continue
            if self.mode == "random":
                bits = _splitmix_array(_axis_key(self.seed or 0, axis.name), index)
                if axis.continuous:
                    out[axis.name] = axis.take_unit((bits >> np.uint64(11)).astype(np.float64)
                                                    * _UNIT)
                else:
                    out[axis.name] = axis.take((bits % np.uint64(axis.length)).astype(np.int64))
            else:
                out[axis.name] = axis.take(self._digits(j, index))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The space as a space file would write it (for the run record)."""
        data: dict[str, Any] = {"mode": self.mode}
        if self.mode == "random":
            data.update(samples=self.samples, seed=self.seed)
        data["axes"] = {axis.name: axis.spec() for axis in self.axes}
        return data

    def _digits(self, j: int, index: Any) -> Any:
        """Axis ``j``'s position for ``index`` (an int or an int64 array): mixed radix,
        the last axis fastest, as itertools.product; zip uses the index itself."""
        if self.mode == "zip":
            return index
        return (index // self._strides[j]) % self.axes[j].length

    def _value(self, axis: Axis, j: int, index: int) -> Scalar:
        if self.mode != "random":
            return axis.at(self._digits(j, index))
        bits = _splitmix(_axis_key(self.seed or 0, axis.name), index)
        if axis.continuous:
            return axis.at_unit((bits >> 11) * _UNIT)
        return axis.at(bits % axis.length)


# --- deterministic draws: SplitMix64 at counter (index + 1), keyed by (seed, axis name) ------

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_UNIT = 2.0**-53


@lru_cache(maxsize=256)
def _axis_key(seed: int, name: str) -> int:
    """A keyed hash, so adding or reordering axes leaves the other axes' draws unchanged."""
    digest = hashlib.blake2b(name.encode(), digest_size=8,
                             key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little")


def _splitmix(key: int, index: int) -> int:
    z = (key + (index + 1) * _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def _splitmix_array(key: int, index: np.ndarray) -> np.ndarray:
    """``_splitmix`` on an int64 array: uint64 arithmetic wraps as the masks above do."""
    import numpy as np
    u = np.uint64
    z = u(key) + (index.astype(np.uint64) + u(1)) * u(_GOLDEN)
    z = (z ^ (z >> u(30))) * u(_M1)
    z = (z ^ (z >> u(27))) * u(_M2)
    return z ^ (z >> u(31))
