"""Liveness/readiness probe: is the worker's heartbeat file fresh?

Used by the Kubernetes probes and the image's HEALTHCHECK:
``python -m ttg_lib.health --file /tmp/ttg/heartbeat --max-age 15`` (the command line is
:mod:`ttg_lib.commands.health`, also ``ttg health``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def check(path: Path, max_age: float, now: float | None = None) -> tuple[bool, str]:
    try:
        beat = json.loads(path.read_text())
    except FileNotFoundError:
        return False, f"no heartbeat file at {path} (worker not started yet?)"
    except (OSError, ValueError) as exc:
        return False, f"unreadable heartbeat file {path}: {exc}"
    age = (now or time.time()) - float(beat.get("last_heartbeat", 0))
    if age > max_age:
        return False, f"heartbeat is {age:.1f}s old (limit {max_age:g}s), state {beat.get('state')}"
    if beat.get("state") in ("stopped", "starting"):
        return False, f"worker state is {beat.get('state')}"
    return True, f"ok: {beat.get('state')}, heartbeat {age:.1f}s ago"


if __name__ == "__main__":
    from ttg_lib.commands.health import health

    health.main(prog_name="python -m ttg_lib.health")
