"""The milestone notebook: run the backend x fault matrix, pick runs, render one run."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from .. import report
from ..backends import backend_names
from ..config import ConfigError
from ..paths import resolve_output_dir
from ..record import list_summaries
from ..summary import RunSummary, as_summary
from .charts import figure_from_record
from .display import show, show_html
from .live import run_quiet
from .params import build_config
from .records import Summary, load_run
from .tables import milestone_table, queue_stats_table

MATRIX = tuple((b, fault) for fault in (False, True) for b in backend_names(runnable=True))


def run_matrix(*, scale: str | None = None, repeats: int = 1, workers: int = 3,
               kill_at: float = 0.3, output_dir: str | None = None,
               backends: Iterable[str] = backend_names(runnable=True), **overrides: Any
               ) -> list[RunSummary]:
    """The milestone's four runs (each broker × no fault/fault), ``repeats`` times each."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError("repeats", repeats, "a whole number of at least 1")
    chosen = [b.strip() for b in (backends.split(",") if isinstance(backends, str)
                                  else backends)]
    configs = [build_config(backend=b, scale=scale, workers=workers, fault_demo=fault,
                            kill_at=kill_at, output_dir=output_dir, **overrides)
               for _ in range(repeats) for b, fault in MATRIX if b in chosen]
    summaries = []
    for i, cfg in enumerate(configs, 1):
        label = report.run_label({"backend": cfg.backend, "fault": cfg.fault_demo})
        summaries.append(run_quiet(cfg, f"[{i}/{len(configs)}] {label}"))
    return summaries


def select_runs(*, run_ids: str | Iterable[str] | None = None, output_dir: str | None = None,
                scale: str | None = None, repeats: int = 0) -> list[RunSummary]:
    """Existing runs to render: the given ids, else the newest ``repeats`` (0 = all) of each
    milestone group at ``scale`` (default: the scale of the newest run)."""
    out = resolve_output_dir(output_dir)
    if run_ids:
        ids = [r.strip() for r in (run_ids.split(",") if isinstance(run_ids, str) else run_ids)
               if r.strip()]
        return [load_run(r, out) for r in ids]
    runs = [s for s in list_summaries(out) if s.chunks_total]
    if not runs:
        return []
    scale = scale or runs[-1].scale
    runs = [s for s in runs if s.scale == scale]
    chosen: list[RunSummary] = []
    for group in report.group_runs(runs).values():
        chosen += group[-repeats:] if repeats else group
    return sorted(chosen, key=lambda s: s.started_at or "")


def render_run(summary: Summary, *, heading: str | None = None,
               chart: bool = True) -> None:
    """Target/Observed, queue stats and (optionally) the queue chart of one run."""
    if heading:
        show_html(f"<h3>{html.escape(heading)}</h3>")
    show_html(milestone_table(summary))
    show_html(queue_stats_table(summary))
    if chart:
        show(figure_from_record(as_summary(summary).record_dir))
