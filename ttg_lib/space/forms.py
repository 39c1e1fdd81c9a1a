"""Axis forms as written in a space file: a list of values, ``{range: ...}``,
``{linspace: ...}``, ``{logspace: ...}``, ``{uniform: ...}``, ``{loguniform: ...}``; each
checked, with one clear error naming the axis and the forms allowed."""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable, Mapping
from typing import Any

from .axes import (
    Axis,
    LinspaceAxis,
    LogspaceAxis,
    LoguniformAxis,
    RangeAxis,
    UniformAxis,
    ValuesAxis,
)
from .base import INT64, RESERVED, SpaceError

MAX_AXIS = 2**53  # random mode draws an index below it, exactly, on both paths
DISCRETE_FORMS = "a list of values, {range: [start, stop(, step)]}, {linspace: [a, b, n]}, " \
                 "{logspace: [a, b, n]}"
ALL_FORMS = f"{DISCRETE_FORMS}, {{uniform: [a, b]}}, {{loguniform: [a, b]}} (random mode only)"


def check_name(field: str, name: Any) -> None:
    """An axis (or derived axis) name is passed as a keyword and becomes a results column."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SpaceError(field, name, "an axis name is passed as a keyword argument: a Python "
                                      "identifier (letters, digits, _; not a keyword)")
    if name in RESERVED:
        raise SpaceError(field, name, f"the name is taken by a results column; not one of "
                                      f"{', '.join(RESERVED)}")


def make_axis(name: Any, spec: Any, mode: str) -> Axis:
    field = f"axes.{name}"
    check_name(field, name)
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
        return INT64[0] <= value <= INT64[1]
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
