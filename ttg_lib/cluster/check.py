"""``python -m ttg_lib.cluster.check SPEC``: can this image load the run's function?

The preflight pod of a Kubernetes run runs this with the worker image and the worker's
environment, before any task is published (:mod:`ttg_lib.cluster.kubernetes.preflight`).
SPEC is what a task names: an import path ``module:function``, or a function shipped by value
through the broker (``sha256:<hex>``, fetched with the worker's broker settings), loaded the
way a worker loads it. One JSON line on stdout says what happened, with the Python version
(a by-value function pickled by another Python may not load); the exit code is 0 when the
function loaded, 1 when not.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from typing import Any


def load(spec: str) -> Callable[..., Any]:
    """The function a worker would run for a task naming ``spec``."""
    from ..byvalue import resolve

    return resolve(spec, _fetch_from_broker)


def _fetch_from_broker(key: str) -> bytes | None:
    """A payload stored on the run's broker, with the worker's settings (TTG_BACKEND and its
    URL variable, from the worker ConfigMap and Secret)."""
    from ..backends import DEFAULT_BACKEND, get_spec, open_consumer

    backend = os.environ.get("TTG_BACKEND") or DEFAULT_BACKEND
    consumer = open_consumer(backend, get_spec(backend).url())
    consumer.connect()
    try:
        get_blob = getattr(consumer, "get_blob", None)
        return get_blob(key) if get_blob is not None else None
    finally:
        consumer.close()


def check(spec: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"compute": spec, "python": platform.python_version()}
    try:
        fn = load(spec)
    except Exception as exc:  # the user's module, its dependencies, a payload: all reported
        answer.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    else:
        answer.update(ok=True, function=getattr(fn, "__qualname__", repr(fn)))
    return answer


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ttg_lib.cluster.check SPEC (module:function or sha256:<hex>)",
              file=sys.stderr)
        return 2
    answer = check(args[0])
    print(json.dumps(answer), flush=True)
    return 0 if answer["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
