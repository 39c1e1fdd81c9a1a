"""Axes: the values of one named parameter, each computed from its position.

A discrete axis gives the value at position ``i`` in plain Python (:meth:`Axis.at`, what a
worker calls; no numpy import) and many at once with numpy (:meth:`Axis.take`, what the
results table calls); both agree bit for bit. A continuous axis (random mode only) maps a
uniform draw ``u`` in [0, 1) to a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from .base import DTYPES, Scalar

if TYPE_CHECKING:
    import numpy as np

TABLE_MAX = 2**16  # an axis up to this long keeps its values in a tuple for chunks


# --- axes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Axis:
    """One named axis. ``length`` is its number of values (0 for a continuous axis)."""

    name: str
    form: ClassVar[str] = ""
    continuous: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        """The column type: "int", "float", "str" or "bool"."""
        return "float"

    @property
    def length(self) -> int:
        return 0

    def at(self, i: int) -> Scalar:
        """The value at position ``i`` (0 <= i < length)."""
        raise NotImplementedError

    @cached_property
    def table(self) -> tuple[Scalar, ...] | None:
        """Every value, for a chunk's plain-Python lookups; None when the axis is long
        (then each value is computed from its position) or continuous."""
        if self.continuous or self.length > TABLE_MAX:
            return None
        return tuple(self.at(i) for i in range(self.length))

    def take(self, digits: np.ndarray) -> np.ndarray:
        """The values at many positions at once; equal to ``at`` element by element."""
        import numpy as np
        return np.fromiter((self.at(i) for i in digits.tolist()), dtype=DTYPES[self.kind],
                           count=len(digits))

    def spec(self) -> Any:
        """The axis as written in a space file."""
        raise NotImplementedError


@dataclass(frozen=True)
class ValuesAxis(Axis):
    values: tuple[Scalar, ...] = ()
    form: ClassVar[str] = "values"

    @property
    def kind(self) -> str:
        first = self.values[0]
        return "bool" if isinstance(first, bool) else type(first).__name__

    @property
    def length(self) -> int:
        return len(self.values)

    def at(self, i: int) -> Scalar:
        return self.values[i]

    def take(self, digits: np.ndarray) -> np.ndarray:
        return self._array[digits]

    @cached_property
    def _array(self) -> np.ndarray:  # built once per axis, not once per chunk
        import numpy as np
        return np.asarray(self.values, dtype=DTYPES.get(self.kind, str))

    def spec(self) -> Any:
        return list(self.values)


@dataclass(frozen=True)
class RangeAxis(Axis):
    start: int | float = 0
    stop: int | float = 0
    step: int | float = 1
    form: ClassVar[str] = "range"

    @property
    def kind(self) -> str:
        return "int" if all(type(v) is int for v in (self.start, self.stop, self.step)) \
            else "float"

    @property
    def length(self) -> int:
        if self.kind == "int":
            return len(range(self.start, self.stop, self.step))
        return max(0, math.ceil((self.stop - self.start) / self.step))

    def at(self, i: int) -> Scalar:
        if self.kind == "int":
            return self.start + i * self.step
        return self.start + float(i) * self.step

    def take(self, digits: np.ndarray) -> np.ndarray:
        if self.kind == "int":
            return self.start + digits * self.step
        return self.start + digits.astype("float64") * self.step

    def spec(self) -> Any:
        return {"range": [self.start, self.stop, self.step]}


@dataclass(frozen=True)
class LinspaceAxis(Axis):
    """``a + i * (b - a) / (n - 1)``, the last value exactly ``b``: numpy.linspace's formula."""

    a: float = 0.0
    b: float = 0.0
    n: int = 0
    form: ClassVar[str] = "linspace"

    @property
    def length(self) -> int:
        return self.n

    @property
    def _step(self) -> float:
        return (self.b - self.a) / (self.n - 1) if self.n > 1 else 0.0

    def at(self, i: int) -> Scalar:
        if i == self.n - 1 and self.n > 1:
            return float(self.b)
        return self.a + float(i) * self._step

    def take(self, digits: np.ndarray) -> np.ndarray:
        import numpy as np
        values = self.a + digits.astype(np.float64) * self._step
        if self.n > 1:
            values[digits == self.n - 1] = self.b
        return values

    def spec(self) -> Any:
        return {self.form: [self.a, self.b, self.n]}


@dataclass(frozen=True)
class LogspaceAxis(LinspaceAxis):
    """``10 ** linspace(a, b, n)``."""

    form: ClassVar[str] = "logspace"

    def at(self, i: int) -> Scalar:
        return 10.0 ** LinspaceAxis.at(self, i)

    def take(self, digits: np.ndarray) -> np.ndarray:
        import numpy as np
        unique, inverse = np.unique(digits, return_inverse=True)  # a grid chunk repeats values
        table = np.array([self.at(i) for i in unique.tolist()], dtype=np.float64)
        return table[inverse.reshape(-1)]


@dataclass(frozen=True)
class UniformAxis(Axis):
    """Continuous: ``a + (b - a) * u`` for a uniform ``u`` in [0, 1)."""

    a: float = 0.0
    b: float = 1.0
    form: ClassVar[str] = "uniform"
    continuous: ClassVar[bool] = True

    def at_unit(self, u: float) -> float:
        return self.a + (self.b - self.a) * u

    def take_unit(self, u: np.ndarray) -> np.ndarray:
        return self.a + (self.b - self.a) * u

    def spec(self) -> Any:
        return {self.form: [self.a, self.b]}


@dataclass(frozen=True)
class LoguniformAxis(UniformAxis):
    """Continuous: ``exp(log a + (log b - log a) * u)``: uniform in the exponent."""

    form: ClassVar[str] = "loguniform"

    def at_unit(self, u: float) -> float:
        low, high = math.log(self.a), math.log(self.b)
        return min(max(math.exp(low + (high - low) * u), self.a), self.b)

    def take_unit(self, u: np.ndarray) -> np.ndarray:
        import numpy as np
        return np.fromiter(map(self.at_unit, u.tolist()), dtype=np.float64, count=len(u))
