"""Samples of a run while it goes (``samples.jsonl``): progress and queue depths every
``sample_s``, one row shape for the run, its charts and the record."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from .backends import QueueStats
from .runstate import Progress

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


def sample_row(p: Progress) -> dict[str, Any]:
    """One sample of a run. What a person follows comes from the ledger: chunks left to
    compute, recomputations queued (awaited), points on disk; the queue depths are the
    broker's own figures (with ``--verify full`` every finished chunk queues its
    recomputation, so the tasks queue stays level while the chunks left fall)."""
    row: dict[str, Any] = {"t": round(p.elapsed_s, 3), "completed": p.chunks_completed,
                           "failed": p.chunks_failed, "params_done": p.params_done,
                           "live_workers": p.live_workers,
                           "chunks_left": max(0, p.chunks_total - p.chunks_completed
                                              - p.chunks_failed),
                           "verify_queued": p.verify_queued, "rows": p.rows_on_disk}
    if p.stats:
        row.update(queue_columns(p.stats))
    if p.eta is not None:  # modelled on the axes (ttg_lib.eta): `ttg monitor` reads it
        row["eta_s"], row["eta_spread_s"] = round(p.eta.remaining_s, 1), round(p.eta.spread_s,
                                                                                1)
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

    def take(self, progress: Progress, stats: QueueStats | None) -> None:
        """One sample of ``progress`` with the queue depths just read (``stats``; None while
        the broker is down: the sample has no depths, never the last ones again)."""
        if stats is not None:
            self.last_stats = stats
        row = sample_row(dataclasses.replace(
            progress, stats=stats.to_dict() if stats is not None else None))
        row["wall"] = time.time()
        row["broker_up"] = stats is not None
        self.append(row)
