"""Loading a space: from a file, inline text or a dict, validated, with one clear error.

The top level of a space is either a product (``mode``, ``samples``, ``seed``, ``axes``) or a
``union`` of spaces; either may add ``derived`` axes and a ``where`` filter. A space with a
filter is counted at load (vectorised), so loading the same space again reuses it: spaces
are cached by their text, a few at a time.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .axes import Axis
from .base import MASK64, MAX_POINTS, Space, SpaceError
from .constrained import ConstrainedSpace, DerivedAxis
from .expr import compile_expr
from .forms import ALL_FORMS, check_name, make_axis
from .product import MODES, ProductSpace
from .union import UnionSpace

TOP_KEYS = ("mode", "samples", "seed", "axes", "union", "derived", "where")
_PRODUCT_KEYS = ("mode", "samples", "seed", "axes")


def load_space(source: str | Path | Mapping[str, Any] | Space) -> Space:
    """A validated :class:`Space` from a file (``.yaml``, ``.yml``, ``.json``), from inline
    YAML/JSON text starting with ``{`` (a notebook parameter), or from the same dict.

    Raises :class:`SpaceError` naming the key or axis that is wrong and what is allowed.
    """
    if isinstance(source, Space):
        return source
    if isinstance(source, Mapping):
        return _cached(source)
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return _cached(_parse_text(source, "space"))
    path = Path(source)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpaceError("space", str(path), "file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError("space", str(path), f"cannot be read ({exc})") from None
    return _cached(_parse_text(text, str(path), json_only=path.suffix.lower() == ".json"))


def _cached(data: Mapping[str, Any]) -> Space:
    """The config, the run and every worker load the same space: a filter is counted once
    per process. The space is kept under its text as given and as its record writes it."""
    try:
        key = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return build_space(data)  # odd values: the validation names them
    with _LOCK:  # a worker's threads: one count, not one each
        space = _CACHE.get(key)
        if space is None:
            space = build_space(data)
            for text in (key, json.dumps(space.to_dict(), separators=(",", ":"))):
                _CACHE[text] = space
                _CACHE.move_to_end(text)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return space


_CACHE: OrderedDict[str, Space] = OrderedDict()
_CACHE_SIZE = 16
_LOCK = threading.Lock()


def build_space(data: Mapping[str, Any]) -> Space:
    """A space from its dict (no cache): a product or a union, then derived axes and a
    filter if any."""
    unknown = [key for key in data if key not in TOP_KEYS]
    if unknown:
        raise SpaceError(str(unknown[0]), data[unknown[0]],
                         f"unknown key in a space; allowed: {', '.join(TOP_KEYS)}")
    base = _union(data) if "union" in data else _product(data)
    derived = _derived(data.get("derived"), base)
    where = None
    if data.get("where") is not None:
        kinds = {**base.kinds, **{d.name: d.kind for d in derived}}
        where = compile_expr("where", data["where"], kinds)
        if where.kind != "bool":
            raise SpaceError("where", data["where"], f"a condition (True or False for each "
                                                     f"point), e.g. \"a < b and depth != 4\"; "
                                                     f"this gives a {where.kind}")
    if not derived and where is None:
        return base
    return ConstrainedSpace(base, derived, where)


def _union(data: Mapping[str, Any]) -> Space:
    extra = [key for key in _PRODUCT_KEYS if key in data
             and not (key == "mode" and data[key] == "union")]  # as to_dict writes it
    if extra:
        raise SpaceError(extra[0], data[extra[0]], "a union takes its axes from its parts: "
                                                   "give mode, samples, seed and axes in each "
                                                   "part")
    parts = data["union"]
    if not isinstance(parts, list) or not parts or \
            not all(isinstance(p, Mapping) for p in parts):
        raise SpaceError("union", parts, "a list of one or more spaces, each a mapping with "
                                         "axes (and its own mode, derived, where)")
    built = []
    for i, part in enumerate(parts):
        try:
            built.append(build_space(part))
        except SpaceError as exc:
            raise SpaceError(f"union[{i}].{exc.field}", exc.value, exc.allowed) from None
    return UnionSpace(tuple(built))


def _derived(raw: Any, base: Space) -> tuple[DerivedAxis, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise SpaceError("derived", raw, "a mapping of new axis names to expressions over "
                                         "the axes, e.g. {width: \"2 ** log_width\"}")
    kinds = dict(base.kinds)
    axes = []
    for name, text in raw.items():
        check_name(f"derived.{name}", name)
        if name in kinds:
            raise SpaceError(f"derived.{name}", text, f"{name!r} is an axis already; a derived "
                                                      f"axis needs a name of its own")
        expr = compile_expr(f"derived.{name}", text, kinds)
        axes.append(DerivedAxis(name=name, expr=expr))
        kinds[name] = expr.kind  # a later derived axis may use this one
    return tuple(axes)


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
        raise SpaceError("space", origin, "must hold a mapping with 'axes' or 'union' (and "
                                          "optionally mode, samples, seed, derived, where)")
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


def _product(data: Mapping[str, Any]) -> ProductSpace:
    mode = data.get("mode", "grid")
    if mode not in MODES:
        more = "a union lists its parts: union: [space, ...]" if mode == "union" else \
            "or union: [space, ...] instead of axes"
        raise SpaceError("mode", mode, f"one of {', '.join(MODES)} ({more})")
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
        if type(seed) is not int or not 0 <= seed <= MASK64:
            raise SpaceError("seed", seed, "a whole number from 0 to 2**64 - 1")
    raw_axes = data.get("axes")
    if not isinstance(raw_axes, Mapping) or not raw_axes:
        raise SpaceError("axes", raw_axes, "a mapping of at least one axis name to its values: "
                                           f"{ALL_FORMS}")
    axes = tuple(make_axis(name, spec, mode) for name, spec in raw_axes.items())
    size = samples if mode == "random" else _size(mode, axes)
    return ProductSpace(mode=mode, axes=axes, size=size, samples=samples,
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
