"""Samples of a run while it goes (``samples.jsonl``): progress and queue depths every
``sample_s``, one row shape for the run, its charts and the record."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .backends import QueueStats

ROLES = ("tasks", "results", "retry", "dlq")


def queue_columns(stats: dict[str, Any]) -> dict[str, Any]:
    """Queue depths as sample columns: ``<role>``, ``<role>_ready``, ``<role>_unacked``."""
    row: dict[str, Any] = {}
    for role in ROLES:
        if role in stats:
            row[role] = stats[role]["messages"]
            row[f"{role}_ready"] = stats[role]["ready"]
            row[f"{role}_unacked"] = stats[role].get("unacked")
    if "tasks" in stats:
        row["consumers"] = stats["tasks"]["consumers"]
    return row


def sample_row(t: float, completed: int, failed: int, params_done: int, live_workers: int,
               stats: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"t": round(t, 3), "completed": completed, "failed": failed,
                           "params_done": params_done, "live_workers": live_workers}
    if stats:
        row.update(queue_columns(stats))
    return row


class Sampler:
    """Takes a sample every ``every_s`` (0: never, e.g. to measure what sampling costs)."""

    def __init__(self, every_s: float, append: Callable[[dict[str, Any]], None]):
        self.every_s = every_s
        self.append = append
        self.last_stats: QueueStats | None = None
        self._next = 0.0

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and (now < self._next or not self.every_s):
            return False
        self._next = now + self.every_s
        return True

    def take(self, t: float, completed: int, failed: int, params_done: int,
             live_workers: int, stats: QueueStats | None) -> None:
        if stats is not None:
            self.last_stats = stats
        row = sample_row(t, completed, failed, params_done, live_workers,
                         stats.to_dict() if stats is not None else None)
        row["wall"] = time.time()
        row["broker_up"] = stats is not None
        self.append(row)
