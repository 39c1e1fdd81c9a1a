"""What a user's function may return, made storable before it is packed.

The wire (:mod:`ttg_lib.messages`) carries int64, float64, dicts of scalars and JSON; a
function returns whatever it likes. :func:`normalise` turns each value into those, once, in
the process that computed it, so packing never raises, and a value nothing can store becomes
that point's error instead of a crash. The table (README "Return values"):

=====================================  =============================================
returned                               stored as
=====================================  =============================================
bool, int, float, str, None            as is (NaN and +-inf included)
numpy bool_ / integer / floating       bool / int / float (a float32 keeps its value)
numpy datetime64, datetime, date, time ISO 8601 text
timedelta, numpy timedelta64           seconds (float)
decimal.Decimal                        its exact text, e.g. "1.10"
bytes, bytearray, memoryview           base64 text
complex                                {"real": ..., "imag": ...}
list, tuple, set, numpy array          a list (JSON), items converted likewise
dict                                   keys as text; scalar values: a column per key
dataclass, namedtuple, pydantic model  their dict
Enum                                   its value; Path, UUID: their text
anything else                          the point's error "cannot store a value of type X"
=====================================  =============================================
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

PLAIN = frozenset({int, float, str, bool, type(None)})
_MAX_DEPTH = 64


class Unstorable(ValueError):
    """A value no column and no JSON can hold; its message is the point's error."""


def normalise(values: list[Any]) -> tuple[list[Any], dict[int, str]]:
    """``values`` made storable (the same list when it already is: the fast path costs one
    pass over the types), and the errors of the values that cannot be, by position (their
    value becomes None)."""
    return normalise_typed(values)[:2]


def normalise_typed(values: list[Any]) -> tuple[list[Any], dict[int, str], set[type] | None]:
    """:func:`normalise`, and the values' types when the fast path found them unchanged
    (packing reuses them: one pass over a million values, not two)."""
    types = set(map(type, values))
    if types <= PLAIN and (str not in types or all(_clean_text(v) for v in values
                                                   if type(v) is str)):
        return values, {}, types
    if types == {dict} and _plain_dicts(values):
        return values, {}, types
    out, errors = list(values), {}
    for i, value in enumerate(values):
        try:
            out[i] = storable(value)
        except Unstorable as exc:
            out[i], errors[i] = None, str(exc)
        except RecursionError:
            out[i], errors[i] = None, "cannot store a value nested this deeply"
    return out, errors, None


def storable(value: Any, depth: int = 0) -> Any:
    """One value as bool/int/float/str/None, a list or a dict of such (see the table)."""
    kind = type(value)
    if kind in (int, float, bool) or value is None:
        return value
    if kind is str:
        return value if _clean_text(value) else _repair_text(value)
    if depth > _MAX_DEPTH:
        raise Unstorable("cannot store a value nested this deeply")
    numpy_value = _from_numpy(value)
    if numpy_value is not _NOT_NUMPY:
        return storable(numpy_value, depth + 1) if type(numpy_value) in (list, dict) \
            else numpy_value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, enum.Enum):
        return storable(value.value, depth + 1)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return storable(str(value), depth + 1)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, complex):
        return {"real": value.real, "imag": value.imag}
    if isinstance(value, (PurePath, uuid.UUID)):
        return str(value)
    as_dict = _as_dict(value)
    if as_dict is not None:
        return _dict(as_dict, depth)
    if isinstance(value, Mapping):
        return _dict(value, depth)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [storable(v, depth + 1) for v in items]
    if hasattr(value, "tolist") and callable(value.tolist):  # pandas, array.array, ...
        return storable(value.tolist(), depth + 1)
    raise Unstorable(f"cannot store a value of type {_type_name(value)}")


def _dict(mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in mapping.items():
        name = key if type(key) is str else _key_text(key)
        if name in out:
            raise Unstorable(f"cannot store a dict whose keys {name!r} collide as text")
        out[name] = storable(item, depth + 1)
    return out


def _key_text(key: Any) -> str:
    key = storable(key)
    if isinstance(key, (list, dict)):
        raise Unstorable("cannot store a dict with a key of type "
                         f"{_type_name(key)} (keys must be scalars)")
    return key if isinstance(key, str) else str(key)


def _as_dict(value: Any) -> Mapping[str, Any] | None:
    """Dataclasses, namedtuples and pydantic-like models as their fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return value._asdict()
    for method in ("model_dump", "dict"):  # pydantic v2, v1 (and alike)
        dump = getattr(value, method, None)
        if callable(dump) and not isinstance(value, type):
            try:
                data = dump()
            except Exception:  # noqa: BLE001 - not what it looked like
                continue
            if isinstance(data, Mapping):
                return data
    return None


_NOT_NUMPY = object()


def _from_numpy(value: Any) -> Any:
    """A numpy scalar or array as Python; _NOT_NUMPY for anything else (numpy is only
    looked at when the value's type comes from it, so plain Python never imports it)."""
    if not type(value).__module__.startswith("numpy"):
        return _NOT_NUMPY
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.complexfloating):
        return {"real": float(value.real), "imag": float(value.imag)}
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(np.datetime_as_string(value))
    if isinstance(value, np.timedelta64):
        return None if np.isnat(value) else float(value / np.timedelta64(1, "s"))
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, np.bytes_):
        return base64.b64encode(bytes(value)).decode("ascii")
    return _NOT_NUMPY


def _plain_dicts(values: list[dict[Any, Any]]) -> bool:
    """Dicts of plain values with clean text. Dicts that share their keys (what a function
    returns, point after point) are checked a key at a time: one type set and one text check
    per column, not a Python loop over every value of every dict."""
    keys = values[0].keys()
    if not all(v.keys() == keys for v in values):
        return all(_plain_dict(v) for v in values)
    if not all(type(k) is str for k in keys) or not _clean_text("".join(keys)):
        return False
    for key in keys:
        column = [v[key] for v in values]
        kinds = set(map(type, column))
        if not kinds <= PLAIN or (str in kinds and not _clean_text(  # a lone surrogate stays
                "".join(t for t in column if type(t) is str))):  # one when joined
            return False
    return True


def _plain_dict(value: dict[Any, Any]) -> bool:
    return all(type(k) is str and _clean_text(k) for k in value) and all(
        type(v) in PLAIN and (type(v) is not str or _clean_text(v)) for v in value.values())


def _clean_text(text: str) -> bool:
    """Text UTF-8 can hold (a lone surrogate, from os.listdir or surrogateescape, cannot)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _repair_text(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def clean_text(text: str) -> str:
    """``text`` as UTF-8 can hold it (lone surrogates escaped): for error messages."""
    return text if _clean_text(text) else _repair_text(text)


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"

