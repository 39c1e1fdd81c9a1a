"""Structured log lines: one JSON object per line, easy to grep and to parse back."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


class EventLog:
    def __init__(self, stream: TextIO | None = None, **context: Any):
        self.stream = stream or sys.stderr
        self.context = context

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        line = {"ts": round(time.time(), 4), "level": level, "event": event,
                **self.context, **fields}
        self.stream.write(json.dumps(line, default=str) + "\n")
        self.stream.flush()
