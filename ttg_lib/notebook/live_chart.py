"""The live queue chart: a FigureWidget fed from the loop that drives a run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .chart_data import (
    _series,
    marks_from_events,
    sample_from_progress,
    series_label,
    throughput,
)
from .charts import _mark_layout, _trace_specs, figure_from_record, queue_figure
from .display import _display, figure_bundle, in_ipython, show

SAMPLE_S = 0.5

REDRAW_S = 0.5


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
            for i, (key, name, _sec) in enumerate(_trace_specs(self.backend)):
                xs, ys = _series(self.samples, key)
                fig.data[i].x, fig.data[i].y = xs, ys
                fig.data[i].name = series_label(self.samples, key, name)
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
