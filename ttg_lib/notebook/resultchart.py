"""The Results chart: the line, heatmap or parallel coordinates chosen by a run's space.

The chart follows the number of axes, since that is what a person sweeping wants to see:

* no space (``fn(param_id, work_ms)``): each value column against ``param_id``;
* one axis: each value column against it (a line for a grid, points for zip/random);
* two axes: a heatmap of the first value column over them (a grid has one point per cell,
  so nothing is averaged); the points of a zip or random space, coloured by the value;
* three or more: parallel coordinates with every axis and the first value column.

One function draws it, :func:`results_chart`, from a :class:`~.results.RunResults`: the
finished table (:func:`results_figure`, the static chart of a notebook or report) or the
sample a live chart keeps while the run goes (:mod:`.landscape`). Failed points (``error``
set) are marked with a red x where they are (at the foot of a value axis, which they have
no value on); their errors are in the table. A saved notebook or report stays small
whatever the run's size: a chart of points draws at most :data:`MAX_POINTS` of them, the
bottom-k sample by ``param_id`` hash (:mod:`.sample`: uniform, the same every time, and the
one the live chart ends with), failed ones first up to :data:`MAX_FAILED`; a heatmap of more
than :data:`MAX_CELLS` cells keeps one axis value in k (a coarser grid of true points).
:func:`results_note` says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .results import (
    MAX_CELLS,
    MAX_FAILED,
    MAX_PANELS,
    MAX_POINTS,
    Run,
    RunResults,
    load_run_results,
)
from .sample import bottom_k

if TYPE_CHECKING:
    import pandas as pd

FAILED_COLOR = "#d62728"
FAILED_MARKER = {"symbol": "x", "color": FAILED_COLOR, "size": 9}


def results_figure(run: Run) -> Any:
    """The static chart of a finished run's table (see the module doc), or None when there
    is nothing to draw (no results table, no numeric values, every point failed)."""
    results = load_run_results(run)
    return results_chart(results) if results is not None else None


def results_chart(results: RunResults) -> Any:
    """The chart of ``results``: every row of a table, or a live sample of one."""
    plan = _plan(results)
    if plan is None:
        return None
    if plan.kind == "lines":
        fig = _against_one(results, plan, results.axes[0] if results.axes else "param_id")
    elif plan.kind == "heatmap":
        fig = _heatmap(results, plan)
    elif plan.kind == "points":
        fig = _points_coloured(results, plan)
    else:
        fig = _parallel(results, plan)
    if plan.kind == "parallel":  # room for the axis names above and beside the plot
        fig.update_layout(margin={"t": 110, "l": 80, "r": 20})
    else:
        fig.update_layout(margin={"t": 70, "r": 20})
    return fig


def results_note(run: Run | RunResults) -> str:
    """One line under the chart: how many points it holds, and why any are left out."""
    results = run if isinstance(run, RunResults) else load_run_results(run)
    if results is None:
        return ""
    counts = results.total
    plan = _plan(results)
    if plan is None:
        if counts.total and counts.failed == counts.total:
            why = "every point failed"
        elif not results.values:
            why = "the values are not numbers (see the table)"
        else:
            why = f"no point has a number in {results.values[0]}"
        return f"<p><i>No chart: {why}.</i></p>"
    parts = [f"{len(plan.rows):,} of {counts.total:,} points drawn"]
    if plan.sampled:
        parts.append(plan.sampled)
    if counts.failed:
        marked = len(plan.failed)
        parts.append(f"{counts.failed:,} failed point{'s' if counts.failed != 1 else ''} "
                     + ("marked ×" if marked == counts.failed else f"({marked:,} marked ×)")
                     + " (their errors are in the table)")
    other = counts.total - counts.failed - counts.drawable
    if other:
        parts.append(f"{other:,} without a numeric {results.values[0]} left out")
    return f"<p><i>{'; '.join(parts)}.</i></p>"


@dataclass(frozen=True)
class _Plan:
    """What the chart draws: its kind, its rows, the failed points it marks, and how the
    rows were chosen when not all."""

    kind: str  # lines | heatmap | points | parallel
    rows: pd.DataFrame
    failed: pd.DataFrame
    sampled: str = ""  # how the rows were chosen ("" when every drawable row is drawn)
    grid: tuple[list[Any], list[Any]] = ([], [])  # heatmap: the x and y values drawn


def _plan(results: RunResults) -> _Plan | None:
    rows = results.drawable
    if not results.values or rows.empty:
        return None
    axes = results.axes
    failed = bottom_k(results.failed, MAX_FAILED)
    if len(axes) == 2 and results.mode == "grid":
        return _heatmap_plan(results, rows, failed)
    kind = "lines" if len(axes) <= 1 else "points" if len(axes) == 2 else "parallel"
    room = MAX_POINTS - len(failed)
    drawable = results.total.drawable
    if drawable <= room:
        return _Plan(kind, rows, failed)
    return _Plan(kind, bottom_k(rows, room), failed,
                 f"a uniform sample (by param_id hash) of the {drawable:,} with values")


def _heatmap_plan(results: RunResults, rows: pd.DataFrame, failed: pd.DataFrame) -> _Plan:
    """Every value of both axes, or one value in k along an axis when the grid has more
    than MAX_CELLS cells: a coarser grid of true points, never an average."""
    x, y = results.axes
    xs, ys = results.axis_levels(x), results.axis_levels(y)
    kx = ky = 1
    while math.ceil(len(xs) / kx) * math.ceil(len(ys) / ky) > MAX_CELLS:
        if math.ceil(len(xs) / kx) >= math.ceil(len(ys) / ky):
            kx += 1
        else:
            ky += 1
    if kx == ky == 1:
        return _Plan("heatmap", rows, failed, grid=(xs, ys))
    xs, ys = xs[::kx], ys[::ky]
    kept = rows[rows[x].isin(xs) & rows[y].isin(ys)]
    failed = failed[failed[x].isin(xs) & failed[y].isin(ys)]
    every = " and ".join(f"one {name} value in {k}" for name, k in ((x, kx), (y, ky)) if k > 1)
    return _Plan("heatmap", kept, failed, f"a coarser grid: {every}", (xs, ys))


def _failed_trace(failed: pd.DataFrame, x: Any, y: Any) -> Any:
    """The failed points as red x marks, their error in the hover text."""
    import plotly.graph_objects as go

    return go.Scatter(x=x, y=y, mode="markers", name="failed", marker=FAILED_MARKER,
                      text=[str(e)[:120] for e in failed["error"]],
                      hovertemplate="failed: %{text}<extra></extra>")


def _against_one(results: RunResults, plan: _Plan, axis: str) -> Any:
    """Each value column (up to MAX_PANELS) against one axis, one panel each; failed points
    at the foot of each panel."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    values = results.values[:MAX_PANELS]
    fig = make_subplots(rows=len(values), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    ordered = plan.rows.sort_values(axis, kind="stable")
    lines = results.mode == "grid" and len(ordered) <= MAX_POINTS and ordered[axis].is_unique
    for i, value in enumerate(values, start=1):
        fig.add_trace(go.Scatter(x=_plain(ordered[axis]), y=_plain(ordered[value]),
                                 name=value, mode="lines+markers" if lines else "markers",
                                 marker={"size": 6 if lines else 4}), row=i, col=1)
        if len(plan.failed):
            foot = ordered[value].min() if len(ordered) else 0
            fig.add_trace(_failed_trace(plan.failed, _plain(plan.failed[axis]),
                                        [_number(foot)] * len(plan.failed)), row=i, col=1)
        fig.update_yaxes(title_text=value, row=i, col=1)
    fig.update_xaxes(title_text=axis, row=len(values), col=1)
    if axis in results.log_axes:
        fig.update_xaxes(type="log")
    fig.update_layout(title={"text": _title(results, f"{_names(values)} against {axis}")},
                      height=260 + 180 * len(values), showlegend=False)
    return fig


def _heatmap(results: RunResults, plan: _Plan) -> Any:
    """The first value column over the two axes of a grid: one cell per point (a failed
    point's cell is blank, with a red x)."""
    import plotly.graph_objects as go

    rows, (xs, ys) = plan.rows, plan.grid
    x, y = results.axes
    value = results.values[0]
    grid = rows.pivot_table(index=y, columns=x, values=value, aggfunc="first") \
        .reindex(index=ys, columns=xs)
    fig = go.Figure(go.Heatmap(
        z=[[None if math.isnan(v) else v for v in row] for row in grid.to_numpy(float)],
        x=_labels(grid.columns), y=_labels(grid.index), colorscale="Viridis",
        colorbar={"title": {"text": value}},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{value}=%{{z}}<extra></extra>"))
    if len(plan.failed):
        xl, yl = dict(zip(xs, _labels(xs), strict=True)), dict(zip(ys, _labels(ys), strict=True))
        fig.add_trace(_failed_trace(plan.failed, [xl.get(v) for v in plan.failed[x]],
                                    [yl.get(v) for v in plan.failed[y]]))
        fig.update_layout(showlegend=False)
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y, type="category")
    fig.update_layout(title={"text": _title(results, f"{value} over {x} × {y}")}, height=520)
    return fig


def _points_coloured(results: RunResults, plan: _Plan) -> Any:
    """Two axes of a zip or random space: each point coloured by value, failed ones x."""
    import plotly.graph_objects as go

    rows = plan.rows
    x, y = results.axes
    value = results.values[0]
    fig = go.Figure(go.Scatter(
        x=_plain(rows[x]), y=_plain(rows[y]), mode="markers",
        marker={"color": _plain(rows[value]), "colorscale": "Viridis", "size": 7,
                "showscale": True, "colorbar": {"title": {"text": value}}},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{value}=%{{marker.color}}<extra></extra>"))
    if len(plan.failed):
        fig.add_trace(_failed_trace(plan.failed, _plain(plan.failed[x]),
                                    _plain(plan.failed[y])))
        fig.update_layout(showlegend=False)
    fig.update_xaxes(title_text=x, type="log" if x in results.log_axes else None)
    fig.update_yaxes(title_text=y, type="log" if y in results.log_axes else None)
    fig.update_layout(title={"text": _title(results, f"{value} over {x} × {y}")}, height=520)
    return fig


def _parallel(results: RunResults, plan: _Plan) -> Any:
    """Parallel coordinates: every axis, then the first value column (lines coloured by it);
    failed points as red lines at the foot of the value axis, and a status axis."""
    import pandas as pd
    import plotly.graph_objects as go

    value = results.values[0]
    rows = pd.concat([plan.rows, plan.failed]) if len(plan.failed) else plan.rows
    dims = [_dimension(rows[axis], axis, axis in results.log_axes) for axis in results.axes]
    ok = plan.rows[value].astype(float)
    low, high = float(ok.min()), float(ok.max())
    line: dict[str, Any] = {"color": _plain(ok), "colorscale": "Viridis", "showscale": True,
                            "colorbar": {"title": {"text": value}}}
    if len(plan.failed):  # below the values' range, where a red band of the scale starts
        span = (high - low) or 1.0
        foot = low - span / 19  # 5 % of the colour range
        dims.append({"label": value, "values": [*ok.tolist(), *[foot] * len(plan.failed)]})
        dims.append({"label": "status", "values": [0] * len(ok) + [1] * len(plan.failed),
                     "tickvals": [0, 1], "ticktext": ["ok", "failed"]})
        line.update(color=[*ok.tolist(), *[foot] * len(plan.failed)], cmin=foot, cmax=high,
                    colorscale=_with_failed_band("Viridis"))
    else:
        dims.append(_dimension(plan.rows[value], value, False))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(title={"text": _title(results, f"{value} over "
                                                     f"{' × '.join(results.axes)}")},
                      height=520)
    return fig


def _with_failed_band(name: str) -> list[list[Any]]:
    """A named colour scale squeezed into 5 %..100 %, red below: failed lines' colour."""
    from plotly.colors import get_colorscale

    scale = get_colorscale(name)
    return [[0.0, FAILED_COLOR], [0.05, FAILED_COLOR],
            *[[0.05 + 0.95 * float(at), color] for at, color in scale[1:]]]


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


def _plain(series: pd.Series) -> Any:
    """Values for plotly: numbers without nulls as a numpy array (plotly checks and sends it
    whole, not value by value: a redraw of 5,000 points stays cheap), booleans as text
    (categories), nulls as None."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        series = series.astype(str)
    elif series.dtype.kind in "iuf" and not series.isna().any():
        return series.to_numpy()
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


def _number(value: Any) -> Any:
    return None if value is None or value != value else float(value)


def _title(results: RunResults, what: str) -> str:
    total = results.total.total
    if results.expected is not None:  # a live chart: how far the run is
        n = f"{total:,} of {results.expected:,}"
        space = f"{results.mode}, {n} points so far" if results.axes else f"{n} params so far"
    else:
        space = f"{results.mode} of {total:,} points" if results.axes else f"{total:,} params"
    return f"Results: {what} ({space})"
