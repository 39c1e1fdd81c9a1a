"""Plotly figures: the queue chart, the chunk timeline and the run comparison."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import report
from ..record import read_jsonl
from .chart_data import (
    _final_sample,
    _series,
    _t0_wall,
    marks_from_events,
    series_label,
    throughput,
)
from .records import _load_json

QUEUE_NAMES = {
    "redis": {"tasks": "ttg:tasks", "results": "ttg:results", "retry": "ttg:tasks:retry",
              "dlq": "ttg:tasks:dlq"},
    "rabbitmq": {"tasks": "ttg.tasks", "results": "ttg.results", "retry": "ttg.tasks.retry",
                 "dlq": "ttg.tasks.dlq"},
}

COLORS = {"tasks": "#1f77b4", "results": "#2ca02c", "retry": "#ff7f0e", "dlq": "#d62728",
          "consumers": "#9467bd", "live_workers": "#7f7f7f", "throughput": "#17becf"}

MARK_STYLE = {"fault": ("#d62728", "dash"), "killed": ("#d62728", "dash"),
              "died": ("#ff7f0e", "dot"), "replaced": ("#2ca02c", "dot"),
              "frozen": ("#9467bd", "dash"), "hung": ("#d62728", "dash")}


def _trace_specs(backend: str) -> list[tuple[str, str, bool]]:
    names = QUEUE_NAMES.get(backend, QUEUE_NAMES["rabbitmq"])
    return [("tasks", names["tasks"], False), ("results", names["results"], False),
            ("retry", names["retry"], False), ("dlq", names["dlq"], False),
            ("consumers", "consumers", True), ("live_workers", "live workers", True)]


def _mark_layout(marks: list[dict[str, Any]], outages: Iterable[dict[str, Any]] = ()
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shapes, notes = [], []
    for i, m in enumerate(marks):
        color, dash = MARK_STYLE.get(m["kind"], ("#444", "dot"))
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": m["t"], "x1": m["t"],
                       "y0": 0, "y1": 1, "line": {"color": color, "dash": dash, "width": 2}})
        notes.append({"x": m["t"], "xref": "x", "yref": "paper", "y": 1.0 - 0.07 * (i % 4),
                      "text": html.escape(m["label"]), "showarrow": False, "xanchor": "left",
                      "font": {"color": color, "size": 11}, "bgcolor": "rgba(255,255,255,0.8)"})
    for o in outages:
        end = o.get("end_s")
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": o["start_s"],
                       "x1": end if end is not None else o["start_s"], "y0": 0, "y1": 1,
                       "fillcolor": "rgba(214,39,40,0.12)", "line": {"width": 0}})
        notes.append({"x": o["start_s"], "xref": "x", "yref": "paper", "y": 0.02,
                      "text": "broker down", "showarrow": False, "xanchor": "left",
                      "font": {"color": "#d62728", "size": 11}})
    return shapes, notes


def queue_figure(samples: list[dict[str, Any]], marks: list[dict[str, Any]], *,
                 backend: str = "rabbitmq", title: str = "TTG queues",
                 outages: Iterable[dict[str, Any]] = ()) -> Any:
    """Queue depths, consumers and live workers over time, throughput in a second panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        row_heights=[0.65, 0.35], specs=[[{"secondary_y": True}], [{}]],
                        subplot_titles=("Queue depth (messages) and workers",
                                        "Throughput (params/s)"))
    for key, name, secondary in _trace_specs(backend):
        xs, ys = _series(samples, key)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=series_label(samples, key, name), mode="lines",
                                 line={"color": COLORS[key], "width": 2,
                                       "dash": "dot" if secondary else "solid",
                                       "shape": "hv" if secondary else "linear"}),
                      row=1, col=1, secondary_y=secondary)
    tx, ty = throughput(samples)
    fig.add_trace(go.Scatter(x=tx, y=ty, name="params/s", mode="lines", fill="tozeroy",
                             line={"color": COLORS["throughput"]}), row=2, col=1)
    shapes, notes = _mark_layout(marks, outages)
    fig.update_layout(title={"text": title}, height=560, margin={"t": 80, "r": 20},
                      legend={"orientation": "h", "y": -0.12}, shapes=shapes,
                      annotations=list(fig.layout.annotations) + notes,
                      uirevision="ttg")
    fig.update_yaxes(title_text="messages", rangemode="tozero", row=1, col=1,
                     secondary_y=False)
    fig.update_yaxes(title_text="workers", rangemode="tozero", row=1, col=1, secondary_y=True,
                     showgrid=False)
    fig.update_yaxes(title_text="params/s", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="seconds since the first task", row=2, col=1)
    return fig


def figure_from_record(path: str | os.PathLike[str], title: str | None = None) -> Any:
    """The queue chart of a finished run, drawn only from its record."""
    path = Path(path)
    summary = _load_json(path / "summary.json", {})
    config = _load_json(path / "config.json", {})
    samples = read_jsonl(path / "samples.jsonl")
    final = _final_sample(summary, samples, _load_json(path / "queue_stats.json", None))
    if final is not None:
        samples = samples + [final]
    events = _load_json(path / "events.json", {})
    t0 = _t0_wall(samples)
    marks = (marks_from_events(events.get("workers", []), t0, events.get("fault"))
             if t0 is not None else [])
    backend = summary.get("backend") or config.get("backend", "rabbitmq")
    return queue_figure(samples, marks, backend=backend,
                        title=title or run_title(summary or {"run_id": path.name,
                                                             "backend": backend}),
                        outages=events.get("broker_outages") or [])


def run_title(s: dict[str, Any]) -> str:
    fault = s.get("fault")
    what = (f"fault: {fault.get('killed_worker')} killed at "
            f"{fault.get('killed_at_s', 0):.1f}s") if fault else "no fault"
    return (f"{report.run_label(s) if 'backend' in s else s.get('run_id')} — {s.get('run_id')}"
            f" ({s.get('scale', '?')}, {s.get('workers', '?')} workers, {what})")


def timeline_figure(path: str | os.PathLike[str]) -> Any:
    """Which worker processed which chunk when (from chunks.jsonl); redeliveries in red."""
    import plotly.graph_objects as go

    path = Path(path)
    chunks = [c for c in read_jsonl(path / "chunks.jsonl") if not c.get("duplicate")]
    samples = read_jsonl(path / "samples.jsonl")
    t0 = _t0_wall(samples) or min((c["started_at"] for c in chunks), default=0.0)
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
    events = _load_json(path / "events.json", {})
    if samples and t0:
        shapes, notes = _mark_layout(marks_from_events(events.get("workers", []), t0,
                                                       events.get("fault")))
        fig.update_layout(shapes=shapes, annotations=notes)
    workers = sorted({c["worker"] for c in chunks}, key=lambda w: (len(w), w))
    fig.update_layout(title={"text": "Chunk timeline per worker"}, barmode="overlay",
                      height=max(260, 60 * len(workers) + 140),
                      yaxis={"categoryorder": "array", "categoryarray": workers[::-1]},
                      xaxis={"title": {"text": "seconds since the first task"}},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def comparison_figure(summaries: list[dict[str, Any]]) -> Any:
    """Runtime and throughput of every run, grouped by backend and fault, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Runtime (s)", "Throughput (params/s)"))
    palette = {"Redis (no fault)": "#d62728", "RabbitMQ (no fault)": "#ff7f0e",
               "Redis (fault)": "#8c1c13", "RabbitMQ (fault)": "#a65c00"}
    for label, group in report.group_runs(summaries).items():
        names = [f"{label} #{i + 1}" if len(group) > 1 else label for i in range(len(group))]
        for col, key in ((1, "runtime_s"), (2, "throughput_params_s")):
            fig.add_trace(go.Bar(x=names, y=[s.get(key) for s in group], name=label,
                                 legendgroup=label, showlegend=col == 1,
                                 marker={"color": palette.get(label, "#1f77b4")},
                                 customdata=[s["run_id"] for s in group],
                                 hovertemplate="%{customdata}<br>%{y}<extra></extra>"),
                          row=1, col=col)
    fig.update_layout(title={"text": "Runs side by side"}, height=420, barmode="group",
                      legend={"orientation": "h", "y": -0.3})
    return fig
