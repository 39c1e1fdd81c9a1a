"""`ttg monitor`: the TTG queues as the broker itself reports them."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .backends import BrokerUnavailable, Inspector, ListsConsumers, QueueStats
from .report import queue_stats_rows


def snapshot(backend: Inspector) -> dict[str, Any]:
    """The queues as the broker reports them; a figure it cannot give is null, and
    ``hint`` says why (never a number guessed from the others)."""
    stats = backend.stats()
    consumers = backend.consumers() if isinstance(backend, ListsConsumers) else []
    snap = {"backend": backend.name, "at": time.time(), "queues": stats.to_dict(),
            "workers": [c.to_dict() for c in consumers]}
    if stats.hint:
        snap["hint"] = stats.hint
    return snap


def stats_table(stats: QueueStats | dict[str, Any], title: str = "TTG queues") -> Table:
    data = stats.to_dict() if isinstance(stats, QueueStats) else stats
    table = Table(title=title)
    for col in ("name", "messages", "consumers", "messages_ready", "messages_unacknowledged"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for row in queue_stats_rows(data):
        table.add_row(*(str(v) for v in row))
    return table


def workers_table(workers: list[dict[str, Any]]) -> Table:
    table = Table(title="Consumers, as the broker reports them")
    for col in ("name", "pending", "idle ms"):
        table.add_column(col)
    for w in workers:
        table.add_row(w["name"], str(w["pending"]), str(w["idle"]))
    return table


def watch(backend: Inspector, interval: float, console: Console | None = None,
          iterations: int = 0) -> None:
    """Refresh until Ctrl-C (or ``iterations`` refreshes, for tests)."""
    console = console or Console()
    count = 0
    with Live(console=console, auto_refresh=False) as live:
        while True:
            try:
                snap = snapshot(backend)
                parts: list[Any] = [stats_table(snap["queues"],
                                                f"TTG queues on {backend.name}")]
                if snap.get("hint"):
                    parts.append(f"[yellow]{snap['hint']}[/yellow]")
                if snap["workers"]:
                    parts.append(workers_table(snap["workers"]))
                live.update(Group(*parts), refresh=True)
            except BrokerUnavailable as exc:
                live.update(f"[red]broker unavailable:[/red] {exc} (retrying)", refresh=True)
                with contextlib.suppress(BrokerUnavailable):
                    backend.reconnect()
            count += 1
            if iterations and count >= iterations:
                return
            time.sleep(interval)
