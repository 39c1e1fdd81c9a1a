"""Liveness/readiness probe: exit 0 while the worker's heartbeat file is fresh.

Used by the Kubernetes probes and the image's HEALTHCHECK:
``python -m ttg_lib.health --file /tmp/ttg/heartbeat`` (liveness: the heartbeat limit is
``--max-age``, else TTG_LIVENESS_S, else 15 s) and ``... --max-age 5 --ready`` (readiness: a
worker that is reconnecting to its broker cannot take tasks, so it is not ready). The command
line is :mod:`ttg_lib.commands.health`, also ``ttg health``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DEFAULT_LIVENESS_S = 15.0
NOT_LIVE = ("stopped", "starting")
NOT_READY = (*NOT_LIVE, "reconnecting")


def liveness_limit() -> float:
    """The liveness limit in seconds: TTG_LIVENESS_S (the worker ConfigMap sets it), else 15."""
    return float(os.environ.get("TTG_LIVENESS_S") or DEFAULT_LIVENESS_S)


def check(path: Path, max_age: float, now: float | None = None,
          ready: bool = False) -> tuple[bool, str]:
    try:
        beat = json.loads(path.read_text())
    except FileNotFoundError:
        return False, f"no heartbeat file at {path} (worker not started yet?)"
    except (OSError, ValueError) as exc:
        return False, f"unreadable heartbeat file {path}: {exc}"
    age = (now or time.time()) - float(beat.get("last_heartbeat", 0))
    if age > max_age:
        return False, f"heartbeat is {age:.1f}s old (limit {max_age:g}s), state {beat.get('state')}"
    if beat.get("state") in (NOT_READY if ready else NOT_LIVE):
        return False, f"worker state is {beat.get('state')}"
    return True, f"ok: {beat.get('state')}, heartbeat {age:.1f}s ago"
