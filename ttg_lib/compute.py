"""Per-parameter compute functions and how TTG finds them.

A compute function is ``fn(param_id: int, work_ms: float) -> JSON value`` and
must be deterministic in ``param_id``: the orchestrator re-runs it (with
``work_ms=0``) to verify every result a worker sent back.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .errors import ComputeImportError
from .messages import compact_json

ComputeFn = Callable[[int, float], Any]

_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


_oversleep = threading.local()


def simulate_work(work_ms: float) -> None:
    """Sleep ``work_ms``; the OS's oversleep (tens of us a call) is taken off the next call,
    so n calls take n x work_ms, as the ideal runtime assumes, and not n x (work_ms + slack).
    """
    if work_ms <= 0:
        return
    target = work_ms / 1000.0 - getattr(_oversleep, "s", 0.0)
    if target <= 0:
        _oversleep.s = -target
        return
    start = time.perf_counter()
    time.sleep(target)
    _oversleep.s = min(max(0.0, time.perf_counter() - start - target), work_ms / 1000.0)


def placeholder(param_id: int, work_ms: float) -> int:
    """Simulated work (see simulate_work), then a 53-bit hash of the id.

    53 bits keep the value exact through JSON in every language.
    """
    simulate_work(work_ms)
    x = (param_id * _MIX) & _MASK
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 29
    return x >> 11


def failing(param_id: int, work_ms: float) -> int:
    """Raises for every param id ending in 13; used to demonstrate retries and the DLQ."""
    if param_id % 100 == 13:
        raise RuntimeError(f"param {param_id} is configured to fail")
    return placeholder(param_id, work_ms)


Fetch = Callable[[str], "bytes | None"]  # a fingerprint -> the payload stored under it


@lru_cache(maxsize=32)
def load(path: str) -> ComputeFn:
    """The callable at ``package.module:function``, imported like ``python -m`` does: the
    working directory is searched too (before failing), so ``mymodel:simulate`` works from
    the directory holding mymodel.py."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ComputeImportError(path, "an import path 'package.module:function'")
    try:
        module = _import(module_name)
    except Exception as exc:  # any import-time failure is the user's to fix
        where = ""
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.partition(".")[0]:
            where = (f"; searched the working directory {os.getcwd()} and sys.path (run ttg "
                     f"from the directory holding {exc.name}.py, or install its package)")
        raise ComputeImportError(path, f"module {module_name!r} does not import "
                                       f"({type(exc).__name__}: {exc}){where}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ComputeImportError(path, f"{module_name} has no callable {attr!r}")
    return fn


def _import(module_name: str) -> Any:
    """Import; a top-level module not found is looked for in the working directory too."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != module_name.partition(".")[0] or cwd in sys.path:
            raise
        sys.path.insert(0, cwd)  # as `python -m` puts it first
        importlib.invalidate_caches()
        return importlib.import_module(module_name)


def run_chunk(fn: Callable[..., Any], start: int, count: int, work_ms: float,
              space: dict[str, Any] | None = None) -> list[Any]:
    """A chunk's values: ``fn(param_id, work_ms)`` for a bare range, ``fn(**point)`` for
    every point of a space (its axes as keyword arguments)."""
    if space is None:
        return [fn(param_id, work_ms) for param_id in range(start, start + count)]
    return [fn(**point) for point in space_of(space).points(start, count)]


def space_of(data: dict[str, Any]) -> Any:
    """The Space of a task's space dict, parsed once per distinct space."""
    return _space_cached(compact_json(data))


@lru_cache(maxsize=8)
def _space_cached(text: str) -> Any:
    from .space import load_space

    return load_space(json.loads(text))
