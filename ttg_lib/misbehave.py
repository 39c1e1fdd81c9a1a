"""Functions that misbehave on purpose, to see (and test) how TTG contains them
(``--compute ttg_lib.misbehave:NAME`` over a space with an ``x`` axis).

Each is well-behaved (returns ``x * 0.5``) except at the points its docstring names.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import time
from typing import Any


def raises_at_13(x: int) -> float:
    """Raises ValueError for x = 13."""
    if x == 13:
        raise ValueError("13 is unlucky")
    return x * 0.5


def always_raises(x: int) -> float:
    """Raises for every point: a systematic bug (try --max-failures)."""
    raise RuntimeError(f"broken for x={x}")


def kills_itself(x: int) -> float:
    """x = 7: SIGKILL of its own process (what the OOM killer does); x = 23: a segfault
    (reads address 0); x = 31: os._exit(3)."""
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 23:
        ctypes.string_at(0)
    if x == 31:
        os._exit(3)
    return x * 0.5


def hangs(x: int) -> float:
    """x = 25 sleeps forever (try --point-timeout); the others take 20 ms."""
    if x == 25:
        while True:
            time.sleep(3600)
    time.sleep(0.02)
    return x * 0.5


def hangs_first(x: int) -> float:
    """x = 1 sleeps forever, in the first chunk: its worker has learned no limit of its own
    (``--point-timeout auto``); the others take 20 ms."""
    if x == 1:
        hangs(25)
    time.sleep(0.02)
    return x * 0.5


def any_type(x: int) -> Any:
    """A different kind of value for each x mod 24 (every row of the README's table, and one
    that cannot be stored): see :func:`any_type_cases`."""
    cases = any_type_cases()
    return cases[x % len(cases)](x)


@functools.cache
def any_type_cases() -> list[Any]:
    import dataclasses
    import datetime as dt
    import decimal
    from collections import namedtuple

    import numpy as np

    @dataclasses.dataclass
    class Fit:
        loss: float
        steps: int

    Pair = namedtuple("Pair", "a b")
    return [
        lambda x: np.float32(x + 0.25), lambda x: np.int64(x), lambda x: np.uint8(x),
        lambda x: np.float16(0.5), lambda x: np.bool_(x % 2), lambda x: None,
        lambda x: float("nan"), lambda x: float("inf"), lambda x: f"text-{x}",
        lambda x: b"\x00\xff", lambda x: decimal.Decimal("1.10"),
        lambda x: dt.datetime(2026, 1, 2, 3, 4, 5), lambda x: [x, np.int32(2)],
        lambda x: (1.5, "a"), lambda x: np.arange(3), lambda x: {"a": np.float64(1.5)},
        lambda x: {"nested": {"deep": [1, 2]}}, lambda x: Fit(0.5, x),
        lambda x: Pair(1, 2), lambda x: complex(1, 2), lambda x: 2**70,
        lambda x: "name-\udcff", lambda x: {1: "one"}, lambda x: object(),
    ]



def numpy_dict(x: int) -> dict[str, Any]:
    """numpy scalars in a dict: a float32 mean and an int64 argmax (typed columns)."""
    import numpy as np

    return {"mean": np.float32(x + 0.25), "argmax": np.arange(3).argmax()}


def broken_until_fixed(x: int) -> float:
    """Raises for every x divisible by 3 until the environment says it is fixed
    (TTG_DEMO_FIXED=1): try --max-failures, then --resume RUN --retry-failed. 10 ms a point."""
    time.sleep(0.01)
    if x % 3 == 0 and os.environ.get("TTG_DEMO_FIXED") != "1":
        raise RuntimeError(f"not fixed yet (x={x})")
    return x * 0.5
