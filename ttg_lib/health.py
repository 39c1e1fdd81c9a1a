"""Liveness/readiness probe: exit 0 while the worker's heartbeat file is fresh.

Used by the Kubernetes probes and the image's HEALTHCHECK:
``python -m ttg_lib.health --file /tmp/ttg/heartbeat --max-age 15``.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ttg_lib.health")
    parser.add_argument("--file", default="/tmp/ttg/heartbeat", type=Path)
    parser.add_argument("--max-age", default=15.0, type=float)
    args = parser.parse_args(argv)
    ok, message = check(args.file, args.max_age)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
