"""The Results chart while a run writes its results (ttg_lib.notebook.landscape): the bottom-k
sample, the incremental reader of the parts, and the live chart ending as the static one.
The orchestrator's ResultsWriter writes the parts here; no broker is involved."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_results_table import over_the_wire, result

from ttg_lib import notebook as nb
from ttg_lib.notebook.landscape import LiveResults, sampled_points
from ttg_lib.notebook.sample import Reservoir, bottom_k, priority, smallest
from ttg_lib.results import PARTS_DIR, PartsTail, ResultsWriter
from ttg_lib.space import load_space

pytest.importorskip("plotly")


# -- the sample ---------------------------------------------------------------------------

def test_priority_is_a_bijection_and_the_sample_is_uniform() -> None:
    ids = np.arange(200_000)
    assert len(np.unique(priority(ids))) == len(ids)
    kept = ids[smallest(ids, 5_000)]
    assert len(kept) == 5_000 and list(kept) == sorted(kept)
    per_tenth = np.bincount(kept // 20_000, minlength=10)  # 500 expected in each tenth
    assert per_tenth.min() > 400 and per_tenth.max() < 600, per_tenth


def test_the_reservoir_depends_on_which_rows_not_their_order() -> None:
    ids = list(range(30_000))
    whole = set(np.asarray(ids)[smallest(ids, 1_000)].tolist())
    for seed in (1, 2):
        random.Random(seed).shuffle(ids)
        reservoir = Reservoir(1_000)
        for start in range(0, len(ids), 700):  # parts of any size, in any order
            part = ids[start:start + 700]
            reservoir.add(pa.table({"param_id": pa.array(part, pa.int64()),
                                    "value": pa.array([float(i) for i in part])}))
        assert reservoir.seen == 30_000 and reservoir.table is not None
        kept = reservoir.table.column("param_id").to_pylist()
        assert set(kept) == whole and kept == sorted(kept)
        assert reservoir.table.column("value").to_pylist() == [float(i) for i in kept]


def test_the_reservoir_takes_a_column_widened_later() -> None:
    reservoir = Reservoir(3)
    reservoir.add(pa.table({"param_id": pa.array([5, 6], pa.int64()),
                            "value": pa.array([1, 2], pa.int64())}))
    reservoir.add(pa.table({"param_id": pa.array([7], pa.int64()),
                            "value": pa.array([0.5], pa.float64())}))
    assert reservoir.table.column("value").type == pa.float64()
    assert sorted(reservoir.table.column("value").to_pylist()) == [0.5, 1.0, 2.0]


def test_bottom_k_of_a_frame_is_the_reservoirs_sample() -> None:
    import pandas as pd

    frame = pd.DataFrame({"param_id": np.arange(9_000, dtype=np.int64)})
    reservoir = Reservoir(100)
    reservoir.add(pa.table({"param_id": pa.array(np.arange(9_000)[::-1], pa.int64())}))
    assert bottom_k(frame, 100)["param_id"].tolist() == \
        reservoir.table.column("param_id").to_pylist()
    assert bottom_k(frame.head(50), 100).equals(frame.head(50))


# -- the incremental reader -----------------------------------------------------------------

def _chunk(start: int, count: int, error: str | None = None):
    values = [] if error else [float((i * 7919) % 1000) for i in range(start, start + count)]
    return over_the_wire(result(start, values, count=count, error=error))[0]


def test_the_tail_reads_only_the_parts_it_has_not_read(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = pq.ParquetFile
    monkeypatch.setattr(pq, "ParquetFile",
                        lambda path, **kw: reads.append(Path(path).name) or real(path, **kw))
    tail = PartsTail(tmp_path, skip=("worker", "attempt"))
    assert tail.read_new() is None  # nothing written yet: no error
    writer = ResultsWriter(tmp_path)
    writer.add(_chunk(0, 10))
    writer.flush()
    first = tail.read_new()
    assert first is not None and first.column("param_id").to_pylist() == list(range(10))
    assert "worker" not in first.column_names and "attempt" not in first.column_names
    assert tail.read_new() is None and reads == ["part-000000.parquet"]  # nothing new
    (tmp_path / PARTS_DIR / "part-000001.parquet.tmp").write_bytes(b"half a part")
    (tmp_path / PARTS_DIR / "part-000009.parquet").write_bytes(b"PAR1 not whole")
    writer.add(_chunk(10, 5))
    writer.add(_chunk(15, 5, error="RuntimeError: boom"))
    writer.flush()
    second = tail.read_new()  # the new whole part; the cut one tried again later
    assert second.column("param_id").to_pylist() == list(range(10, 20))
    assert second.column("error").null_count == 5
    assert reads.count("part-000000.parquet") == 1 and "part-000009.parquet" not in tail.seen
    (tmp_path / PARTS_DIR / "part-000009.parquet").unlink()
    writer.close()  # the parts go aside and then away: the tail stays quiet
    assert tail.read_new() is None and tail.rows == 20


def test_the_tail_reads_the_parts_moved_aside_by_a_close(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    tail = PartsTail(tmp_path)
    for start in (0, 10, 20):
        writer.add(_chunk(start, 10))
        writer.flush()
    assert tail.read_new().num_rows == 30
    writer.add(_chunk(30, 10))
    writer.flush()
    (tmp_path / PARTS_DIR).rename(tmp_path / "results.parts.merged")  # a close, halfway
    assert tail.read_new().column("param_id").to_pylist() == list(range(30, 40))


# -- the live chart ---------------------------------------------------------------------------

def _record(tmp_path: Path, space: dict | None) -> tuple[Path, object]:
    path = tmp_path / "runs" / "r"
    path.mkdir(parents=True)
    loaded = load_space(space) if space is not None else None
    (path / "config.json").write_text(json.dumps({"space": loaded.to_dict() if loaded
                                                  else None}))
    return path, loaded


def _follow(path: Path, space, chunks: list, every: int) -> tuple[LiveResults, list[int]]:
    """Write ``chunks`` as the orchestrator does, a part every ``every`` chunks, polling the
    live chart after each part; the points it drew after each poll."""
    live = LiveResults(path, space.to_dict() if space is not None else None,
                       space.size if space is not None else 0, live=False)
    drawn = []
    with ResultsWriter(path, space) as writer:
        for i, chunk in enumerate(chunks, start=1):
            writer.add(chunk)
            if i % every == 0 or i == len(chunks):
                writer.flush()
                live.poll(force=True)
                drawn.append(sampled_points(live.figure) if live.redraws else 0)
    return live, drawn


def _same(a, b) -> None:
    assert a.to_json() == b.to_json()


def _ended(live: LiveResults):
    """The live sample once the run has ended (its title no longer says "so far")."""
    return dataclasses.replace(live.results(), expected=None)


def test_without_a_space_the_live_chart_fills_in_and_ends_as_the_static_one(
        tmp_path: Path) -> None:
    path, _ = _record(tmp_path, None)
    chunks = [_chunk(s, 500, error="ValueError: no" if s == 3_000 else None)
              for s in range(0, 12_000, 500)]
    random.Random(3).shuffle(chunks)
    live, drawn = _follow(path, None, chunks, every=3)
    assert drawn == sorted(drawn) and 1_000 <= drawn[0] <= 1_500 and drawn[-1] == 4_500
    assert max(drawn) <= nb.results.MAX_POINTS
    final = _ended(live)
    assert final.total.total == 12_000 and final.total.failed == 500
    assert len(final.frame) == 5_000  # 4,500 values and the 500 failed ones marked
    _same(nb.results_chart(final), nb.results_figure(path))
    assert nb.results_note(final) == nb.results_note(path)
    assert "500 failed points marked ×" in nb.results_note(path)
    (failed,) = [t for t in nb.results_figure(path).data if t.name == "failed"]
    assert list(failed.x) == list(range(3_000, 3_500)) and failed.marker.symbol == "x"


def test_a_grid_of_two_axes_fills_a_heatmap_with_failed_cells_marked(tmp_path: Path) -> None:
    space_spec = {"axes": {"x": {"range": [0, 40]}, "y": {"linspace": [0, 1, 25]}}}
    path, space = _record(tmp_path, space_spec)
    chunks = []
    for start in range(0, space.size, 40):
        points = space.points(start, 40)
        bad = start == 400
        chunks.append(over_the_wire(result(
            start, [] if bad else [p["x"] * p["y"] for p in points], count=40,
            error="RuntimeError: boom" if bad else None))[0])
    live, drawn = _follow(path, space, chunks, every=5)
    assert drawn == sorted(drawn) and drawn[0] == 200 and drawn[-1] == 1_000 - 40
    heat, failed = live.figure.data
    assert heat.type == "heatmap" and len(failed.x) == 40 and failed.name == "failed"
    _same(nb.results_chart(_ended(live)), nb.results_figure(path))


def test_parallel_coordinates_fill_in_and_end_as_the_static_chart(tmp_path: Path) -> None:
    space_spec = {"mode": "random", "samples": 3_000, "seed": 4,
                  "axes": {"a": {"uniform": [0, 1]}, "b": {"loguniform": [1e-3, 1]},
                           "c": ["p", "q"]}}
    path, space = _record(tmp_path, space_spec)
    chunks = [over_the_wire(result(s, [p["a"] + p["b"] for p in space.points(s, 100)]))[0]
              for s in range(0, space.size, 100)]
    live, drawn = _follow(path, space, chunks, every=6)
    assert drawn[0] == 600 and drawn[-1] == 3_000
    assert "so far" in live.figure.layout.title.text
    _same(nb.results_chart(_ended(live)).data[0], nb.results_figure(path).data[0])


def test_polls_within_a_second_read_nothing(tmp_path: Path) -> None:
    path, _ = _record(tmp_path, None)
    live = LiveResults(path, None, 100, live=False)
    with ResultsWriter(path) as writer:
        writer.add(_chunk(0, 50))
        writer.flush()
        assert not live.poll() and live.points == 0  # a second after the first poll
        assert live.poll(force=True) and live.points == 50
        writer.add(_chunk(50, 50))
        writer.flush()
        assert not live.poll() and live.points == 50  # the second within REDRAW_S
        assert live.poll(force=True) and live.points == 100


def test_the_widget_follows_the_chart_and_is_released_at_the_end(tmp_path: Path) -> None:
    pytest.importorskip("anywidget")
    path, _ = _record(tmp_path, None)
    live = LiveResults(path, None, 100)
    assert live.widget is not None and live.widget.layout.title.text.startswith("Results")
    with ResultsWriter(path) as writer:
        writer.add(_chunk(0, 50))
        writer.flush()
        live.poll(force=True)
        assert len(live.widget.data[0].x) == 50
        writer.add(_chunk(50, 50, error="RuntimeError: boom"))
        writer.flush()
        live.poll(force=True)  # a failed trace appears: the widget takes the new shape
        assert [t.name for t in live.widget.data] == ["value", "failed"]
    fig = live.finish(path)
    _same(fig, nb.results_figure(path))


# -- a real run, on both brokers -------------------------------------------------------------

def slow_product(x: int, y: int) -> float:
    """A point that takes a while, and one that fails: what a live chart is for."""
    import time

    if (x, y) == (7, 3):
        raise ValueError("no value here")
    time.sleep(0.02)
    return float(x * y)


@pytest.mark.slow
def test_a_live_sweep_fills_the_results_chart_then_shows_the_static_one(
        backend_name: str, broker_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ttg_lib
    from ttg_lib.notebook import landscape, live

    made: list[landscape.LiveResults] = []
    drawn: list[int] = []

    class Recorded(landscape.LiveResults):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def poll(self, force: bool = False) -> bool:
            changed = super().poll(force)
            if changed:
                drawn.append(sampled_points(self.figure))
            return changed

    monkeypatch.setattr(live, "LiveResults", Recorded)
    space = {"axes": {"x": {"range": [0, 30]}, "y": {"range": [0, 10]}}}
    sweep = ttg_lib.sweep(slow_product, space, live=True, backend=backend_name, workers=2,
                          chunk_size=10, verify="sample", output_dir=str(tmp_path / "out"),
                          monitor="none")
    [chart] = made
    assert len(drawn) >= 2 and drawn == sorted(drawn) and drawn[0] < 299, drawn
    assert 0 < chart.points <= 300  # the last part may come with the run's close
    static = nb.results_figure(sweep.record_dir)
    _same(chart.figure, static)  # the live chart ended as the static one
    heat, failed = static.data
    assert heat.type == "heatmap" and (list(failed.x), list(failed.y)) == (["7"], ["3"])
    assert sweep.summary.failed_points["count"] == 1
