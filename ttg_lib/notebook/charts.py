"""Queue charts: the samples they are drawn from, the static plotly figures, the live chart.

* data: one sample per :class:`ttg_lib.run.Progress` (shaped like ``samples.jsonl``),
  sliding-window throughput, and markers for the fault and every worker death;
* static figures: the queue chart (the run's story: chunks left to compute, recomputations
  queued, points on disk; under it the broker's own figures, labelled as such), the chunk
  timeline and the run comparison, drawn from a run record only;
* :class:`LiveChart`: a FigureWidget fed from the loop that drives a run, replaced by the
  static figure of the record when the run ends.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import report
from ..backends import DEFAULT_BACKEND
from ..record import load_json, read_jsonl
from ..sampling import sample_row
from .display import figure_bundle, in_ipython, ipython_display, release_widget, show
from .traces import series, series_label, trace_specs, with_chunks_left

# -- chart data: samples, throughput, event markers ------------------------------------
THROUGHPUT_WINDOW_S = 2.0


def sample_from_progress(progress: Any) -> dict[str, Any]:
    """One chart sample from a :class:`ttg_lib.run.Progress`, shaped like samples.jsonl."""
    return sample_row(progress)


def throughput(samples: list[dict[str, Any]], window_s: float = THROUGHPUT_WINDOW_S
               ) -> tuple[list[float], list[float]]:
    """Params per second over a sliding window, one value per sample."""
    xs, ys = [], []
    j = 0
    for i, s in enumerate(samples):
        while j < i and s["t"] - samples[j]["t"] > window_s:
            j += 1
        dt = s["t"] - samples[j]["t"]
        xs.append(s["t"])
        ys.append(round((s["params_done"] - samples[j]["params_done"]) / dt, 2) if dt > 0
                  else 0.0)
    return xs, ys


def marks_from_events(events: list[dict[str, Any]], t0_wall: float,
                      fault: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Vertical markers on the run's time axis: the fault injection and every worker
    death and replacement (initial starts and the final stops are not marked)."""
    marks = []
    fault_worker = (fault or {}).get("killed_worker")
    for e in events:
        kind = e["event"]
        if kind not in ("killed", "died", "replaced", "frozen", "hung"):
            continue
        t = round(e["t"] - t0_wall, 3)
        if kind == "killed" and e["worker"] == fault_worker:
            label, kind = f"fault: {e['worker']} killed", "fault"
            fault_worker = None
        elif kind == "replaced":
            label = f"{e['worker']} {e.get('detail', '').split(', ')[-1]}".strip()
        else:
            label = f"{e['worker']} {kind}"
        marks.append({"t": t, "kind": kind, "label": label})
    return marks


def _t0_wall(samples: list[dict[str, Any]]) -> float | None:
    for s in samples:
        if "wall" in s:
            return s["wall"] - s["t"]
    return None


def _final_sample(summary: dict[str, Any], samples: list[dict[str, Any]],
                  stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The end state, when the last periodic sample came before the last result: queue
    depths from queue_stats.json, progress from summary.json, at the last result's time."""
    if not samples or not stats or summary.get("runtime_s") is None:
        return None
    last = samples[-1]
    if last.get("completed", 0) >= summary.get("chunks_completed", 0):
        return None
    row = {**last, "t": max(last["t"], summary["runtime_s"]),
           "completed": summary["chunks_completed"], "failed": summary.get("chunks_failed", 0),
           "params_done": summary.get("params_verified", last.get("params_done", 0))}
    if "chunks_left" in last:  # the story's end: from the summary too
        row["chunks_left"] = max(0, summary.get("chunks_total", 0) - row["completed"]
                                 - row["failed"])
        row["rows"] = summary.get("results_rows", last.get("rows"))
        if summary.get("state") == "done":
            row["verify_queued"] = 0
    for role in ("tasks", "results", "retry", "dlq"):
        if role in stats:  # drawn like the samples before it: totals, or ready counts
            row[role] = stats[role]["messages"] if last.get(role) is not None else None
            row[f"{role}_ready"] = stats[role]["ready"]
    row.pop("wall", None)
    return row


# -- static figures, drawn from a run record --------------------------------------------
COLORS = {"tasks": "#1f77b4", "results": "#2ca02c", "retry": "#ff7f0e", "dlq": "#d62728",
          "consumers": "#9467bd", "live_workers": "#7f7f7f", "throughput": "#17becf",
          "chunks_left": "#08306b", "verify_queued": "#e6550d", "rows": "#31a354"}

MARK_STYLE = {"fault": ("#d62728", "dash"), "killed": ("#d62728", "dash"),
              "died": ("#ff7f0e", "dot"), "replaced": ("#2ca02c", "dot"),
              "frozen": ("#9467bd", "dash"), "hung": ("#d62728", "dash")}

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
                 backend: str = DEFAULT_BACKEND, title: str = "TTG queues",
                 outages: Iterable[dict[str, Any]] = ()) -> Any:
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
    fig.update_yaxes(title_text="chunks", rangemode="tozero", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="points", rangemode="tozero", row=1, col=1, secondary_y=True,
                     showgrid=False)
    fig.update_yaxes(title_text="messages", rangemode="tozero", row=2, col=1,
                     secondary_y=False)
    fig.update_yaxes(title_text="workers", rangemode="tozero", row=2, col=1, secondary_y=True,
                     showgrid=False)
    fig.update_yaxes(title_text="params/s", rangemode="tozero", row=3, col=1)
    fig.update_xaxes(title_text="seconds since the first task", row=3, col=1)
    return fig


def figure_from_record(path: str | os.PathLike[str], title: str | None = None) -> Any:
    """The queue chart of a finished run, drawn only from its record."""
    path = Path(path)
    summary = load_json(path / "summary.json", {})
    config = load_json(path / "config.json", {})
    samples = with_chunks_left(read_jsonl(path / "samples.jsonl"),
                               summary.get("chunks_total") or config.get("chunks_total"))
    final = _final_sample(summary, samples, load_json(path / "queue_stats.json", None))
    if final is not None:
        samples = samples + [final]
    events = load_json(path / "events.json", {})
    t0 = _t0_wall(samples)
    marks = (marks_from_events(events.get("workers", []), t0, events.get("fault"))
             if t0 is not None else [])
    backend = summary.get("backend") or config.get("backend", DEFAULT_BACKEND)
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
    events = load_json(path / "events.json", {})
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


# -- the live chart ------------------------------------------------------------------
SAMPLE_S = 0.5
REDRAW_S = 0.5


class LiveChart:
    """A FigureWidget fed from the loop that drives the run; ends as a static figure.

    Call :meth:`observe` after each ``run.step()``; it records a sample every
    ``SAMPLE_S`` seconds and redraws at most every ``REDRAW_S``, so the chart never
    slows the run down. :meth:`finish` swaps the widget for the static figure of the
    record (the only thing a saved notebook or an HTML export can keep).
    """

    def __init__(self, backend: str = DEFAULT_BACKEND, title: str = "TTG queues (live)",
                 live: bool = True):
        self.backend = backend
        self.samples: list[dict[str, Any]] = []
        self.marks: list[dict[str, Any]] = []
        self.t0_wall: float | None = None
        self._seen_events = 0
        self._last_redraw = 0.0
        self._dirty = False
        self._fault: dict[str, Any] | None = None
        self.figure = queue_figure([], [], backend=backend, title=title)
        self.widget = None
        self.handle = None
        if live:
            try:
                import plotly.graph_objects as go

                self.widget = go.FigureWidget(self.figure)
            except (ImportError, ValueError):  # no anywidget/ipywidgets: static only
                self.widget = None

    def display(self) -> LiveChart:
        if in_ipython():
            target = self.widget if self.widget is not None else figure_bundle(self.figure)
            self.handle = ipython_display(target, display_id=True, raw=self.widget is None)
        return self

    def observe(self, progress: Any, run: Any = None, force: bool = False) -> None:
        if run is not None and self.t0_wall is None and run.times.t0 is not None:
            self.t0_wall = time.time() - run.elapsed_s
        if run is not None and getattr(run, "fault", None) and self._fault is None:
            self._fault = run.fault
        if self.t0_wall is None:
            return  # workers still starting: the time axis begins at the first task
        if force or not self.samples or progress.elapsed_s - self.samples[-1]["t"] >= SAMPLE_S:
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
        if self.handle is not None:
            self.handle.update(figure_bundle(fig), raw=True)
        elif in_ipython():
            show(fig)
        if self.widget is not None:
            release_widget(self.widget)
        return fig
