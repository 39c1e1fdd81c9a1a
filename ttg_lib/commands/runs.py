"""`ttg runs`: the recorded runs, one line each."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .base import command


@command("runs")
@click.option("--output-dir", default="outputs", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(output_dir: str, as_json: bool) -> None:
    """List recorded runs."""
    from ..record import list_runs

    summaries = list_runs(output_dir)
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    table = Table(title=f"Runs in {output_dir}/runs")
    for col in ("run_id", "backend", "scale", "fault", "runtime", "efficiency", "verdict",
                "fingerprint", "reused"):
        table.add_column(col)
    for s in summaries:
        eff = s.get("efficiency")
        table.add_row(s["run_id"], s["backend"], s["scale"], "yes" if s.get("fault") else "no",
                      f"{s['runtime_s']}s" if s.get("runtime_s") else "n/a",
                      f"{eff:.1%}" if eff else "n/a", "ok" if s.get("ok") else "FAILED",
                      (s.get("fingerprint") or "")[4:16] or "n/a", reused_text(s))
    Console().print(table)


def reused_text(summary: dict[str, Any]) -> str:
    """``20 from RUN``, per source; rejected sources named; ``-`` when nothing was."""
    reuse = summary.get("reuse") or {}
    parts = [f"{n:,} from {run}" for run, n in (reuse.get("sources") or {}).items()]
    parts += [f"{run} rejected" for run in reuse.get("rejected") or {}]
    return "; ".join(parts) or "-"
