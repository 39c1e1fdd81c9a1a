"""Reuse across runs, the unit layer: fingerprints, exact point matching (a wider grid axis,
more random samples, a changed linspace), the chunks a partly reused space publishes, and
dict values with points left out. No broker: the sweeps are in test_reuse_e2e.py."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttg_lib.config import ConfigError, RunConfig
from ttg_lib.results.layout import META_KEY, ValueLayout
from ttg_lib.reuse import ReusePlan, Source, function_fingerprint, lookup
from ttg_lib.reuse.keys import point_keys
from ttg_lib.space import load_space
from ttg_lib.verify import VerifyMode


def stored(tmp_path: Path, space_dict: dict, name: str = "old", failed: tuple = ()) -> Source:
    """A finished run's table for ``space_dict`` (values: param_id * 10)."""
    space = load_space(space_dict)
    cols = space.columns(0, space.size)
    error = [("boom" if i in failed else None) for i in range(space.size)]
    table = pa.table({"param_id": np.arange(space.size), **cols,
                      "value": np.arange(space.size) * 10.0,
                      "value_json": pa.nulls(space.size, pa.string()),
                      "error": pa.array(error, pa.string())})
    layout = ValueLayout("scalar", (("value", "float64"),))  # as a results table says it
    table = table.replace_schema_metadata({META_KEY: layout.to_json()})
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path, row_group_size=7)  # several row groups
    return Source(name, path)


def test_a_wider_first_axis_reuses_every_old_point_at_its_new_place(tmp_path):
    old = stored(tmp_path, {"axes": {"a": [1, 2, 3, 4, 5], "b": [0.5, 1.5, 2.5, 3.5]}})
    rmap = lookup(load_space({"axes": {"a": [1, 2, 3, 4, 5, 6], "b": [0.5, 1.5, 2.5, 3.5]}}),
                  [old], block=5)
    assert rmap.new_ids.tolist() == list(range(20)) and rmap.old_ids.tolist() == list(range(20))


def test_a_wider_second_axis_reuses_scattered_points_and_chunks_compute_only_the_rest(
        tmp_path):
    old = stored(tmp_path, {"axes": {"a": [1, 2, 3], "b": ["x", "y"]}}, failed=(4,))
    new = load_space({"axes": {"a": [1, 2, 3], "b": ["x", "y", "z"]}})  # ids: a*3 + b
    rmap = lookup(new, [old])
    # old (a, b) -> old id 2a+b, new id 3a+b; the failed old point 4 = (2, x) is not reused
    assert rmap.new_ids.tolist() == [0, 1, 3, 4, 7]
    assert rmap.old_ids.tolist() == [0, 1, 2, 3, 5]
    plan = ReusePlan(rmap, run_id="r", chunk_size=4, total_params=9, mode=VerifyMode.NONE,
                     rtol=0.0, say=print)
    assert plan.final and plan.touched.tolist() == [0, 1]
    assert plan.only(0) == (2,)  # points 0, 1, 3 reused
    assert plan.only(1) == (1, 2)  # points 4 and 7 reused: 5, 6 computed
    assert plan.only(2) is None  # nothing reused: the whole chunk


def test_a_chunk_of_reused_points_only_computes_nothing_and_checks_wait(tmp_path):
    old = stored(tmp_path, {"axes": {"a": list(range(8))}})
    rmap = lookup(load_space({"axes": {"a": list(range(12))}}), [old])
    plan = ReusePlan(rmap, run_id="r", chunk_size=4, total_params=12, mode=VerifyMode.SAMPLE,
                     rtol=0.0, say=print)
    assert plan.only(0) == () and plan.only(2) is None
    assert not plan.final and plan.touches(1) and not plan.touches(2)  # held until checked
    assert list(plan.checks) == [0]  # at least the source's first chunk
    full = ReusePlan(rmap, run_id="r", chunk_size=4, total_params=12, mode=VerifyMode.FULL,
                     rtol=0.0, say=print)
    assert sorted(full.checks) == [0, 1]
    task = full.verification_tasks(lambda cid: _task(cid), 3)[1]
    assert task.only == (0, 1, 2, 3) and task.verify_of == "reused"
    assert (task.chunk_id, task.start) == (3 + 1, 4)  # its own name; chunk 1's points


@pytest.mark.parametrize("recomputed,rtol,rejected", [
    ([0.0, 10.0, 20.0, 30.0], 0.0, False), ([0.0, 10.0, 20.5, 30.0], 0.0, True),
    ([0.0, 10.0, 20.0 + 1e-9, 30.0], 0.0, True), ([0.0, 10.0, 20.0 + 1e-9, 30.0], 1e-6, False),
    ([0.0, 10.0, 20.5, 30.0], 1e-6, True)])
def test_a_check_that_differs_rejects_its_source_and_its_points_are_computed(
        tmp_path, recomputed, rtol, rejected):
    from ttg_lib.messages import Result
    from ttg_lib.results.writer import value_columns

    old = stored(tmp_path, {"axes": {"a": list(range(8))}})
    new = load_space({"axes": {"a": list(range(12))}})
    said: list[str] = []
    plan = ReusePlan(lookup(new, [old]), run_id="r", chunk_size=4, total_params=12,
                     mode=VerifyMode.SAMPLE, rtol=rtol, say=said.append)
    assert list(plan.checks) == [0] and not plan.final
    result = Result(run_id="r", chunk_id=3, start=0, count=4, worker="w1", attempt=1,
                    started_at=0.0, finished_at=0.0, values=recomputed, verify=True)
    plan.check(0, result, lambda r: value_columns(r, new))
    assert plan.final and plan.points_checked == 4
    assert bool(plan.rejected) is rejected and bool(said) is rejected
    if rejected:
        assert "run old rejected" in said[0] and "8 reused point(s)" in said[0]
        assert len(plan.map) == 0 and plan.only(0) is None  # the whole chunk is computed
    else:
        assert len(plan.map) == 8 and plan.only(1) == ()


def _task(cid: int):
    from ttg_lib.messages import Task

    return Task(run_id="r", chunk_id=cid, start=cid * 4, count=4, work_ms=0.0,
                compute="m:f")


def test_more_random_samples_with_the_same_seed_reuse_exactly_the_first_ones(tmp_path):
    axes = {"x": {"uniform": [0.0, 1.0]}, "k": [1, 2, 3]}
    old = stored(tmp_path, {"mode": "random", "samples": 500, "seed": 7, "axes": axes})
    rmap = lookup(load_space({"mode": "random", "samples": 1000, "seed": 7, "axes": axes}),
                  [old], block=300)
    assert rmap.new_ids.tolist() == list(range(500)) == rmap.old_ids.tolist()
    other = lookup(load_space({"mode": "random", "samples": 1000, "seed": 8, "axes": axes}),
                   [old])
    assert len(other) == 0


def test_a_changed_linspace_reuses_the_points_whose_floats_coincide_exactly(tmp_path):
    old = stored(tmp_path, {"axes": {"x": {"linspace": [0.0, 1.0, 11]}}})
    new_space = load_space({"axes": {"x": {"linspace": [0.0, 1.0, 31]}}})
    old_x = np.linspace(0.0, 1.0, 11).tolist()
    new_x = new_space.columns(0, 31)["x"].tolist()
    expected = [i for i, x in enumerate(new_x) if x in old_x]  # Python's float ==: exact
    assert len(expected) == 8  # 0.1 * 3 is not 0.3: three tenths are computed again
    rmap = lookup(new_space, [old])
    assert rmap.new_ids.tolist() == expected
    assert [old_x[i] for i in rmap.old_ids.tolist()] == [new_x[i] for i in expected]


def test_keys_compare_exact_values_and_minus_zero_is_zero():
    a1, a2 = point_keys({"x": np.array([0.0, -0.0, 0.1, 0.1 + 1e-18,
                                            np.nextafter(0.1, 1.0)]),
                         "s": np.array(["a", "a", "a", "a", "a"])}, ["s", "x"])
    assert a1[0] == a1[1] and a2[0] == a2[1]
    assert a1[2] == a1[3]  # 0.1 + 1e-18 is 0.1 as a float
    assert len(set(a1.tolist())) == 3  # the next float after 0.1 is another point
    b1, _ = point_keys({"x": pa.array([0.1]), "s": pa.array(["a"])}, ["s", "x"])
    assert b1[0] == a1[2]  # Arrow columns (a stored table) hash as numpy ones do
    c1, _ = point_keys({"x": np.array([0.1]), "s": np.array(["b"])}, ["s", "x"])
    assert c1[0] != a1[2]


def test_the_newest_source_wins_and_other_functions_or_axes_are_no_source(tmp_path):
    import json
    import os

    from ttg_lib.reuse import find_sources

    space = load_space({"axes": {"a": [1, 2]}})
    for name, fp, axes in (("r1", "fp1:x", {"a": [1, 2]}), ("r2", "fp1:x", {"a": [1, 2]}),
                           ("r3", "fp1:y", {"a": [1, 2]}), ("r4", "fp1:x", {"a": [1.0]}),
                           ("r5", "fp1:x", {"a": [1, 2], "seed": [0, 1]})):
        record = tmp_path / "runs" / name
        record.mkdir(parents=True)
        (record / "config.json").write_text(json.dumps({"fingerprint": fp}))
        src = stored(record, {"axes": axes}, name="results")
        os.utime(src.table, (1000 + int(name[1]), 1000 + int(name[1])))
    found = find_sources(tmp_path, "new", "fp1:x", space)
    assert [s.run_id for s in found] == ["r2", "r1"]  # r3: another function; r4: float a;
    # r5: another axis (its points at seed 1 are not this space's points)
    rmap = lookup(space, found)
    assert set(rmap.src.tolist()) == {0}  # both have every point: the newest is used
    assert find_sources(tmp_path, "r2", "fp1:x", space)[0].run_id == "r1"  # never itself


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fpmod", None)


def test_the_fingerprint_follows_the_module_source_name_and_version(module_dir):
    path = module_dir / "fpmod.py"
    path.write_text(textwrap.dedent("""
        def f(x):
            return x
        def g(x):
            return x
    """))
    importlib.invalidate_caches()
    config = RunConfig.build(compute="fpmod:f", scale="tiny")
    first = function_fingerprint(config)
    assert first.startswith("fp1:") and first == function_fingerprint(config)
    assert function_fingerprint(RunConfig.build(compute="fpmod:g", scale="tiny")) != first
    assert function_fingerprint(RunConfig.build(compute="fpmod:f", scale="tiny",
                                                version="2")) != first
    path.write_text(path.read_text().replace("return x\n", "return x + 1\n", 1))
    assert function_fingerprint(config) != first
    shipped = RunConfig.build(compute="fpmod:f", scale="tiny", compute_sha256="a" * 64)
    assert function_fingerprint(shipped) != function_fingerprint(
        RunConfig.build(compute="fpmod:f", scale="tiny", compute_sha256="b" * 64))


def test_reuse_settings_are_checked_and_reach_every_front_end():
    from click.testing import CliRunner

    from ttg_lib.api import sweep_options
    from ttg_lib.commands.run import run

    assert RunConfig.build(scale="tiny").reuse == "all"
    with pytest.raises(ConfigError, match="reuse"):
        RunConfig.build(scale="tiny", reuse="some")
    assert {"reuse", "version"} <= set(sweep_options())  # ttg_lib.sweep(..., reuse="none")
    bad = CliRunner().invoke(run, ["--reuse", "some", "--dry-run"])
    assert bad.exit_code == 2 and "'some' is not one of 'all', 'none'" in bad.output
    assert "--function-version" in CliRunner().invoke(run, ["--help"]).output


def test_dict_values_with_points_left_out_stay_typed_columns():
    from ttg_lib.packing import ValueColumns, pack_chunk, unpack_columns

    enc, raw, cols = pack_chunk([None, {"a": 1.5, "b": 2}, None])
    assert enc == "cols"
    values = unpack_columns(cols, memoryview(raw))
    assert isinstance(values, ValueColumns)
    assert list(values) == [{"a": None, "b": None}, {"a": 1.5, "b": 2}, {"a": None, "b": None}]


@pytest.mark.slow
def test_the_reuse_benchmark_runs_and_writes_its_figures(tmp_path):
    import json
    import subprocess

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "reuse.py"), "--points",
                           "100000", "--output-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (out,) = tmp_path.iterdir()
    result = json.loads((out / "reuse.json").read_text())
    assert result["points_reused"] == 100_000 and result["points_new"] == 110_000
    assert result["ok"] and result["command"].startswith("python benchmarks/reuse.py")
    assert "copy_s" in result and (out / "summary.md").exists()


def test_a_dry_run_says_how_many_points_earlier_runs_computed(tmp_path):
    import json

    from click.testing import CliRunner

    from ttg_lib.commands.run import run

    fingerprint = function_fingerprint(RunConfig.build(compute="ttg_lib.examples:train",
                                                       scale="tiny"))
    record = tmp_path / "runs" / "earlier"
    record.mkdir(parents=True)
    (record / "config.json").write_text(json.dumps({"fingerprint": fingerprint}))
    stored(record, {"axes": {"lr": [0.1, 0.2], "depth": [2, 4]}}, name="results")
    space = json.dumps({"axes": {"lr": [0.1, 0.2, 0.3], "depth": [2, 4]}})
    args = ["--dry-run", "--output-dir", str(tmp_path), "--compute", "ttg_lib.examples:train",
            "--space", space]
    shown = CliRunner().invoke(run, args)
    assert shown.exit_code == 0, shown.output
    assert "reused from earlier runs (before their check): 4 points (4 from earlier)" in \
        shown.output
    off = CliRunner().invoke(run, [*args, "--reuse", "none"])
    assert "reused" not in off.output


def test_reused_rows_take_their_new_ids_and_name_the_run_that_computed_them(tmp_path):
    from ttg_lib.reuse import reused_rows

    plain = stored(tmp_path, {"axes": {"a": [1, 2, 3]}}, name="plain")
    table = pq.read_table(plain.table)
    chained = tmp_path / "chained.parquet"  # itself reused its rows from run "first"
    pq.write_table(table.append_column("source_run", pa.array(["first", None, "first"])),
                   chained)
    new = load_space({"axes": {"a": [0, 3, 1, 2]}})  # old a=1,2,3 are new ids 2, 3, 1
    rmap = lookup(new, [Source("plain", plain.table), Source("chained", chained)])
    assert rmap.new_ids.tolist() == [1, 2, 3] and set(rmap.src.tolist()) == {0}
    rows = pa.concat_tables(reused_rows(rmap, 0)).sort_by("param_id")
    assert rows.column("param_id").to_pylist() == [1, 2, 3]
    assert rows.column("a").to_pylist() == [3, 1, 2]
    assert rows.column("value").to_pylist() == [20.0, 0.0, 10.0]  # the old rows' values
    assert rows.column("source_run").cast(pa.string()).to_pylist() == ["plain"] * 3
    from_chained = lookup(new, [Source("chained", chained)])
    rows = pa.concat_tables(reused_rows(from_chained, 0)).sort_by("param_id")
    assert rows.column("source_run").cast(pa.string()).to_pylist() == [
        "first", "first", "chained"]  # a=3 (first), a=1 (first), a=2 (no name: the source)


def test_the_ledger_publishes_checks_then_missing_points_and_writes_one_whole_table(tmp_path):
    """The data plane on frames alone: an earlier run of x in 0..9, then x in 0..13."""
    import dataclasses

    from ttg_lib import load_results
    from ttg_lib.ledger import Ledger
    from ttg_lib.messages import Result
    from ttg_lib.record import RunRecord

    def book_for(run_id: str, xs: int, verify: str) -> tuple[RunConfig, Ledger]:
        space = {"axes": {"x": {"range": [0, xs]}}}
        cfg = RunConfig.build(total_params=xs, chunk_size=4, work_ms=0.0, verify=verify,
                              output_dir=str(tmp_path), monitor="none", run_id=run_id,
                              space=space, compute="ttg_lib.examples:fragile",
                              fingerprint="fp1:test")
        book = Ledger(cfg, load_space(space), RunRecord(cfg.record_dir), lambda: 0.0,
                      say=lambda _line: None)
        book.open()
        book.record.write_json("config.json", cfg.to_dict())
        return cfg, book

    def frame(cfg: RunConfig, task, **changes) -> Result:
        asked = task.only if task.only is not None else range(task.count)
        values = [float((task.start + i) ** 2) if i in asked else None
                  for i in range(task.count)]
        return dataclasses.replace(Result(
            run_id=cfg.run_id, chunk_id=task.chunk_id, start=task.start, count=task.count,
            worker="w1", attempt=1, started_at=0.0, finished_at=0.0, values=values,
            verify=bool(task.verify_of)), **changes)

    cfg, first = book_for("first", 10, "none")
    first.prepare_reuse()
    assert first.reuse is None  # nothing earlier
    first.ingest([frame(cfg, task) for task in first.tasks()])
    assert first.all_done
    first.close()

    cfg, second = book_for("second", 14, "sample")
    second.prepare_reuse()
    tasks = list(second.tasks())
    checks = [t for t in tasks if t.verify_of]
    assert checks and all(t.chunk_id >= 4 and t.verify_of == "reused" for t in checks)
    assert [(t.chunk_id, t.only) for t in tasks if not t.verify_of] == [(3, None)]
    assert not second.all_done
    asks = second.ingest([frame(cfg, t) for t in checks]).asks  # they agree
    assert [(t.chunk_id, t.only) for t in asks] == [(2, (2, 3))]  # x = 10, 11 only
    assert second.collector.chunk_state[0] and second.collector.chunk_state[1]
    got = second.ingest([frame(cfg, t) for t in [*asks, tasks[-1]]])
    second.ingest([frame(cfg, t, worker="w2") for t in got.asks])  # the sampled new chunks
    assert got.asks and second.verdict().values_recomputed == sum(  # their points, not more
        len(t.only) if t.only is not None else t.count for t in got.asks)
    assert any(t.only == (2, 3) for t in got.asks)  # the first chunk of w1: x = 10, 11
    second.copy_reused(until_done=True)
    assert second.all_done and second.points_reused == 10
    second.close()
    assert second.verdict().ok
    df = load_results(cfg.record_dir).sort_values("param_id")
    assert df["x"].tolist() == list(range(14))
    assert df["value"].tolist() == [float(x * x) for x in range(14)]
    assert df["source_run"].astype(str).tolist() == ["first"] * 10 + ["second"] * 4
