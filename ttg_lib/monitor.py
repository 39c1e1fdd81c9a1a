"""`ttg monitor`: the TTG queues as the broker itself reports them; with ``--run``, where that
run is as its own record says (chunks left, recomputations queued, points on disk, the ETA
modelled on the axes) and its points running for over a minute."""

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
from .eta import eta_label
from .report import queue_stats_rows

TAIL_BYTES = 8192  # the end of samples.jsonl: its last sample is in there


def snapshot(backend: Inspector, record_dir: Path | None = None) -> dict[str, Any]:
    """The queues as the broker reports them; a figure it cannot give is null, and
    ``hint`` says why (never a number guessed from the others). With a run's record: its
    points running for over a minute (``slow_points``, from the workers' heartbeats)."""
    stats = backend.stats()
    consumers = backend.consumers() if isinstance(backend, ListsConsumers) else []
    snap = {"backend": backend.name, "at": time.time(), "queues": stats.to_dict(),
            "workers": [c.to_dict() for c in consumers]}
    if record_dir is not None:
        snap["run"] = run_progress(record_dir)
        snap["slow_points"] = slow_points(record_dir)
    if stats.hint:
        snap["hint"] = stats.hint
    return snap


def run_progress(record_dir: Path) -> dict[str, Any] | None:
    """The run's last sample (``samples.jsonl``, read from its end): the figures a person
    follows and the ETA; ``ended`` once the run wrote its summary. None before a sample."""
    sample = last_sample(Path(record_dir) / "samples.jsonl")
    if sample is None:
        return None
    keys = ("t", "chunks_left", "verify_queued", "rows", "eta_s", "eta_spread_s")
    return {"run_id": Path(record_dir).name, **{k: sample.get(k) for k in keys},
            "ended": (Path(record_dir) / "summary.json").exists()}


def last_sample(path: Path) -> dict[str, Any] | None:
    """The last whole JSON line of a file, reading only its end (a long run's file is big)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - TAIL_BYTES))
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line torn by the writer, or cut by the seek
        if isinstance(row, dict):
            return row
    return None


def progress_line(run: dict[str, Any] | None) -> str:
    """``run r1 at 12.4s: 37 chunks left to compute, 63 recomputations queued, 630 points
    on disk, ETA 12s ± 2s`` (what the broker's queue depths do not say)."""
    if run is None:
        return "run: no sample yet"
    parts = [f"{run[key]:,} {what}" for key, what in (
        ("chunks_left", "chunks left to compute"), ("verify_queued", "recomputations queued"),
        ("rows", "points on disk")) if run.get(key) is not None]
    if run.get("ended"):
        parts.append("ended")
    elif run.get("eta_s") is not None:
        parts.append(eta_label(run["eta_s"], run.get("eta_spread_s") or 0.0))
    return f"run {run['run_id']} at {run.get('t') or 0:.1f}s: " + ", ".join(parts)


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
                parts: list[Any] = [progress_line(snap["run"])] if "run" in snap else []
                parts.append(stats_table(snap["queues"], f"TTG queues on {backend.name} "
                                                         f"(the broker's own figures)"))
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
