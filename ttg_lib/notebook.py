"""Notebook helpers: live and static charts, milestone tables, the supervisor control panel.

The notebooks in ``notebooks/`` stay thin: every cell calls one function here, and
everything they draw comes from :class:`ttg_lib.run.Run` progress or a run record
(``outputs/runs/<run_id>/``), never from numbers typed into a notebook.

Charts follow three rules learned the hard way:

* a live :class:`plotly.graph_objects.FigureWidget` (an anywidget widget under
  plotly >= 6) is updated from the loop that drives :meth:`Run.step` in the cell itself,
  never from a background thread (ipykernel 7 drops widget output sent from threads);
* widget updates are never saved in a notebook, so when the run ends the same output
  is replaced by a static, fully drawn figure read from the run record, which is what
  papermill, nbconvert and a saved notebook keep;
* static figures carry their own offline copy of plotly.js (once per kernel, i.e. once
  per exported page) and no CDN or MathJax reference, so HTML reports work offline.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import report
from .config import ConfigError, RunConfig
from .record import list_runs, load_summary, read_jsonl

SCALE_ENV = "TTG_NOTEBOOK_SCALE"
OUTPUT_ENV = "TTG_NOTEBOOK_OUTPUT_DIR"
SAMPLE_S = 0.5
REDRAW_S = 0.5
THROUGHPUT_WINDOW_S = 2.0

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
              "frozen": ("#9467bd", "dash")}


# -- where things are ------------------------------------------------------
def repo_root() -> Path:
    """The checkout holding ttg_lib (editable install), else the working directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def resolve_output_dir(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """Absolute output directory: None means $TTG_NOTEBOOK_OUTPUT_DIR or ``outputs``; a
    relative path is taken from the repository root, so a notebook gives the same answer
    whether papermill runs it from the root or from inside notebooks/."""
    chosen = output_dir or os.environ.get(OUTPUT_ENV) or "outputs"
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else repo_root() / path


def notebook_scale(scale: str | None = None) -> str:
    """An explicit parameter wins; otherwise $TTG_NOTEBOOK_SCALE (CI uses ``tiny``);
    otherwise the milestone's ``small``."""
    return scale or os.environ.get(SCALE_ENV) or "small"


def build_config(**params: Any) -> RunConfig:
    """RunConfig from notebook parameters (None = not given); raises ConfigError."""
    params = dict(params)
    params["scale"] = notebook_scale(params.get("scale"))
    params["output_dir"] = str(resolve_output_dir(params.get("output_dir")))
    params.setdefault("monitor", "none")
    return RunConfig.build(**params)


def describe(config: RunConfig) -> str:
    """One line about the run about to start (the notebooks print it; tests read the id)."""
    fault = f", fault at {config.kill_at:.0%}" if config.fault_demo else ""
    return (f"run {config.run_id}: {config.backend}, {config.scale} ({config.total_params:,} "
            f"params in {config.chunks_total} chunks of {config.chunk_size}, "
            f"{config.work_ms:g} ms each), {config.workers} workers{fault}\n"
            f"record: {config.record_dir}")


def setup(renderer: str = "plotly_mimetype+notebook") -> None:
    """Plotly defaults for notebooks: a renderer nbconvert keeps (not plain plotly_mimetype)."""
    import plotly.io as pio

    pio.renderers.default = renderer
    pio.templates.default = "plotly_white"


# -- displaying ------------------------------------------------------------
def _display(obj: Any, **kwargs: Any) -> Any:
    from IPython.display import display

    return display(obj, **kwargs)


def in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


_plotlyjs_sent = False


def figure_bundle(fig: Any, include_plotlyjs: bool | None = None) -> dict[str, Any]:
    """A display bundle JupyterLab draws with its plotly renderer and nbconvert draws from
    the text/html part: plotly.js inline (first figure of the kernel only), no CDN."""
    global _plotlyjs_sent
    import plotly.io as pio

    if include_plotlyjs is None:
        include_plotlyjs = not _plotlyjs_sent
    _plotlyjs_sent = _plotlyjs_sent or include_plotlyjs
    div = pio.to_html(fig, include_plotlyjs=include_plotlyjs, include_mathjax=False,
                      full_html=False, div_id=f"ttg-{uuid.uuid4().hex[:10]}",
                      default_width="100%", default_height=fig.layout.height or 560,
                      validate=False, config={"displaylogo": False})
    return {"application/vnd.plotly.v1+json": fig.to_plotly_json(), "text/html": div,
            "text/plain": f"<plotly figure: {fig.layout.title.text or 'chart'}>"}


def show(fig: Any) -> None:
    """Display a static figure (see :func:`figure_bundle`)."""
    if not in_ipython():
        fig.show()
        return
    _display(figure_bundle(fig), raw=True)


def show_html(markup: str) -> None:
    """Display HTML (tables, verdicts); plain text outside IPython."""
    if not in_ipython():
        print(_strip_tags(markup))
        return
    _display({"text/html": markup, "text/plain": _strip_tags(markup)}, raw=True)


def _html_handle(markup: str) -> Any:
    """An updatable HTML output (status lines); None outside IPython."""
    if not in_ipython():
        return None
    return _display({"text/html": markup, "text/plain": _strip_tags(markup)}, raw=True,
                    display_id=True)


def check_verified(summary: dict[str, Any]) -> None:
    """Fail the cell (and so papermill and CI) when the run is not fully verified."""
    if not summary.get("ok"):
        problems = "; ".join(summary.get("problems", [])[:5]) or summary.get("state", "?")
        raise RuntimeError(f"run {summary.get('run_id')} is not verified: {problems}")


def _strip_tags(markup: str) -> str:
    import re

    markup = re.sub(r"<style.*?</style>", "", markup, flags=re.S)
    markup = re.sub(r"</(tr|p|li|h\d|caption)>", "\n", markup)
    markup = re.sub(r"</t[dh]>", "  ", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).strip()


# -- chart data ------------------------------------------------------------
def sample_from_progress(progress: Any) -> dict[str, Any]:
    """One chart sample from a :class:`ttg_lib.run.Progress`, shaped like samples.jsonl."""
    row: dict[str, Any] = {"t": round(progress.elapsed_s, 3), "completed":
                           progress.chunks_completed, "failed": progress.chunks_failed,
                           "params_done": progress.params_done,
                           "live_workers": progress.live_workers}
    if progress.stats:
        for role in ("tasks", "results", "retry", "dlq"):
            row[role] = progress.stats[role]["messages"]
        row["consumers"] = progress.stats["tasks"]["consumers"]
    return row


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
        if kind not in ("killed", "died", "replaced", "frozen"):
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


def _series(samples: list[dict[str, Any]], key: str) -> tuple[list[float], list[Any]]:
    rows = [s for s in samples if key in s]
    return [s["t"] for s in rows], [s[key] for s in rows]


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
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines",
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


# -- run records -----------------------------------------------------------
def record_dir(run_id: str, output_dir: str | os.PathLike[str] | None = None) -> Path:
    return resolve_output_dir(output_dir) / "runs" / run_id


def load_run(run_id: str, output_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    path = record_dir(run_id, output_dir)
    if not (path / "summary.json").exists():
        raise FileNotFoundError(f"no finished run {run_id!r}: {path / 'summary.json'} is missing"
                                f" (runs there: {', '.join(_run_ids(path.parent)) or 'none'})")
    return load_summary(path)


def _run_ids(runs_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in runs_dir.glob("*/summary.json"))


def _load_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


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
    for role in ("tasks", "results", "retry", "dlq"):
        if role in stats:
            row[role] = stats[role]["messages"]
    row.pop("wall", None)
    return row


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


# -- the live chart --------------------------------------------------------
class LiveChart:
    """A FigureWidget fed from the loop that drives the run; ends as a static figure.

    Call :meth:`observe` after each ``run.step()``; it records a sample every
    ``SAMPLE_S`` seconds and redraws at most every ``REDRAW_S``, so the chart never
    slows the run down. :meth:`finish` swaps the widget for the static figure of the
    record (the only thing a saved notebook or an HTML export can keep).
    """

    def __init__(self, backend: str = "rabbitmq", title: str = "TTG queues (live)",
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
            self.handle = _display(target, display_id=True, raw=self.widget is None)
        return self

    def observe(self, progress: Any, run: Any = None, force: bool = False) -> None:
        if run is not None and self.t0_wall is None and getattr(run, "t0", None) is not None:
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
            for i, (key, _name, _sec) in enumerate(_trace_specs(self.backend)):
                xs, ys = _series(self.samples, key)
                fig.data[i].x, fig.data[i].y = xs, ys
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
            self.widget.close()
        return fig


# -- driving a run from a cell ---------------------------------------------
def _status_line(p: Any, cfg: RunConfig) -> str:
    rate = p.params_done / p.elapsed_s if p.elapsed_s else 0.0
    return (f"<b>{html.escape(cfg.run_id)}</b>: {p.state}, "
            f"{p.chunks_completed + p.chunks_failed}/{p.chunks_total} chunks, "
            f"{p.elapsed_s:.1f}s, {rate:,.0f} params/s, {p.live_workers} workers live")


def run_live(config: RunConfig, *, chart: bool = True, step_s: float = 0.1) -> dict[str, Any]:
    """Do a whole run from a notebook cell, drawing the live chart as it goes.

    The loop runs in the cell (not a thread), so widget updates reach the front end
    under every ipykernel; Kernel > Interrupt stops the run cleanly and still writes
    its record. Returns the run summary.
    """
    from .run import Run

    live = LiveChart(config.backend, title=f"TTG queues, live: {config.run_id}") if chart \
        else None
    status = _html_handle(f"<b>{html.escape(config.run_id)}</b>: starting {config.workers} "
                          f"workers on {config.backend}…")
    if live is not None:
        live.display()
    with Run(config) as run:
        run.start()
        last = 0.0
        try:
            while not run.done:
                p = run.step(step_s)
                if live is not None:
                    live.observe(p, run)
                if status is not None and time.monotonic() - last >= REDRAW_S:
                    status.update({"text/html": _status_line(p, config)}, raw=True)
                    last = time.monotonic()
        except KeyboardInterrupt:
            run.stop()
        final = run.progress()
        summary = run.finish()
        if status is not None:
            status.update({"text/html": _status_line(final, config)}, raw=True)
    if live is not None:
        live.finish(summary["record_dir"])
    return summary


def run_quiet(config: RunConfig, label: str = "") -> dict[str, Any]:
    """A run with one updating status line (the milestone matrix)."""
    from .run import Run

    status = _html_handle(f"{html.escape(label)} starting…")
    last = 0.0
    with Run(config) as run:
        run.start()
        while not run.done:
            p = run.step(0.1)
            if status is not None and time.monotonic() - last > 0.5:
                status.update({"text/html": f"{html.escape(label)} " + _status_line(p, config)},
                              raw=True)
                last = time.monotonic()
        summary = run.finish()
    line = (f"{html.escape(label)} <b>{summary['run_id']}</b>: {summary['chunks_completed']}/"
            f"{summary['chunks_total']} chunks in {summary.get('runtime_s')}s — "
            f"{'verified' if summary['ok'] else 'FAILED'}")
    if status is not None:
        status.update({"text/html": line}, raw=True)
    else:
        print(_strip_tags(line))
    return summary


# -- tables ----------------------------------------------------------------
TABLE_CSS = ("<style>.ttg-table{border-collapse:collapse;margin:4px 0 12px}"
             ".ttg-table th,.ttg-table td{border:1px solid #ccc;padding:3px 10px;"
             "text-align:left}.ttg-table th{background:#f3f3f3}"
             ".ttg-table td.obs{font-weight:bold}</style>")


def html_table(header: list[str], rows: Iterable[Iterable[Any]], caption: str = "",
               bold_last: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = list(row)
        tds = []
        for i, cell in enumerate(cells):
            cls = ' class="obs"' if bold_last and i == len(cells) - 1 else ""
            tds.append(f"<td{cls}>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" \
        if caption else ""
    return (f"{TABLE_CSS}<table class='ttg-table'>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def milestone_table(summary: dict[str, Any], caption: str | None = None) -> str:
    return html_table(["Metric", "Target", "Observed"], report.milestone_rows(summary),
                      caption if caption is not None else run_title(summary), bold_last=True)


def queue_stats(summary: dict[str, Any]) -> dict[str, Any] | None:
    return _load_json(Path(summary["record_dir"]) / "queue_stats.json", None)


def queue_stats_table(summary: dict[str, Any], caption: str = "Queue stats after completion"
                      ) -> str:
    stats = queue_stats(summary)
    if not stats:
        return "<p><i>No queue stats were recorded (the broker was unreachable at the end).</i></p>"
    return html_table(["name", "messages", "consumers", "messages_ready",
                       "messages_unacknowledged"], report.queue_stats_rows(stats), caption)


def verdict_html(summary: dict[str, Any]) -> str:
    if summary.get("ok"):
        return (f"<p style='font-size:1.2em;color:#1a7f37'><b>VERIFIED</b>: all "
                f"{summary['params_verified']:,} params present once and recomputed equal "
                f"(run {html.escape(summary['run_id'])}, data loss ZERO).</p>")
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in summary.get("problems", [])[:10])
    return (f"<p style='font-size:1.2em;color:#cf222e'><b>FAILED</b>: run "
            f"{html.escape(summary['run_id'])}</p><ul>{problems}</ul>")


def comparison_table(summaries: list[dict[str, Any]]) -> str:
    header, body = report.comparison_rows(summaries)
    return html_table(header, body, "Backend Comparison Summary (medians over repeats)")


def observations_html(summaries: list[dict[str, Any]]) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>"
                    for line in report.key_observations(summaries))
    return f"<h4>Key Observations</h4><ul>{items}</ul>"


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


# -- milestone matrix ------------------------------------------------------
MATRIX = (("redis", False), ("rabbitmq", False), ("redis", True), ("rabbitmq", True))


def run_matrix(*, scale: str | None = None, repeats: int = 1, workers: int = 3,
               kill_at: float = 0.3, output_dir: str | None = None,
               backends: Iterable[str] = ("redis", "rabbitmq"), **overrides: Any
               ) -> list[dict[str, Any]]:
    """The milestone's four runs (Redis/RabbitMQ × no fault/fault), ``repeats`` times each."""
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
                scale: str | None = None, repeats: int = 0) -> list[dict[str, Any]]:
    """Existing runs to render: the given ids, else the newest ``repeats`` (0 = all) of each
    milestone group at ``scale`` (default: the scale of the newest run)."""
    out = resolve_output_dir(output_dir)
    if run_ids:
        ids = [r.strip() for r in (run_ids.split(",") if isinstance(run_ids, str) else run_ids)
               if r.strip()]
        return [load_run(r, out) for r in ids]
    runs = [s for s in list_runs(out) if s.get("chunks_total")]
    if not runs:
        return []
    scale = scale or runs[-1].get("scale")
    runs = [s for s in runs if s.get("scale") == scale]
    chosen: list[dict[str, Any]] = []
    for group in report.group_runs(runs).values():
        chosen += group[-repeats:] if repeats else group
    return sorted(chosen, key=lambda s: s.get("started_at", ""))


def render_run(summary: dict[str, Any], *, heading: str | None = None,
               chart: bool = True) -> None:
    """Target/Observed, queue stats and (optionally) the queue chart of one run."""
    if heading:
        show_html(f"<h3>{html.escape(heading)}</h3>")
    show_html(milestone_table(summary))
    show_html(queue_stats_table(summary))
    if chart:
        show(figure_from_record(summary["record_dir"]))


# -- the supervisor demo ---------------------------------------------------
class SupervisorPanel:
    """The interactive demo: controls, live chart, worker table and log, one widget box.

    Start schedules :meth:`_drive` on the kernel's own asyncio loop: it calls
    ``run.step`` with a short timeout and then awaits, so button clicks (Kill, Stop)
    are handled between steps and every widget update is sent from the kernel's main
    thread. Nothing runs until a person clicks Start, so the notebook also executes
    headless (nbval, papermill) without side effects.
    """

    def __init__(self, output_dir: str | None = None, scale: str | None = None):
        import ipywidgets as w

        self.output_dir = resolve_output_dir(output_dir)
        self.run: Any = None
        self.task: asyncio.Future[Any] | None = None
        self.chart: LiveChart | None = None
        self.summary: dict[str, Any] | None = None
        self.backend = w.ToggleButtons(options=["redis", "rabbitmq"], value="redis",
                                       description="Backend")
        self.scale = w.Dropdown(options=["tiny", "small", "medium"],
                                value=notebook_scale(scale) if notebook_scale(scale) in
                                ("tiny", "small", "medium") else "small",
                                description="Scale")
        self.workers = w.BoundedIntText(value=3, min=1, max=16, description="Workers")
        self.fault = w.Checkbox(value=True, description="Fault demo (kill one worker)")
        self.kill_at = w.FloatSlider(value=0.3, min=0.05, max=0.95, step=0.05,
                                     description="Kill at", readout_format=".0%")
        self.restart = w.ToggleButtons(options=["always", "never"], value="always",
                                       description="Restart")
        self.start_btn = w.Button(description="Start", button_style="success", icon="play")
        self.kill_btn = w.Button(description="Kill a worker now", button_style="danger",
                                 icon="bolt", disabled=True)
        self.stop_btn = w.Button(description="Stop", button_style="warning", icon="stop",
                                 disabled=True)
        self.cleanup_btn = w.Button(description="Cleanup TTG resources", icon="trash")
        self.status = w.HTML("Idle. Choose settings and press <b>Start</b>.")
        self.workers_html = w.HTML(self._workers_markup([]))
        self.log = w.Textarea(value="", layout=w.Layout(width="100%", height="160px"),
                              disabled=True)
        self.chart_box = w.Box(layout=w.Layout(width="100%"))
        self.start_btn.on_click(lambda _b: self.start())
        self.kill_btn.on_click(lambda _b: self.kill())
        self.stop_btn.on_click(lambda _b: self.stop())
        self.cleanup_btn.on_click(lambda _b: self.cleanup())
        self.fault.observe(lambda ch: setattr(self.kill_at, "disabled", not ch["new"]), "value")
        self._settings = [self.backend, self.scale, self.workers, self.fault, self.kill_at,
                          self.restart]
        controls = w.VBox([w.HBox([self.backend, self.scale, self.workers]),
                           w.HBox([self.fault, self.kill_at]), self.restart,
                           w.HBox([self.start_btn, self.kill_btn, self.stop_btn,
                                   self.cleanup_btn]), self.status])
        self.box = w.VBox([controls, self.chart_box,
                           w.HTML("<b>Workers</b>"), self.workers_html,
                           w.HTML("<b>Log</b>"), self.log])

    # ui plumbing
    def display(self) -> SupervisorPanel:
        _display(self.box)
        return self

    def _ipython_display_(self) -> None:
        self.display()

    def say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log.value = (self.log.value + f"{stamp}  {line}\n")[-20_000:]

    @property
    def running(self) -> bool:
        return self.run is not None and self.summary is None

    def _buttons(self) -> None:
        active = self.running
        live = active and self.run.state == "running"
        self.start_btn.disabled = active
        self.cleanup_btn.disabled = active
        self.kill_btn.disabled = not live
        self.stop_btn.disabled = not live
        for widget in self._settings:
            widget.disabled = active
        if not active:
            self.kill_at.disabled = not self.fault.value

    @staticmethod
    def _workers_markup(rows: list[dict[str, Any]]) -> str:
        def beat(value: Any) -> str:
            if not value:
                return "–"
            return f"{max(0.0, time.time() - float(value)):.1f}s ago"

        return html_table(["worker", "pid / pod", "state", "activity", "chunks done",
                           "current chunk", "last heartbeat"],
                          [(r.get("name"), r.get("pid") or r.get("ident"), r.get("state"),
                            r.get("activity"), r.get("chunks_done", 0),
                            "–" if r.get("current_chunk") is None else r["current_chunk"],
                            beat(r.get("last_heartbeat"))) for r in rows])

    # actions
    def config(self) -> RunConfig:
        return build_config(backend=self.backend.value, scale=self.scale.value,
                            workers=self.workers.value, fault_demo=self.fault.value,
                            kill_at=self.kill_at.value, restart=self.restart.value,
                            output_dir=str(self.output_dir))

    def start(self) -> asyncio.Future[Any] | None:
        if self.running:
            return None
        try:
            cfg = self.config()
        except ConfigError as exc:
            self.status.value = f"<span style='color:#cf222e'>{html.escape(str(exc))}</span>"
            self.say(f"config rejected: {exc}")
            return None
        from .run import Run

        self.summary = None
        self.run = Run(cfg)
        self.chart = LiveChart(cfg.backend, title=f"TTG queues, live: {cfg.run_id}")
        if self.chart.widget is not None:
            self.chart_box.children = (self.chart.widget,)
        self._buttons()
        self.status.value = f"Starting {cfg.workers} workers on {cfg.backend}…"
        self.say(f"run {cfg.run_id}: {cfg.backend}, {cfg.scale} ({cfg.total_params:,} params, "
                 f"{cfg.chunks_total} chunks), {cfg.workers} workers, restart={cfg.restart}"
                 + (f", fault at {cfg.kill_at:.0%}" if cfg.fault_demo else ""))
        self.task = asyncio.ensure_future(self._drive())
        return self.task

    async def _drive(self) -> None:
        run, chart = self.run, self.chart
        loop = asyncio.get_running_loop()
        seen = 0
        try:
            await loop.run_in_executor(None, run.start)
            self.say(f"{run.config.workers} workers ready; tasks published")
            self._buttons()
            last_table = 0.0
            while not run.done:
                p = run.step(0.05)
                chart.observe(p, run)
                for e in p.events[seen:]:
                    self.say(f"{e['event']:<9}{e['worker']:<5}{e.get('detail', '')}")
                seen = len(p.events)
                if time.monotonic() - last_table > 0.5:
                    self.status.value = _status_line(p, run.config)
                    self.workers_html.value = self._workers_markup(run.cluster.worker_status())
                    last_table = time.monotonic()
                await asyncio.sleep(0.2)
            chart.observe(run.progress(), run, force=True)
            self.status.value = f"Finishing ({run.state}): stopping workers, verifying…"
            self._buttons_finishing()
            summary = await loop.run_in_executor(None, run.finish)
            self.workers_html.value = self._workers_markup(_load_json(
                Path(summary["record_dir"]) / "workers.json", []))
            self.summary = summary
            self.status.value = verdict_html(summary)
            self.say(f"run {summary['run_id']} {summary['state']}: {summary['chunks_completed']}"
                     f"/{summary['chunks_total']} chunks, runtime {summary.get('runtime_s')}s, "
                     f"{'VERIFIED' if summary['ok'] else 'FAILED'}; record "
                     f"{summary['record_dir']}")
        except Exception as exc:  # shown in the panel: a button callback has no traceback view
            self.say(f"error: {type(exc).__name__}: {exc}")
            self.status.value = (f"<span style='color:#cf222e'><b>{type(exc).__name__}</b>: "
                                 f"{html.escape(str(exc))}</span>")
            if self.summary is None:
                run.abort()
                self.summary = {"ok": False, "error": str(exc)}
        finally:
            self._buttons()

    def _buttons_finishing(self) -> None:
        self.kill_btn.disabled = self.stop_btn.disabled = True

    def kill(self) -> None:
        if not self.running or self.run.state != "running":
            return
        try:
            info = self.run.kill_worker_now(reason="manual")
            self.say(f"killed {info['killed_worker']} at {info['killed_at_s']:.1f}s "
                     f"(chunk {info.get('victim_chunk')}) by request")
        except Exception as exc:  # e.g. no live worker left
            self.say(f"kill failed: {exc}")

    def stop(self) -> None:
        if self.running:
            self.run.stop()
            self.say("stop requested: workers will be stopped and the record written")

    def cleanup(self) -> None:
        if self.running:
            self.say("cleanup refused: a run is in progress (Stop it first)")
            return
        from .cleanup import cleanup

        cfg = build_config(backend=self.backend.value, scale=self.scale.value)
        brokers = {}
        for name, url in (("redis", cfg.redis_url), ("rabbitmq", cfg.rabbitmq_url)):
            busy = _broker_in_use(name, url)
            if busy:
                self.say(f"cleanup: {name} queues left alone: {busy}")
            else:
                brokers[name] = url
        rep = cleanup(output_dir=self.output_dir, backends=brokers, processes=True,
                      queues=bool(brokers))
        for line in rep.lines():
            self.say(f"cleanup: {line}")


def _broker_in_use(name: str, url: str) -> str | None:
    """Why this broker's TTG queues must not be purged now (another live run holds its run
    lock), or None. An unreachable broker is left to cleanup(), which reports it."""
    from .backends import BrokerUnavailable, RunLocked, make_backend

    probe = f"cleanup-{uuid.uuid4().hex[:8]}"
    backend = make_backend(name, url)
    try:
        backend.connect()
        backend.acquire_run(probe)
        backend.release_run(probe)
    except RunLocked as exc:
        return f"a run is in progress on it ({exc})"
    except BrokerUnavailable:
        return None
    finally:
        backend.close()
    return None
