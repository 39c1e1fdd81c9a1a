"""`ttg monitor`: the TTG queues as the broker itself reports them."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .backends import BrokerUnavailable, Inspector, ListsConsumers, QueueStats
from .report import queue_stats_rows


def snapshot(backend: Inspector, record_dir: Path | None = None) -> dict[str, Any]:
    """The queues as the broker reports them; a figure it cannot give is null, and
    ``hint`` says why (never a number guessed from the others). With a run's record: its
    points running for over a minute (``slow_points``, from the workers' heartbeats)."""
    stats = backend.stats()
    consumers = backend.consumers() if isinstance(backend, ListsConsumers) else []
    snap = {"backend": backend.name, "at": time.time(), "queues": stats.to_dict(),
            "workers": [c.to_dict() for c in consumers]}
    if record_dir is not None:
        snap["slow_points"] = slow_points(record_dir)
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


def slow_points(record_dir: Path) -> list[dict[str, Any]]:
    """Points running for over a minute, as the run's workers' heartbeat files say."""
    rows = []
    for beat in sorted(Path(record_dir, "workers").glob("w*.json")):
        try:
            state = json.loads(beat.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state.get("running"), dict) and state.get("state") == "busy":
            rows.append({"worker": state.get("name", beat.stem), **state["running"]})
    return rows


def slow_points_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Points running for over a minute")
    for col in ("worker", "chunk", "param_id", "seconds"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(col)) for col in ("worker", "chunk", "param_id",
                                                      "seconds")))
    return table


def watch(backend: Inspector, interval: float, console: Console | None = None,
          iterations: int = 0, record_dir: Path | None = None) -> None:
    """Refresh until Ctrl-C (or ``iterations`` refreshes, for tests)."""
    console = console or Console()
    count = 0
    with Live(console=console, auto_refresh=False) as live:
        while True:
            try:
                snap = snapshot(backend, record_dir)
                parts: list[Any] = [stats_table(snap["queues"],
                                                f"TTG queues on {backend.name}")]
                if snap.get("hint"):
                    parts.append(f"[yellow]{snap['hint']}[/yellow]")
                if snap["workers"]:
                    parts.append(workers_table(snap["workers"]))
                if snap.get("slow_points"):
                    parts.append(slow_points_table(snap["slow_points"]))
                live.update(Group(*parts), refresh=True)
            except BrokerUnavailable as exc:
                live.update(f"[red]broker unavailable:[/red] {exc} (retrying)", refresh=True)
                with contextlib.suppress(BrokerUnavailable):
                    backend.reconnect()
            count += 1
            if iterations and count >= iterations:
                return
            time.sleep(interval)
