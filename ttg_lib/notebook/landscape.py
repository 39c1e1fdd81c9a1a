"""The Results chart while the run goes: the landscape filling in as results land on disk.

:class:`LiveResults` follows the parts the orchestrator writes (``PartsTail``: only the parts
it has not read, never the table again, no lock), keeps the bottom-k sample of the rows so
far (``Reservoir``: at most MAX_POINTS points, of which at most MAX_FAILED failed ones) and
counts the rest, and redraws at most once every REDRAW_S with ``results_chart``, the
function that draws the static chart too. :meth:`LiveResults.finish` puts the static chart
of the finished table in its place: what a saved notebook keeps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..results import MISFIT, PartsTail, ValueLayout, frame_of
from .display import LiveFigure
from .resultchart import results_chart, results_figure
from .resultdata import MAX_FAILED, MAX_POINTS, Counts, RunResults, describe
from .sample import Reservoir, smallest

REDRAW_S = 1.0  # at most one read of new parts and one redraw a second
BUDGET = 0.02  # and never more CPU than this share of the loop that drives the run
NUMERIC = ("int64", "float64", "bool")
WAITING = "Results: waiting for the first results on disk"


class LiveResults(LiveFigure):
    """The Results chart of a run writing its record in ``record_dir`` over ``space`` (the
    config's dict; None without a space) of ``expected`` points."""

    def __init__(self, record_dir: str | os.PathLike[str], space: dict[str, Any] | None,
                 expected: int, *, live: bool = True):
        self.record_dir = Path(record_dir)
        self.space = space or {}
        self.expected = expected
        self.tail = PartsTail(record_dir, skip=("worker", "attempt", MISFIT))
        self.ok = Reservoir(MAX_POINTS)
        self.failed = Reservoir(MAX_FAILED)
        self.other = 0  # rows with neither an error nor a number: counted, not drawn
        self.levels: dict[str, set[Any]] = {}
        self.redraws = 0
        self._last: float | None = None  # the first read a second into the run, not sooner
        self._cost = 0.0  # what the last poll took
        _warm_up()  # imports now, before the run's clock starts, not in its first poll
        self._open(_placeholder(), live)

    @property
    def points(self) -> int:
        """Rows read so far."""
        return self.tail.rows

    def poll(self, force: bool = False) -> bool:
        """Read the parts written since the last poll and redraw, at most every REDRAW_S,
        and at most BUDGET of the time (``force``: now). True when the chart changed."""
        now = time.monotonic()
        if self._last is None and not force:
            self._last = now
            return False
        if not force and now - (self._last or 0.0) < max(REDRAW_S, self._cost / BUDGET):
            return False
        self._last = now
        cpu = time.thread_time()
        try:
            return self._redraw()
        finally:  # a slow machine or a big chart: polled less often, never a slower run
            self._cost = time.thread_time() - cpu  # this thread's work, not others' load

    def _redraw(self) -> bool:
        table = self.tail.read_new()
        if table is None:
            return False
        self.take(table)
        results = self.results()
        fig = results_chart(results) if results is not None else None
        if fig is None:
            return False
        self.figure = fig
        self.redraws += 1
        if self.widget is not None:
            _sync(self.widget, fig)
        return True

    def take(self, table: pa.Table) -> None:
        """Sample and count ``table``'s rows (new parts, or a finished table's row groups)."""
        failed = table.column("error").is_valid()
        value = _first_number(table.schema)
        if value is None:
            ok = pa.array(np.zeros(table.num_rows, dtype=bool))
        else:
            column = table.column(value)
            ok = column.is_valid()
            if pa.types.is_floating(column.type):
                ok = pc.and_(ok, pc.invert(pc.is_nan(column)))
            ok = pc.and_(ok, pc.invert(failed))
        self.ok.add(table.filter(ok))
        self.failed.add(table.filter(failed))
        self.other += table.num_rows - (pc.sum(ok).as_py() or 0) - \
            (pc.sum(failed).as_py() or 0)
        axes = [a for a in (self.space.get("axes") or {}) if a in table.column_names]
        if len(axes) == 2:  # a heatmap's rows and columns: every value seen so far
            for axis in axes:
                self.levels.setdefault(axis, set()).update(
                    pc.unique(table.column(axis)).drop_null().to_pylist())

    def results(self) -> RunResults | None:
        """What the chart is drawn from now: the sample, with the counts of every row."""
        failed, ok = self.failed.table, self.ok.table
        if ok is not None and failed is not None:  # at most MAX_POINTS in all
            ids = ok.column("param_id").to_numpy()
            ok = ok.take(pa.array(smallest(ids, MAX_POINTS - failed.num_rows)))
        kept = [t for t in (ok, failed) if t is not None]
        if not kept:
            return None
        table = pa.concat_tables(kept, promote_options="permissive").sort_by("param_id")
        counts = Counts(self.ok.seen + self.failed.seen + self.other, self.failed.seen,
                        self.ok.seen)
        return describe(frame_of(table), self.space, counts=counts,
                        levels={k: list(v) for k, v in self.levels.items()} or None,
                        expected=self.expected)

    def final(self, record_dir: str | os.PathLike[str]) -> Any:
        """The static chart of the finished table (the same function draws both), in the
        widget too; a run without a table keeps the last live figure."""
        fig = results_figure(record_dir)
        if fig is not None:
            self.figure = fig
            if self.widget is not None:
                _sync(self.widget, fig)
        return self.figure

    def finish(self, record_dir: str | os.PathLike[str] | None = None) -> Any:
        """Replace the live widget by the static chart of the finished table: what a saved
        notebook or an HTML export keeps."""
        return self._settle(self.final(record_dir) if record_dir is not None else self.figure)


def _first_number(schema: pa.Schema) -> str | None:
    """The first numeric value column of a part's layout: the one the chart colours by."""
    layout = ValueLayout.from_schema(schema)
    return next((name for name, kind in layout.columns if kind in NUMERIC), None)


def _warm_up() -> None:
    import pandas  # noqa: F401
    import plotly.subplots  # noqa: F401


def _placeholder() -> Any:
    import plotly.graph_objects as go

    return go.Figure(layout={"title": {"text": WAITING}, "height": 440})


def _sync(widget: Any, fig: Any) -> None:
    """Make a FigureWidget show ``fig``: its traces updated in place while they are of the
    same kinds (no flicker), replaced when the chart's shape changed; of the layout only
    what changed (its template, the costly part, is set once)."""
    layout = fig.layout.to_plotly_json()
    if [t.type for t in widget.data] != [t.type for t in fig.data]:
        widget.data = ()
        widget.add_traces(list(fig.data))
        widget.layout = fig.layout
        return
    before = widget.layout.to_plotly_json()
    with widget.batch_update():
        for old, new in zip(widget.data, fig.data, strict=True):
            old.update(_props(new), overwrite=True)
        for key in set(layout) | set(before):
            if key != "template" and layout.get(key) != before.get(key):
                widget.layout[key] = layout.get(key)


def _props(trace: Any) -> dict[str, Any]:
    return {k: v for k, v in trace.to_plotly_json().items() if k != "type"}


def sampled_points(fig: Any) -> int:
    """Points (or cells with a value) a Results figure draws: what a test counts."""
    return sum(_count(t) for t in fig.data if t.name != "failed")


def _count(trace: Any) -> int:
    if trace.type == "heatmap":
        return sum(v is not None for row in trace.z for v in row)
    if trace.type == "parcoords":
        return len(trace.dimensions[0]["values"]) if trace.dimensions else 0
    return 0 if trace.x is None else len(trace.x)
