"""Queue charts: the samples they are drawn from, the static plotly figures, the live chart.

* data (:mod:`.chartdata`): one sample per :class:`ttg_lib.run.Progress` (typed like
  ``samples.jsonl`` read back), sliding-window throughput, and markers for the fault and
  every worker death;
* static figures: the queue chart (the run's story: chunks left to compute, recomputations
  queued, points on disk; under it the broker's own figures, labelled as such: the lines are
  :mod:`.traces`'), the chunk timeline and the run comparison, drawn from a run record only;
* :class:`LiveChart`: a FigureWidget fed from the loop that drives a run, replaced by the
  static figure of the record when the run ends.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import report
from ..backends import DEFAULT_BACKEND
from ..record import load_json, read_jsonl
from ..recorded import Fault, Outage, Sample, load_events, load_samples
from ..summary import RunSummary, as_summary
from .chartdata import (
    Mark,
    final_sample,
    marks_from_events,
    sample_from_progress,
    series,
    series_label,
    t0_wall,
    throughput,
)
from .display import LiveFigure
from .traces import trace_specs, with_chunks_left

# -- static figures, drawn from a run record --------------------------------------------
COLORS = {"tasks": "#1f77b4", "results": "#2ca02c", "retry": "#ff7f0e", "dlq": "#d62728",
          "consumers": "#9467bd", "live_workers": "#7f7f7f", "throughput": "#17becf",
          "chunks_left": "#08306b", "verify_queued": "#e6550d", "rows": "#31a354"}

MARK_STYLE = {"fault": ("#d62728", "dash"), "killed": ("#d62728", "dash"),
              "died": ("#ff7f0e", "dot"), "replaced": ("#2ca02c", "dot"),
              "frozen": ("#9467bd", "dash"), "hung": ("#d62728", "dash")}


def _mark_layout(marks: list[Mark], outages: Iterable[Outage] = ()
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shapes, notes = [], []
    for i, m in enumerate(marks):
        color, dash = MARK_STYLE.get(m.kind, ("#444", "dot"))
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": m.t, "x1": m.t,
                       "y0": 0, "y1": 1, "line": {"color": color, "dash": dash, "width": 2}})
        notes.append({"x": m.t, "xref": "x", "yref": "paper", "y": 1.0 - 0.07 * (i % 4),
                      "text": html.escape(m.label), "showarrow": False, "xanchor": "left",
                      "font": {"color": color, "size": 11}, "bgcolor": "rgba(255,255,255,0.8)"})
    for o in outages:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": o.start_s,
                       "x1": o.end_s if o.end_s is not None else o.start_s, "y0": 0, "y1": 1,
                       "fillcolor": "rgba(214,39,40,0.12)", "line": {"width": 0}})
        notes.append({"x": o.start_s, "xref": "x", "yref": "paper", "y": 0.02,
                      "text": "broker down", "showarrow": False, "xanchor": "left",
                      "font": {"color": "#d62728", "size": 11}})
    return shapes, notes


def queue_figure(samples: list[Sample], marks: list[Mark], *,
                 backend: str = DEFAULT_BACKEND, title: str = "TTG queues",
                 outages: Iterable[Outage] = ()) -> Any:
    """The run's story (chunks left, recomputations queued, points on disk), the broker's
    own figures under it (queue depths, consumers, live workers), throughput at the bottom;
    the fault and every worker death marked across all three."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.42, 0.34, 0.24],
                        specs=[[{"secondary_y": True}], [{"secondary_y": True}], [{}]],
                        subplot_titles=("The run: chunks left, recomputations queued, "
                                        "points on disk",
                                        "The broker's own figures: messages per queue",
                                        "Throughput (params/s)"))
    for spec in trace_specs(backend):
        xs, ys = series(samples, spec.key)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=series_label(samples, spec.key, spec.name),
                                 mode="lines", line={"color": COLORS[spec.key], "width": 2,
                                                     "dash": "dot" if spec.dotted else "solid",
                                                     "shape": "hv" if spec.row == 2 and
                                                     spec.secondary else "linear"}),
                      row=spec.row, col=1, secondary_y=spec.secondary)
    tx, ty = throughput(samples)
    fig.add_trace(go.Scatter(x=tx, y=ty, name="params/s", mode="lines", fill="tozeroy",
                             line={"color": COLORS["throughput"]}), row=3, col=1)
    shapes, notes = _mark_layout(marks, outages)
    fig.update_layout(title={"text": title}, height=760, margin={"t": 80, "r": 20},
                      legend={"orientation": "h", "y": -0.08}, shapes=shapes,
                      annotations=list(fig.layout.annotations) + notes,
                      uirevision="ttg")
    for row, left, right in ((1, "chunks", "points"), (2, "messages", "workers")):
        fig.update_yaxes(title_text=left, rangemode="tozero", row=row, col=1, secondary_y=False)
        fig.update_yaxes(title_text=right, rangemode="tozero", row=row, col=1,
                         secondary_y=True, showgrid=False)
    fig.update_yaxes(title_text="params/s", rangemode="tozero", row=3, col=1)
    fig.update_xaxes(title_text="seconds since the first task", row=3, col=1)
    return fig


def figure_from_record(path: str | os.PathLike[str], title: str | None = None) -> Any:
    """The queue chart of a finished run, drawn only from its record."""
    path = Path(path)
    written = load_json(path / "summary.json", None)
    summary = as_summary(written) if written else None  # None: the run has not ended
    samples = with_chunks_left(load_samples(path), summary.chunks_total if summary else
                               (load_json(path / "config.json", {}) or {}).get("chunks_total"))
    final = final_sample(summary, samples, load_json(path / "queue_stats.json", None))
    if final is not None:
        samples = samples + [final]
    events = load_events(path)
    t0 = t0_wall(samples)
    marks = marks_from_events(events.workers, t0, events.fault) if t0 is not None else []
    backend = (summary.backend if summary else None) or \
        (load_json(path / "config.json", {}) or {}).get("backend") or DEFAULT_BACKEND
    return queue_figure(samples, marks, backend=backend,
                        title=title or (run_title(summary) if summary
                                        else f"{path.name} ({backend})"),
                        outages=events.outages)


def run_title(summary: RunSummary | Mapping[str, Any]) -> str:
    s = as_summary(summary)
    fault = s.fault
    what = (f"fault: {fault.killed_worker} killed at {fault.killed_at_s or 0:.1f}s"
            if fault else "no fault")
    return (f"{report.run_label(s) if s.backend else s.run_id} — {s.run_id}"
            f" ({s.scale or '?'}, {s.workers if s.workers is not None else '?'} workers,"
            f" {what})")


def timeline_figure(path: str | os.PathLike[str]) -> Any:
    """Which worker processed which chunk when (from chunks.jsonl); redeliveries in red."""
    import plotly.graph_objects as go

    path = Path(path)
    chunks = [c for c in read_jsonl(path / "chunks.jsonl") if not c.get("duplicate")]
    samples = load_samples(path)
    t0 = t0_wall(samples) or min((c["started_at"] for c in chunks), default=0.0)
    fig = go.Figure()
    for redelivered, color, name in ((False, "#1f77b4", "chunk"),
                                     (True, "#d62728", "redelivered chunk")):
        rows = [c for c in chunks if bool(c.get("redelivered")) == redelivered]
        if not rows:
            continue
        fig.add_trace(go.Bar(
            y=[c["worker"] for c in rows], x=[max(c["finished_at"] - c["started_at"], 1e-3)
                                              for c in rows],
            base=[round(c["started_at"] - t0, 3) for c in rows], orientation="h", name=name,
            marker={"color": color, "line": {"width": 0.5, "color": "white"}},
            customdata=[[c["chunk_id"], c["attempt"]] for c in rows],
            hovertemplate="chunk %{customdata[0]} (attempt %{customdata[1]})<br>"
                          "%{base:.2f}s + %{x:.2f}s<extra></extra>"))
    events = load_events(path)
    if samples and t0:
        shapes, notes = _mark_layout(marks_from_events(events.workers, t0, events.fault))
        fig.update_layout(shapes=shapes, annotations=notes)
    workers = sorted({c["worker"] for c in chunks}, key=lambda w: (len(w), w))
    fig.update_layout(title={"text": "Chunk timeline per worker"}, barmode="overlay",
                      height=max(260, 60 * len(workers) + 140),
                      yaxis={"categoryorder": "array", "categoryarray": workers[::-1]},
                      xaxis={"title": {"text": "seconds since the first task"}},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def comparison_figure(summaries: list[RunSummary | Mapping[str, Any]]) -> Any:
    """Runtime and throughput of every run, grouped by backend and fault, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Runtime (s)", "Throughput (params/s)"))
    palette = {"Redis (no fault)": "#d62728", "RabbitMQ (no fault)": "#ff7f0e",
               "Redis (fault)": "#8c1c13", "RabbitMQ (fault)": "#a65c00"}
    for label, group in report.group_runs(summaries).items():
        names = [f"{label} #{i + 1}" if len(group) > 1 else label for i in range(len(group))]
        for col, ys in ((1, [s.runtime_s for s in group]),
                        (2, [s.throughput_params_s for s in group])):
            fig.add_trace(go.Bar(x=names, y=ys, name=label,
                                 legendgroup=label, showlegend=col == 1,
                                 marker={"color": palette.get(label, "#1f77b4")},
                                 customdata=[s.run_id for s in group],
                                 hovertemplate="%{customdata}<br>%{y}<extra></extra>"),
                          row=1, col=col)
    fig.update_layout(title={"text": "Runs side by side"}, height=420, barmode="group",
                      legend={"orientation": "h", "y": -0.3})
    return fig


# -- the live chart ------------------------------------------------------------------
SAMPLE_S = 0.5
REDRAW_S = 0.5


class LiveChart(LiveFigure):
    """A FigureWidget fed from the loop that drives the run; ends as a static figure.

    Call :meth:`observe` after each ``run.step()``; it records a sample every
    ``SAMPLE_S`` seconds and redraws at most every ``REDRAW_S``, so the chart never
    slows the run down. :meth:`finish` swaps the widget for the static figure of the
    record (the only thing a saved notebook or an HTML export can keep).
    """

    def __init__(self, backend: str = DEFAULT_BACKEND, title: str = "TTG queues (live)",
                 live: bool = True):
        self.backend = backend
        self.samples: list[Sample] = []
        self.marks: list[Mark] = []
        self.t0_wall: float | None = None
        self._seen_events = 0
        self._last_redraw = 0.0
        self._dirty = False
        self._fault: Fault | None = None
        self._open(queue_figure([], [], backend=backend, title=title), live)

    def observe(self, progress: Any, run: Any = None, force: bool = False) -> None:
        if run is not None and self.t0_wall is None and run.times.t0 is not None:
            self.t0_wall = time.time() - run.elapsed_s
        if run is not None and getattr(run, "fault", None) and self._fault is None:
            self._fault = Fault.from_dict(run.fault)
        if self.t0_wall is None:
            return  # workers still starting: the time axis begins at the first task
        if force or not self.samples or progress.elapsed_s - self.samples[-1].t >= SAMPLE_S:
            self.samples.append(sample_from_progress(progress))
            self._dirty = True
        if len(progress.events) > self._seen_events:
            self.marks = marks_from_events(progress.events, self.t0_wall, self._fault)
            self._seen_events = len(progress.events)
            self._dirty = True
        now = time.monotonic()
        if self._dirty and (force or now - self._last_redraw >= REDRAW_S):
            self.redraw()
            self._last_redraw = now

    def redraw(self) -> None:
        self._dirty = False
        if self.widget is None:
            return
        fig = self.widget
        shapes, notes = _mark_layout(self.marks)
        titles = [a for a in fig.layout.annotations if a.yref == "paper" and a.xref == "paper"]
        with fig.batch_update():
            for i, spec in enumerate(trace_specs(self.backend)):
                xs, ys = series(self.samples, spec.key)
                fig.data[i].x, fig.data[i].y = xs, ys
                fig.data[i].name = series_label(self.samples, spec.key, spec.name)
            tx, ty = throughput(self.samples)
            fig.data[-1].x, fig.data[-1].y = tx, ty
            fig.layout.shapes = shapes
            fig.layout.annotations = list(titles) + notes

    @property
    def points(self) -> int:
        return len(self.samples)

    def finish(self, path: str | os.PathLike[str] | None = None) -> Any:
        """Replace the live widget by the static figure of the record (or of the samples)."""
        fig = (figure_from_record(path) if path is not None and
               (Path(path) / "samples.jsonl").exists()
               else queue_figure(self.samples, self.marks, backend=self.backend))
        self.figure = fig
        return self._settle(fig)
