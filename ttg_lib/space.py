"""Parameter spaces: named axes, and a point for every index without building the space.

A space file (YAML or JSON) or the same dict::

    mode: grid                       # grid (Cartesian product, default) | zip | random
    samples: 500                     # random only: how many points
    seed: 0                          # random only
    axes:
      lr: {logspace: [-3, -1, 5]}    # 10^-3 .. 10^-1, 5 values, ends included
      depth: [2, 4, 6, 8]            # a list of values (numbers, strings, booleans)
      seed: {range: [0, 3]}          # 0, 1, 2 (stop excluded; optional third item: step)
      x: {linspace: [0.0, 1.0, 11]}  # ends included
      y: {uniform: [0.0, 1.0]}       # random only; also loguniform

A task still carries only ``start`` and ``count``: point ``i`` is computed from ``i`` alone
(mixed radix for a grid, a counter-based generator keyed by (seed, axis name) for random), so
any chunk of a 10^9-point space costs the same small memory as the first one.

Two paths compute the same points: :meth:`Space.point` / :meth:`Space.points` in plain Python
(what a worker calls before ``fn(**point)``: no numpy import at start-up), and
:meth:`Space.columns` with numpy (what the results table needs, a chunk at a time). They agree
bit for bit: both use the same IEEE operations, and the transcendental forms (logspace,
loguniform) evaluate Python's own ``**``/``math`` in both, never numpy's SIMD variants.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import keyword
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .config import ConfigError

if TYPE_CHECKING:
    import numpy as np

MODES = ("grid", "zip", "random")
MAX_POINTS = 10**9
TABLE_MAX = 2**16  # an axis up to this long keeps its values in a tuple for chunks
MAX_AXIS = 2**53  # random mode draws an index below it, exactly, on both paths
RESERVED = ("param_id", "value", "value_json", "worker", "attempt", "error")  # results columns
DISCRETE_FORMS = "a list of values, {range: [start, stop(, step)]}, {linspace: [a, b, n]}, " \
                 "{logspace: [a, b, n]}"
ALL_FORMS = f"{DISCRETE_FORMS}, {{uniform: [a, b]}}, {{loguniform: [a, b]}} (random mode only)"
_INT64 = (-(2**63), 2**63 - 1)

Scalar = int | float | str | bool


class SpaceError(ConfigError):
    """A parameter space is not allowed; the message names the axis (or key) and what is."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        super().__init__(field_name, value, allowed)
        self.args = (f"invalid {field_name}={_brief(value)}: {allowed}",)


def _brief(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
        return np.fromiter((self.at(i) for i in digits.tolist()), dtype=_DTYPES[self.kind],
                           count=len(digits))

    def spec(self) -> Any:
        """The axis as written in a space file."""
        raise NotImplementedError


_DTYPES = {"int": "int64", "float": "float64", "bool": "bool"}


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
        return np.asarray(self.values, dtype=_DTYPES.get(self.kind, str))

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


# --- the space ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Space:
    """A validated parameter space: build it with :func:`load_space`."""

    mode: str
    axes: tuple[Axis, ...]
    size: int
    samples: int | None = None
    seed: int | None = None

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    def point(self, index: int) -> dict[str, Scalar]:
        """The point at ``index`` as keyword arguments for the compute function."""
        self._check_range(index, 1)
        return {axis.name: self._value(axis, j, index) for j, axis in enumerate(self.axes)}

    def points(self, start: int, count: int) -> list[dict[str, Scalar]]:
        """The points ``start .. start + count - 1`` (a chunk), as keyword arguments.

        Grid and zip: plain Python over each axis's table of values (no numpy import in a
        worker). Random: :meth:`columns` (numpy, imported on the first random chunk), since
        drawing in Python costs microseconds a value; the values are the same either way."""
        self._check_range(start, count)
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

    def columns(self, start: int, count: int) -> dict[str, np.ndarray]:
        """The same chunk as one numpy array per axis (int64, float64, bool or str)."""
        import numpy as np
        self._check_range(start, count)
        index = np.arange(start, start + count, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for j, axis in enumerate(self.axes):
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

    def _check_range(self, start: int, count: int) -> None:
        if not (start >= 0 and count >= 0 and start + count <= self.size):
            raise IndexError(f"points {start}..{start + count - 1} are outside this space of "
                             f"{self.size:,} points (0..{self.size - 1})")

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


# --- loading and validation -----------------------------------------------------------------

_TOP_KEYS = ("mode", "samples", "seed", "axes")


def load_space(source: str | Path | Mapping[str, Any] | Space) -> Space:
    """A validated :class:`Space` from a file (``.yaml``, ``.yml``, ``.json``), from inline
    YAML/JSON text starting with ``{`` (a notebook parameter), or from the same dict.

    Raises :class:`SpaceError` naming the key or axis that is wrong and what is allowed.
    """
    if isinstance(source, Space):
        return source
    if isinstance(source, Mapping):
        return _build(source)
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return _build(_parse_text(source, "space"))
    path = Path(source)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpaceError("space", str(path), "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError("space", str(path), f"cannot be read ({exc})") from None
    return _build(_parse_text(text, str(path), json_only=path.suffix.lower() == ".json"))


def _parse_text(text: str, origin: str, json_only: bool = False) -> Any:
    try:
        if json_only:
            data = json.loads(text)
        else:
            import yaml
            data = yaml.load(text, Loader=_SpaceLoader)
    except Exception as exc:  # yaml.YAMLError / ValueError: one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpaceError("space", origin, f"not valid {'JSON' if json_only else 'YAML or JSON'}"
                                          f" ({first})") from None
    if not isinstance(data, Mapping):
        raise SpaceError("space", origin, "must hold a mapping with 'axes' (and optionally "
                                          "'mode', 'samples', 'seed')")
    return data


def _space_loader() -> type:
    """PyYAML's SafeLoader, reading ``1e-3`` as a number (YAML 1.1 wants ``1.0e-3``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


class _LazyLoader:
    """Builds the YAML loader on first use: importing yaml is not free."""

    _cls: type | None = None

    def __call__(self, stream: Any) -> Any:
        if _LazyLoader._cls is None:
            _LazyLoader._cls = _space_loader()
        return _LazyLoader._cls(stream)


_SpaceLoader = _LazyLoader()


def _build(data: Mapping[str, Any]) -> Space:
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise SpaceError(str(unknown[0]), data[unknown[0]],
                         f"unknown key in a space; allowed: {', '.join(_TOP_KEYS)}")
    mode = data.get("mode", "grid")
    if mode not in MODES:
        raise SpaceError("mode", mode, f"one of {', '.join(MODES)}")
    samples, seed = data.get("samples"), data.get("seed")
    if mode != "random":
        for key in ("samples", "seed"):
            if data.get(key) is not None:
                raise SpaceError(key, data[key], f"only for mode random (this space is {mode})")
    else:
        if samples is None:
            raise SpaceError("samples", None, "mode random needs samples: how many points, a "
                                              f"whole number from 1 to {MAX_POINTS:,}")
        if type(samples) is not int or not 1 <= samples <= MAX_POINTS:
            raise SpaceError("samples", samples, f"a whole number from 1 to {MAX_POINTS:,}")
        seed = 0 if seed is None else seed
        if type(seed) is not int or not 0 <= seed <= _MASK:
            raise SpaceError("seed", seed, "a whole number from 0 to 2**64 - 1")
    raw_axes = data.get("axes")
    if not isinstance(raw_axes, Mapping) or not raw_axes:
        raise SpaceError("axes", raw_axes, "a mapping of at least one axis name to its values: "
                                           f"{ALL_FORMS}")
    axes = tuple(_axis(name, spec, mode) for name, spec in raw_axes.items())
    size = samples if mode == "random" else _size(mode, axes)
    return Space(mode=mode, axes=axes, size=size, samples=samples,
                 seed=seed if mode == "random" else None)


def _size(mode: str, axes: tuple[Axis, ...]) -> int:
    if mode == "zip":
        first = axes[0]
        for axis in axes[1:]:
            if axis.length != first.length:
                raise SpaceError(f"axes.{axis.name}", axis.spec(),
                                 f"mode zip pairs values position by position, so every axis "
                                 f"needs the same length: {first.name!r} has {first.length:,}, "
                                 f"{axis.name!r} has {axis.length:,}")
        size = first.length
    else:
        size = math.prod(axis.length for axis in axes)
    if size > MAX_POINTS:
        sizes = " x ".join(f"{axis.name} ({axis.length:,})" for axis in axes)
        raise SpaceError("axes", sizes, f"a space has at most {MAX_POINTS:,} points; this one "
                                        f"has {size:,}")
    return size  # never 0: an empty axis was refused on its own


def _axis(name: Any, spec: Any, mode: str) -> Axis:
    field = f"axes.{name}"
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SpaceError(field, name, "an axis name is passed as a keyword argument: a Python "
                                      "identifier (letters, digits, _; not a keyword)")
    if name in RESERVED:
        raise SpaceError(field, name, f"the name is taken by a results column; not one of "
                                      f"{', '.join(RESERVED)}")
    if isinstance(spec, list):
        axis: Axis = _values_axis(name, spec)
    elif isinstance(spec, Mapping) and len(spec) == 1:
        form, args = next(iter(spec.items()))
        builder = _FORMS.get(form)
        if builder is None:
            raise SpaceError(field, spec, f"unknown axis form {form!r}; allowed: {ALL_FORMS}")
        if not isinstance(args, list):
            raise SpaceError(field, spec, f"{form} takes a list: {_FORM_ARGS[form]}")
        axis = builder(name, args)
    else:
        hint = f" (one value is a list of one: [{spec!r}])" if _finite(spec) or \
            isinstance(spec, (str, bool)) else ""
        raise SpaceError(field, spec, f"unknown axis form{hint}; allowed: {ALL_FORMS}")
    if axis.continuous and mode != "random":
        raise SpaceError(field, spec, f"{axis.form} draws values at random, so it is only "
                                      f"allowed in mode random; in mode {mode} use "
                                      f"{DISCRETE_FORMS}")
    if not axis.continuous and axis.length == 0:
        raise SpaceError(field, spec, "the axis is empty; it needs at least one value")
    if axis.length > MAX_AXIS:
        raise SpaceError(field, spec, f"an axis has at most 2**53 values; this one has "
                                      f"{axis.length:,}")
    return axis


def _values_axis(name: str, values: list[Any]) -> Axis:
    field = f"axes.{name}"
    if not values:
        raise SpaceError(field, values, "the axis is empty; it needs at least one value")
    kinds = set()
    for value in values:
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, (int, float)):
            if not _finite(value):
                raise SpaceError(field, values, f"{value!r} is not a finite number that fits "
                                                "in 64 bits")
            kinds.add("number")
        elif isinstance(value, str):
            kinds.add("string")
        else:
            raise SpaceError(field, values, f"{value!r} is a {type(value).__name__}; values "
                                            "are numbers, strings or booleans")
    if len(kinds) > 1:
        raise SpaceError(field, values, "values of one kind, so the axis is one typed column: "
                                        f"all numbers, all strings or all booleans (got "
                                        f"{' and '.join(sorted(kinds))})")
    if kinds == {"number"} and any(type(v) is float for v in values):
        values = [float(v) for v in values]  # the function sees what the table shows
    return ValuesAxis(name=name, values=tuple(values))


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return math.isfinite(value)


def _numbers(name: str, form: str, args: list[Any], count: tuple[int, ...]) -> list[Any]:
    spec = {form: args}
    if len(args) not in count or not all(_finite(a) for a in args):
        raise SpaceError(f"axes.{name}", spec, f"{form} takes {_FORM_ARGS[form]} (finite "
                                               "numbers, not strings or booleans)")
    return args


def _range(name: str, args: list[Any]) -> Axis:
    start, stop, *rest = _numbers(name, "range", args, (2, 3))
    step = rest[0] if rest else 1
    if step == 0:
        raise SpaceError(f"axes.{name}", {"range": args}, "the step must not be 0")
    axis = RangeAxis(name=name, start=start, stop=stop, step=step)
    try:
        axis.length  # noqa: B018 (a float range of more values than a float holds)
    except OverflowError:
        raise SpaceError(f"axes.{name}", {"range": args}, "far too many values") from None
    return axis


def _linspace(name: str, args: list[Any], cls: type[LinspaceAxis] = LinspaceAxis) -> Axis:
    a, b, n = _numbers(name, cls.form, args, (3,))
    if type(n) is not int or n < 0:
        raise SpaceError(f"axes.{name}", {cls.form: args},
                         f"{cls.form} takes {_FORM_ARGS[cls.form]}: n is a whole number >= 1")
    axis = cls(name=name, a=float(a), b=float(b), n=n)
    if cls is LogspaceAxis and n:
        try:
            axis.at(0), axis.at(n - 1)
        except OverflowError:
            raise SpaceError(f"axes.{name}", {cls.form: args},
                             "10**a and 10**b must be finite floats (|a|, |b| <= 308)") from None
    return axis


def _uniform(name: str, args: list[Any], cls: type[UniformAxis] = UniformAxis) -> Axis:
    a, b = _numbers(name, cls.form, args, (2,))
    if not a < b or (cls is LoguniformAxis and a <= 0):
        low = "0 < a < b" if cls is LoguniformAxis else "a < b"
        raise SpaceError(f"axes.{name}", {cls.form: args}, f"{cls.form} takes [a, b] with {low}")
    return cls(name=name, a=float(a), b=float(b))


_FORMS: dict[str, Callable[[str, list[Any]], Axis]] = {
    "range": _range,
    "linspace": _linspace,
    "logspace": lambda name, args: _linspace(name, args, LogspaceAxis),
    "uniform": _uniform,
    "loguniform": lambda name, args: _uniform(name, args, LoguniformAxis),
}
_FORM_ARGS = {"range": "[start, stop] or [start, stop, step]", "linspace": "[a, b, n]",
              "logspace": "[a, b, n]", "uniform": "[a, b]", "loguniform": "[a, b]"}


def check_signature(space: Space, fn: Callable[..., Any], name: str | None = None) -> None:
    """Refuse a compute function that cannot be called as ``fn(**point)``: it must take every
    axis as a keyword and need nothing else. Checked before anything starts."""
    label = name or getattr(fn, "__qualname__", repr(fn))
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return  # a builtin without a signature: the first chunk will tell
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    shown = f"{label}({', '.join(str(p) for p in params)})"
    for axis in space.axis_names:
        if axis not in keywords and not takes_any:
            raise SpaceError("compute", shown,
                             f"the function does not take axis {axis!r} as a keyword argument; "
                             f"it must accept every axis of the space "
                             f"({', '.join(space.axis_names)}), or **kwargs")
    for p in params:
        required = p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        if required and p.name not in space.axis_names:
            raise SpaceError("compute", shown,
                             f"the function requires {p.name!r}, which is no axis of the space "
                             f"({', '.join(space.axis_names)}); give it a default or add the axis")
