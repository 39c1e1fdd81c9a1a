"""Driving a run from a notebook cell: with the live chart, or with one status line."""

from __future__ import annotations

import html
import time
from typing import Any

from ..config import RunConfig
from ..summary import RunSummary
from .charts import REDRAW_S, LiveChart
from .display import html_handle, strip_tags
from .landscape import LiveResults


def status_line(p: Any, cfg: RunConfig) -> str:
    """One HTML line of a run's progress (the live cell and the supervisor panel)."""
    rate = p.params_done / p.elapsed_s if p.elapsed_s else 0.0
    return (f"<b>{html.escape(cfg.run_id)}</b>: {p.state}, "
            f"{p.chunks_completed + p.chunks_failed}/{p.chunks_total} chunks, "
            f"{p.elapsed_s:.1f}s, {rate:,.0f} params/s, {p.live_workers} workers live"
            + (f", {html.escape(p.eta.label())}" if getattr(p, "eta", None) else ""))


def run_live(config: RunConfig, *, chart: bool = True, results: bool = True,
             step_s: float = 0.1, run: Any = None) -> RunSummary:
    """Do a whole run from a notebook cell, drawing the live charts as it goes: the queues
    (``chart``) and the Results chart filling in (``results``, :mod:`.landscape`).

    The loop runs in the cell (not a thread), so widget updates reach the front end
    under every ipykernel; Kernel > Interrupt stops the run cleanly and still writes
    its record. Returns the run's summary, typed. ``run``: a Run built already (the Python API's,
    with its function).
    """
    from ..run import Run, execute

    live = LiveChart(config.backend, title=f"TTG queues, live: {config.run_id}") if chart \
        else None
    status = html_handle(f"<b>{html.escape(config.run_id)}</b>: starting {config.workers} "
                          f"workers on {config.backend}…")
    if live is not None:
        live.display()
    landscape = LiveResults(config.record_dir, config.space, config.total_params).display() \
        if results else None
    started: list[Run] = []
    last = 0.0

    def show(p: Any) -> None:
        nonlocal last
        if live is not None:
            live.observe(p, started[0])
        if landscape is not None:
            landscape.poll()
        if status is not None and (time.monotonic() - last >= REDRAW_S or p.state.ended):
            status.update({"text/html": status_line(p, config)}, raw=True)
            last = time.monotonic()

    try:
        summary = execute(config, show, step_s=step_s, on_start=started.append,
                          stop_on_interrupt=True, run=run)
    except BaseException:
        if live is not None:  # a failed run too leaves a static chart, not the live widget
            live.finish()
        if landscape is not None:
            landscape.finish()
        raise
    if live is not None:
        live.finish(summary["record_dir"])
    if landscape is not None:  # the static chart of the finished table, as a report has it
        landscape.finish(summary["record_dir"])
    return RunSummary.from_dict(summary)


def run_quiet(config: RunConfig, label: str = "") -> RunSummary:
    """A run with one updating status line (the milestone matrix)."""
    from ..run import execute

    status = html_handle(f"{html.escape(label)} starting…")
    last = 0.0

    def show(p: Any) -> None:
        nonlocal last
        if status is not None and time.monotonic() - last > 0.5:
            status.update({"text/html": f"{html.escape(label)} " + status_line(p, config)},
                          raw=True)
            last = time.monotonic()

    summary = RunSummary.from_dict(execute(config, show))
    line = (f"{html.escape(label)} <b>{summary.run_id}</b>: {summary.chunks_completed}/"
            f"{summary.chunks_total} chunks in {summary.runtime_s}s — "
            f"{'verified' if summary.ok else 'FAILED'}")
    if status is not None:
        status.update({"text/html": line}, raw=True)
    else:
        print(strip_tags(line))
    return summary
