"""`ttg monitor`: the TTG queues and workers, read from the broker itself."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from ..backends import DEFAULT_BACKEND, open_inspector
from ..config import BACKENDS
from .base import command


@command("monitor")
@click.option("--backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND,
              show_default=True)
@click.option("--interval", type=float, default=1.0, show_default=True)
@click.option("--once", is_flag=True, help="print once and exit")
@click.option("--json", "as_json", is_flag=True, help="machine-readable (with --once)")
@click.option("--run", "run_id", default=None,
              help="also show where RUN is (chunks left, recomputations queued, points on "
                   "disk, ETA) and its points running for over a minute (local workers)")
@click.option("--output-dir", default="outputs", show_default=True,
              help="where runs/ is, with --run")
def monitor(backend: str, interval: float, once: bool, as_json: bool, run_id: str | None,
            output_dir: str) -> None:
    """Live view of the TTG queues, read from the broker itself."""
    from ..monitor import (
        progress_line,
        slow_points_table,
        snapshot,
        stats_table,
        watch,
        workers_table,
    )

    record = Path(output_dir) / "runs" / run_id if run_id else None

    broker = open_inspector(backend)
    broker.connect()
    try:
        if once:
            snap = snapshot(broker, record)
            if as_json:
                click.echo(json.dumps(snap, indent=2))
            else:
                if "run" in snap:
                    Console().print(progress_line(snap["run"]), highlight=False)
                Console().print(stats_table(snap["queues"]))
                if snap.get("hint"):
                    Console().print(f"[yellow]{snap['hint']}[/yellow]")
                if snap["workers"]:
                    Console().print(workers_table(snap["workers"]))
                if snap.get("slow_points"):
                    Console().print(slow_points_table(snap["slow_points"]))
            return
        watch(broker, interval, record_dir=record)
    except KeyboardInterrupt:
        pass
    finally:
        broker.close()
