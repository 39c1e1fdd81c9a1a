"""`ttg monitor`: the TTG queues and workers, read from the broker itself."""

from __future__ import annotations

import json

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
def monitor(backend: str, interval: float, once: bool, as_json: bool) -> None:
    """Live view of the TTG queues, read from the broker itself."""
    from ..monitor import snapshot, stats_table, watch, workers_table

    broker = open_inspector(backend)
    broker.connect()
    try:
        if once:
            snap = snapshot(broker)
            if as_json:
                click.echo(json.dumps(snap, indent=2))
            else:
                Console().print(stats_table(snap["queues"]))
                if snap.get("hint"):
                    Console().print(f"[yellow]{snap['hint']}[/yellow]")
                if snap["workers"]:
                    Console().print(workers_table(snap["workers"]))
            return
        watch(broker, interval)
    except KeyboardInterrupt:
        pass
    finally:
        broker.close()
