"""What every benchmark result starts with: a stamped output folder and the machine's state.

A figure means nothing without the command that made it, the load the machine had and the
machine itself, so every script stamps its result the same way from here.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BROKERS = ("redis", "rabbitmq")


class UsageError(ValueError):
    """A bad option: printed as one line and exit code 2, never a traceback."""


def stamped_dir(parent: str | Path, name: str) -> Path:
    """``parent/name-YYYYmmdd-HHMMSS``, created: runs never overwrite each other."""
    out = Path(parent) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def header(script: str, argv: Sequence[str] | None) -> dict[str, Any]:
    """The command as typed, when, and what the machine was doing at the start."""
    return {"command": " ".join(["python", f"benchmarks/{script}",
                                 *(sys.argv[1:] if argv is None else argv)]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_at_start": os.getloadavg(),
            "cpus": os.cpu_count(), "machine": platform.platform(),
            "python": sys.version.split()[0]}


def fresh_dir(parent: str | Path) -> Path:
    """A new, empty output directory under ``parent`` for one run. A benchmark measures
    computing: no run may reuse the points of an earlier run in its output directory (issue
    22's reuse), and a fresh directory says so to every version of TTG, old ones included."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=parent))


def parse_brokers(text: str) -> list[str]:
    """``redis,rabbitmq`` to a list; anything else is one clear error."""
    names = [b.strip() for b in text.split(",") if b.strip()]
    if not names or any(b not in BROKERS for b in names):
        raise UsageError(f"--backends {text!r}: allowed {', '.join(BROKERS)}")
    return names
