"""Driving a run from a notebook cell: with the live chart, or with one status line."""

from __future__ import annotations

import html
import time
from typing import Any

from ..config import RunConfig
from .charts import REDRAW_S, LiveChart
from .display import html_handle, strip_tags


def status_line(p: Any, cfg: RunConfig) -> str:
    """One HTML line of a run's progress (the live cell and the supervisor panel)."""
    rate = p.params_done / p.elapsed_s if p.elapsed_s else 0.0
    return (f"<b>{html.escape(cfg.run_id)}</b>: {p.state}, "
            f"{p.chunks_completed + p.chunks_failed}/{p.chunks_total} chunks, "
            f"{p.elapsed_s:.1f}s, {rate:,.0f} params/s, {p.live_workers} workers live")


def run_live(config: RunConfig, *, chart: bool = True, step_s: float = 0.1,
             run: Any = None) -> dict[str, Any]:
    """Do a whole run from a notebook cell, drawing the live chart as it goes.

    The loop runs in the cell (not a thread), so widget updates reach the front end
    under every ipykernel; Kernel > Interrupt stops the run cleanly and still writes
    its record. Returns the run summary. ``run``: a Run built already (the Python API's,
    with its function).
    """
    from ..run import Run

    live = LiveChart(config.backend, title=f"TTG queues, live: {config.run_id}") if chart \
        else None
    status = html_handle(f"<b>{html.escape(config.run_id)}</b>: starting {config.workers} "
                          f"workers on {config.backend}…")
    if live is not None:
        live.display()
    try:
        with run or Run(config) as run:
            run.start()
            last = 0.0
            try:
                while not run.done:
                    p = run.step(step_s)
                    if live is not None:
                        live.observe(p, run)
                    if status is not None and time.monotonic() - last >= REDRAW_S:
                        status.update({"text/html": status_line(p, config)}, raw=True)
                        last = time.monotonic()
            except KeyboardInterrupt:
                run.stop()
            final = run.progress()
            summary = run.finish()
            if status is not None:
                status.update({"text/html": status_line(final, config)}, raw=True)
    except BaseException:
        if live is not None:  # a failed run too leaves a static chart, not the live widget
            live.finish()
        raise
    if live is not None:
        live.finish(summary["record_dir"])
    return summary


def run_quiet(config: RunConfig, label: str = "") -> dict[str, Any]:
    """A run with one updating status line (the milestone matrix)."""
    from ..run import Run

    status = html_handle(f"{html.escape(label)} starting…")
    last = 0.0
    with Run(config) as run:
        run.start()
        while not run.done:
            p = run.step(0.1)
            if status is not None and time.monotonic() - last > 0.5:
                status.update({"text/html": f"{html.escape(label)} " + status_line(p, config)},
                              raw=True)
                last = time.monotonic()
        summary = run.finish()
    line = (f"{html.escape(label)} <b>{summary['run_id']}</b>: {summary['chunks_completed']}/"
            f"{summary['chunks_total']} chunks in {summary.get('runtime_s')}s — "
            f"{'verified' if summary['ok'] else 'FAILED'}")
    if status is not None:
        status.update({"text/html": line}, raw=True)
    else:
        print(strip_tags(line))
    return summary
