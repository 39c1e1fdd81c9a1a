"""The Results section of run.ipynb (ttg_lib.notebook.results): the chart chosen by the space
and the table, from a results.parquet written by ResultsWriter (no broker involved)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_results_table import result, write_run

from ttg_lib import notebook as nb
from ttg_lib.results import ResultsWriter
from ttg_lib.space import load_space

pytest.importorskip("plotly")


def record(tmp_path: Path, space: dict | None, fn, **kwargs) -> Path:
    """A run record as the orchestrator leaves it: config.json (the space) and the table."""
    path = tmp_path / "runs" / "r"
    path.mkdir(parents=True)
    loaded = load_space(space) if space is not None else None
    (path / "config.json").write_text(json.dumps(
        {"space": loaded.to_dict() if loaded else None}))
    write_run(path, loaded, fn, **kwargs)
    return path


def loss(lr: float, depth: int = 6, act: str = "relu") -> dict[str, float]:
    value = (math.log10(lr) + 2) ** 2 + 0.05 * (depth - 6) ** 2 + (act == "tanh") * 0.1
    return {"loss": value, "accuracy": 1 / (1 + value)}


LR = {"logspace": [-3, -1, 5]}


def test_one_axis_draws_each_value_column_against_it(tmp_path: Path) -> None:
    path = record(tmp_path, {"axes": {"lr": LR}}, loss, chunk=2)
    fig = nb.results_figure(path)
    assert [t.type for t in fig.data] == ["scatter", "scatter"]
    assert [t.name for t in fig.data] == ["value.loss", "value.accuracy"]
    assert all(t.mode == "lines+markers" for t in fig.data)  # a grid: one value per x
    assert list(fig.data[0].x) == [10.0 ** e for e in (-3, -2.5, -2, -1.5, -1)]
    assert list(fig.data[0].y) == [loss(lr)["loss"] for lr in fig.data[0].x]
    assert fig.layout.xaxis.type == "log" or fig.layout.xaxis2.type == "log"
    assert "against lr" in fig.layout.title.text
    assert nb.results_note(path) == "<p><i>5 of 5 points drawn.</i></p>"


def test_two_axes_draw_a_heatmap_with_one_cell_per_point(tmp_path: Path) -> None:
    path = record(tmp_path, {"axes": {"lr": LR, "depth": [2, 4, 6]}}, loss, chunk=4)
    fig = nb.results_figure(path)
    (heat,) = fig.data
    assert heat.type == "heatmap"
    assert list(heat.x) == ["0.001", "0.003162", "0.01", "0.03162", "0.1"]
    assert list(heat.y) == ["2", "4", "6"]
    lrs = [10.0 ** e for e in (-3, -2.5, -2, -1.5, -1)]
    assert [list(row) for row in heat.z] == [[loss(lr, d)["loss"] for lr in lrs]
                                             for d in (2, 4, 6)]
    assert heat.colorbar.title.text == "value.loss"


def test_three_axes_draw_parallel_coordinates_and_failed_points_are_marked(
        tmp_path: Path) -> None:
    space = {"axes": {"lr": LR, "depth": [2, 4, 6, 8], "act": ["relu", "tanh", "gelu"]}}
    path = record(tmp_path, space, loss, chunk=6, fail=frozenset({2}))  # points 12..17
    fig = nb.results_figure(path)
    (par,) = fig.data
    assert par.type == "parcoords"
    labels = [d.label for d in par.dimensions]
    assert labels == ["log10 lr", "depth", "act", "value.loss", "status"]
    assert all(len(d["values"]) == 60 for d in par.dimensions)  # 54 points, 6 failed
    act = par.dimensions[2]
    assert list(act.ticktext) == ["gelu", "relu", "tanh"] and set(act["values"]) == {0, 1, 2}
    status = par.dimensions[4]
    assert list(status["values"]) == [0] * 54 + [1] * 6 and list(status.ticktext) == ["ok",
                                                                                     "failed"]
    values = list(par.dimensions[3]["values"])  # failed lines at the foot of the value axis
    assert values[54:] == [par.line.cmin] * 6 and par.line.cmin < min(values[:54])
    assert par.line.colorscale[0][1] == par.line.colorscale[1][1] == "#d62728"  # in red
    assert nb.results_note(path) == ("<p><i>54 of 60 points drawn; 6 failed points marked × "
                                     "(their errors are in the table).</i></p>")
    table = nb.results_table(path, n=5)
    assert "first 5 of 60 points" in table and "<th>error</th>" in table
    assert "Failed points: 6 of 60 (the first 5)" in table
    assert "Failed points by error type" in table  # one row: RuntimeError, its example
    assert table.count("RuntimeError: boom") == 1 + 5
    assert nb.results_table(path).count("RuntimeError: boom") == 1 + 6


def test_two_axes_of_a_random_space_are_points_coloured_by_value(tmp_path: Path) -> None:
    space = {"mode": "random", "samples": 40, "seed": 1,
             "axes": {"lr": {"loguniform": [1e-3, 1e-1]}, "depth": {"range": [2, 9]}}}
    path = record(tmp_path, space, loss, chunk=8)
    (points,) = nb.results_figure(path).data
    assert points.type == "scatter" and points.mode == "markers" and len(points.x) == 40
    assert points.marker.colorbar.title.text == "value.loss"


def test_without_a_space_values_are_drawn_against_param_id_sampled_down(
        tmp_path: Path) -> None:
    path = tmp_path / "runs" / "big"
    with ResultsWriter(path) as writer:
        for start in range(0, 12_000, 1_000):
            writer.add(result(start, [(i * 7919) % 1000 for i in range(start, start + 1_000)]))
    fig = nb.results_figure(path)
    (trace,) = fig.data
    assert trace.mode == "markers" and fig.layout.xaxis.title.text == "param_id"
    xs = list(trace.x)
    assert len(xs) == nb.results.MAX_POINTS and xs == sorted(set(xs))
    assert list(trace.y) == [(i * 7919) % 1000 for i in xs]
    assert list(nb.results_figure(path).data[0].x) == xs  # the same sample every time
    assert nb.results_note(path) == ("<p><i>5,000 of 12,000 points drawn; a uniform sample "
                                     "(by param_id hash) of the 12,000 with values.</i></p>")
    assert "first 10 of 12,000 points" in nb.results_table(path)


def test_a_sample_of_a_grid_covers_every_axis_value(tmp_path: Path) -> None:
    space = {"axes": {"a": {"range": [0, 20]}, "b": {"range": [0, 20]}, "c": {"range": [0, 20]}}}
    path = record(tmp_path, space, lambda a, b, c: a + b + c, chunk=500,
                  row_group_rows=1_000)  # 8,000 points (16-row groups: 500 reads)
    (par,) = nb.results_figure(path).data
    assert all(len(d["values"]) == 5_000 for d in par.dimensions)
    for dim in par.dimensions[:3]:  # every 2nd point would keep c even: a biased chart
        assert set(dim["values"]) == set(range(20))
    assert [a + b + c for a, b, c in zip(*(d["values"] for d in par.dimensions[:3]),
                                         strict=True)] == list(par.dimensions[3]["values"])


def test_a_big_grid_of_two_axes_is_a_coarser_heatmap_of_true_points(tmp_path: Path) -> None:
    space = {"axes": {"x": {"range": [0, 300]}, "y": {"range": [0, 300]}}}
    path = record(tmp_path, space, lambda x, y: x * 1000 + y, chunk=5_000,
                  row_group_rows=5_000)  # 16-row groups: 5,625 reads, ~3 s
    (heat,) = nb.results_figure(path).data
    assert heat.type == "heatmap" and len(heat.x) * len(heat.y) <= nb.results.MAX_CELLS
    assert list(heat.x) == [str(x) for x in range(0, 300, 2)]
    assert list(heat.y) == [str(y) for y in range(0, 300, 2)]
    assert heat.z[3][5] == 10 * 1000 + 6  # the point itself (x = 10, y = 6), not an average
    assert nb.results_note(path) == ("<p><i>22,500 of 90,000 points drawn; a coarser grid: one "
                                     "x value in 2 and one y value in 2.</i></p>")


def test_values_that_are_not_numbers_get_a_table_and_no_chart(tmp_path: Path) -> None:
    path = record(tmp_path, {"axes": {"x": [1, 2, 3]}}, lambda x: [x, "text"], chunk=3)
    assert nb.results_figure(path) is None
    assert "not numbers" in nb.results_note(path)
    assert "[1,&quot;text&quot;]" in nb.results_table(path)


def test_a_record_without_results_says_so(tmp_path: Path) -> None:
    summary = {"record_dir": str(tmp_path)}
    assert "No results table" in nb.results_table(summary)
    assert nb.results_figure(summary) is None and nb.results_note(summary) == ""
