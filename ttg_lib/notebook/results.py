"""The Results section of run.ipynb: the first rows of a run's ``results.parquet`` and a
chart chosen by its parameter space, drawn from the run record only.

The chart follows the number of axes, since that is what a person sweeping wants to see:

* no space (``fn(param_id, work_ms)``): each value column against ``param_id``;
* one axis: each value column against it (a line for a grid, points for zip/random);
* two axes: a heatmap of the first value column over them (a grid has one point per cell,
  so nothing is averaged); the points of a zip or random space, coloured by the value;
* three or more: parallel coordinates with every axis and the first value column.

Failed points (``error`` set) are listed with their error in the table and left out of the
chart; :func:`results_note` says how many points the chart holds and why any are missing.
A saved notebook or report stays small whatever the run's size: a chart of points draws a
random sample (seed 0: the same every time, and unbiased across the axes of a grid, where
every k-th point would not be) of at most :data:`MAX_POINTS`; a heatmap of more than
:data:`MAX_CELLS` cells keeps one axis value in k (a coarser grid of true points). The note
says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paths import record_dir
from ..record import load_json
from ..results import ResultsError, load_results, result_files, result_rows, sample_results
from .tables import html_table

if TYPE_CHECKING:
    import pandas as pd

MAX_POINTS = 5_000  # points drawn at most (scatter, lines, parallel coordinates)
MAX_CELLS = 40_000  # a heatmap of a bigger grid keeps one axis value in k
LOAD_ROWS = 2_000_000  # a bigger table is sampled, not loaded
SAMPLE_ROWS = 200_000  # rows sampled from it (a chart draws MAX_POINTS of them at most)
MAX_PANELS = 4  # value columns drawn against one axis (the table has them all)
LOG_FORMS = ("logspace", "loguniform")
_FIXED = ("param_id", "worker", "attempt", "error")

Run = dict[str, Any] | str | os.PathLike[str]


@dataclass(frozen=True)
class RunResults:
    """A run's results table with what the chart needs to know about it."""

    frame: pd.DataFrame  # every row (or a sample of them, see total), by param_id
    axes: tuple[str, ...]  # the space's axes, in order (empty without a space)
    mode: str  # grid | zip | random | "" (no space)
    log_axes: frozenset[str]  # axes spaced in the exponent (drawn on a log scale)
    values: tuple[str, ...]  # the numeric value columns, in order
    total: int = -1  # rows in the table (> len(frame) when the frame is a sample)

    @property
    def rows(self) -> int:
        return self.total if self.total >= 0 else len(self.frame)

    @property
    def sampled(self) -> str:
        """How the frame was chosen when it is not every row ("" when it is)."""
        if self.rows <= len(self.frame):
            return ""
        return f"a random sample (seed 0) of {len(self.frame):,} of the {self.rows:,} rows"

    @property
    def failed(self) -> pd.DataFrame:
        return self.frame[self.frame["error"].notna()]

    @property
    def drawable(self) -> pd.DataFrame:
        """Rows the chart can hold: no error and a number in the first value column."""
        ok = self.frame["error"].isna()
        if self.values:
            ok &= self.frame[self.values[0]].notna()
        return self.frame[ok]


def results_dir(run: Run) -> Path:
    """A run's record directory from its summary (``record_dir``), a record directory, or
    a run id under the notebook output directory."""
    if isinstance(run, dict):
        return Path(run["record_dir"])
    path = Path(run)
    return path if path.is_dir() else record_dir(str(run))


def load_run_results(run: Run) -> RunResults | None:
    """The run's results, or None when its record has no results table (a record written
    before results were kept, or a run stopped before its first result)."""
    path = results_dir(run)
    try:
        files = result_files(path)
    except ResultsError:
        return None
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _load(str(path), stamp)


@lru_cache(maxsize=2)  # the table, the chart and the note of one run read it once
def _load(path: str, _stamp: tuple[tuple[str, int, int], ...]) -> RunResults:
    import pandas as pd

    total = result_rows(path)
    frame = load_results(path) if total <= LOAD_ROWS else \
        sample_results(path, SAMPLE_ROWS)  # value_json only when some batch did not fit
    space = (load_json(Path(path) / "config.json", {}) or {}).get("space") or {}
    specs = space.get("axes") or {}
    columns = [c for c in frame.columns if c not in _FIXED and not c.startswith("value")]
    axes = tuple(name for name in specs if name in frame.columns) or tuple(columns)
    logs = frozenset(name for name, spec in specs.items()
                     if isinstance(spec, dict) and set(spec) & set(LOG_FORMS))
    values = tuple(c for c in frame.columns if (c == "value" or c.startswith("value."))
                   and pd.api.types.is_numeric_dtype(frame[c]))  # booleans count as numbers
    return RunResults(frame, axes, space.get("mode", "grid") if axes else "", logs, values,
                      total)


# -- the table ------------------------------------------------------------------------------

def results_table(run: Run, n: int = 10) -> str:
    """HTML of the first ``n`` rows (by param_id), then every failed point's error (the
    first ``n`` of them) when some failed."""
    results = load_run_results(run)
    if results is None:
        return ("<p><i>No results table in this record: results.parquet is missing (a run "
                "recorded before results were kept, or one stopped before its first "
                "result).</i></p>")
    frame = results.frame
    failed = results.failed
    shown = [c for c in frame.columns if c != "error" or len(failed)]
    total = len(frame)
    head = frame.head(n)
    of = results.sampled or f"{total:,} points"
    out = html_table(shown, _rows(head, shown),
                     f"Results: first {len(head):,} of {of} (results.parquet)")
    if len(failed):
        from ..failures import group_by_type

        kinds = group_by_type(failed["param_id"].tolist(), failed["error"].tolist())
        out += html_table(["error type", "points", "first param_ids", "example"],
                          [[k["error_type"], f"{k['count']:,}",
                            ", ".join(map(str, k["param_ids"])), k["example"]] for k in kinds],
                          "Failed points by error type (ttg results RUN --failed exports them;"
                          " ttg repro RUN PARAM_ID reruns one)")
        keep = ["param_id", *results.axes, "worker", "attempt", "error"]
        out += html_table(keep, _rows(failed.head(n), keep),
                          f"Failed points: {len(failed):,} of {total:,}"
                          + (" in the sample" if results.sampled else "")
                          + (f" (the first {n:,})" if len(failed) > n else ""))
    return out


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[str]]:
    return [[_cell(v) for v in row] for row in frame[list(columns)].itertuples(index=False)]


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# -- the chart ------------------------------------------------------------------------------

def results_figure(run: Run) -> Any:
    """The chart of a run's results chosen by its space (see the module doc), or None when
    there is nothing to draw (no results table, no numeric values, every point failed)."""
    results = load_run_results(run)
    plan = _plan(results) if results is not None else None
    if plan is None:
        return None
    assert results is not None
    if plan.kind == "lines":
        fig = _against_one(results, plan.rows, results.axes[0] if results.axes else "param_id")
    elif plan.kind == "heatmap":
        assert plan.grid is not None
        fig = _heatmap(results, plan.rows, *plan.grid)
    elif plan.kind == "points":
        fig = _points_coloured(results, plan.rows)
    else:
        fig = _parallel(results, plan.rows)
    if plan.kind == "parallel":  # room for the axis names above and beside the plot
        fig.update_layout(margin={"t": 110, "l": 80, "r": 20})
    else:
        fig.update_layout(margin={"t": 70, "r": 20})
    return fig


def results_note(run: Run) -> str:
    """One line under the chart: how many points it holds, and why any are left out."""
    results = load_run_results(run)
    if results is None:
        return ""
    total = len(results.frame)
    failed = len(results.failed)
    plan = _plan(results)
    if plan is None:
        if failed == total:
            why = "every point failed"
        elif not results.values:
            why = "the values are not numbers (see the table)"
        else:
            why = f"no point has a number in {results.values[0]}"
        return f"<p><i>No chart: {why}.</i></p>"
    drawable = len(results.drawable)
    parts = [f"{len(plan.rows):,} of {results.rows:,} points drawn"]
    if results.sampled:  # the counts below are the sample's
        parts.append(f"from {results.sampled}")
    if plan.sampled:
        parts.append(plan.sampled)
    if failed:
        parts.append(f"{failed:,} failed point{'s' if failed != 1 else ''} left out "
                     f"(their errors are in the table above)")
    other = total - failed - drawable
    if other:
        parts.append(f"{other:,} without a numeric {results.values[0]} left out")
    return f"<p><i>{'; '.join(parts)}.</i></p>"


@dataclass(frozen=True)
class _Plan:
    """What the chart draws: its kind, its rows, and how they were chosen when not all."""

    kind: str  # lines | heatmap | points | parallel
    rows: pd.DataFrame
    sampled: str = ""  # how the rows were chosen ("" when every drawable row is drawn)
    grid: tuple[list[Any], list[Any]] | None = None  # heatmap: the x and y values drawn


def _plan(results: RunResults) -> _Plan | None:
    rows = results.drawable
    if not results.values or rows.empty:
        return None
    axes = results.axes
    if len(axes) == 2 and results.mode == "grid":
        return _heatmap_plan(results, rows)
    kind = "lines" if len(axes) <= 1 else "points" if len(axes) == 2 else "parallel"
    if len(rows) <= MAX_POINTS:
        return _Plan(kind, rows)
    return _Plan(kind, rows.sample(n=MAX_POINTS, random_state=0).sort_index(),
                 f"a random sample (seed 0) of the {len(rows):,} with values")


def _heatmap_plan(results: RunResults, rows: pd.DataFrame) -> _Plan:
    """Every value of both axes, or one value in k along an axis when the grid has more
    than MAX_CELLS cells: a coarser grid of true points, never an average."""
    x, y = results.axes
    xs, ys = sorted(results.frame[x].unique()), sorted(results.frame[y].unique())
    kx = ky = 1
    while math.ceil(len(xs) / kx) * math.ceil(len(ys) / ky) > MAX_CELLS:
        if math.ceil(len(xs) / kx) >= math.ceil(len(ys) / ky):
            kx += 1
        else:
            ky += 1
    if kx == ky == 1:
        return _Plan("heatmap", rows, grid=(xs, ys))
    xs, ys = xs[::kx], ys[::ky]
    kept = rows[rows[x].isin(xs) & rows[y].isin(ys)]
    every = " and ".join(f"one {name} value in {k}" for name, k in ((x, kx), (y, ky)) if k > 1)
    return _Plan("heatmap", kept, f"a coarser grid: {every}", (xs, ys))


def _against_one(results: RunResults, rows: pd.DataFrame, axis: str) -> Any:
    """Each value column (up to MAX_PANELS) against one axis, one panel each."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    values = results.values[:MAX_PANELS]
    fig = make_subplots(rows=len(values), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    ordered = rows.sort_values(axis, kind="stable")
    lines = results.mode == "grid" and len(ordered) <= MAX_POINTS and ordered[axis].is_unique
    for i, value in enumerate(values, start=1):
        fig.add_trace(go.Scatter(x=_plain(ordered[axis]), y=_plain(ordered[value]),
                                 name=value, mode="lines+markers" if lines else "markers",
                                 marker={"size": 6 if lines else 4}), row=i, col=1)
        fig.update_yaxes(title_text=value, row=i, col=1)
    fig.update_xaxes(title_text=axis, row=len(values), col=1)
    if axis in results.log_axes:
        fig.update_xaxes(type="log")
    fig.update_layout(title={"text": _title(results, f"{_names(values)} against {axis}")},
                      height=260 + 180 * len(values), showlegend=False)
    return fig


def _heatmap(results: RunResults, rows: pd.DataFrame, xs: list[Any], ys: list[Any]) -> Any:
    """The first value column over the two axes of a grid: one cell per point (a failed
    point's cell stays blank)."""
    import plotly.graph_objects as go

    x, y = results.axes
    value = results.values[0]
    grid = rows.pivot_table(index=y, columns=x, values=value, aggfunc="first") \
        .reindex(index=ys, columns=xs)
    fig = go.Figure(go.Heatmap(
        z=[[None if math.isnan(v) else v for v in row] for row in grid.to_numpy(float)],
        x=_labels(grid.columns), y=_labels(grid.index), colorscale="Viridis",
        colorbar={"title": {"text": value}},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{value}=%{{z}}<extra></extra>"))
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y, type="category")
    fig.update_layout(title={"text": _title(results, f"{value} over {x} × {y}")}, height=520)
    return fig


def _points_coloured(results: RunResults, rows: pd.DataFrame) -> Any:
    """Two axes of a zip or random space (or a huge grid): each point coloured by value."""
    import plotly.graph_objects as go

    x, y = results.axes
    value = results.values[0]
    fig = go.Figure(go.Scatter(
        x=_plain(rows[x]), y=_plain(rows[y]), mode="markers",
        marker={"color": _plain(rows[value]), "colorscale": "Viridis", "size": 7,
                "showscale": True, "colorbar": {"title": {"text": value}}},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{value}=%{{marker.color}}<extra></extra>"))
    fig.update_xaxes(title_text=x, type="log" if x in results.log_axes else None)
    fig.update_yaxes(title_text=y, type="log" if y in results.log_axes else None)
    fig.update_layout(title={"text": _title(results, f"{value} over {x} × {y}")}, height=520)
    return fig


def _parallel(results: RunResults, rows: pd.DataFrame) -> Any:
    """Parallel coordinates: every axis, then the first value column (lines coloured by it)."""
    import plotly.graph_objects as go

    value = results.values[0]
    dims = [_dimension(rows[axis], axis, axis in results.log_axes) for axis in results.axes]
    dims.append(_dimension(rows[value], value, False))
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line={"color": _plain(rows[value]), "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": value}}}))
    fig.update_layout(title={"text": _title(results, f"{value} over "
                                                     f"{' × '.join(results.axes)}")},
                      height=520)
    return fig


def _dimension(series: pd.Series, name: str, log: bool) -> dict[str, Any]:
    """One parallel-coordinates axis: numbers as they are (log10 for a log-spaced axis),
    text and booleans as categories."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        categories = sorted(series.astype(str).unique())
        codes = series.astype(str).map({c: i for i, c in enumerate(categories)})
        return {"label": name, "values": codes.tolist(), "tickvals": list(range(len(categories))),
                "ticktext": categories}
    values = series.astype(float)
    if log and (values > 0).all():
        return {"label": f"log10 {name}", "values": [math.log10(v) for v in values]}
    return {"label": name, "values": values.tolist()}


def _plain(series: pd.Series) -> list[Any]:
    """Plain Python values for plotly: booleans as text (categories), nulls as None."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        series = series.astype(str)
    return series.astype(object).where(series.notna(), None).tolist()


def _labels(values: Sequence[Any]) -> list[str]:
    """Tick labels for a category axis: short, yet one per distinct value."""
    values = list(values)
    for fmt in (".4g", ".6g", ".12g"):
        labels = [format(v, fmt) if isinstance(v, float) else str(v) for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(v) for v in values]


def _names(values: Sequence[str]) -> str:
    return ", ".join(values)


def _title(results: RunResults, what: str) -> str:
    space = f"{results.mode} of {results.rows:,} points" if results.axes else \
        f"{results.rows:,} params"
    return f"Results: {what} ({space})"
