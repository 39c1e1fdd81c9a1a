"""Reading a slice of a big results table: ``load_results(columns=, filters=)``, the streamed
exports (``ttg results --columns --where``), the notebook's sample. One generated table of
300,000 rows (a 600 x 500 grid, chunks written out of order, some failed) in small row groups,
so that a table many times the batch size is cheap to make."""

from __future__ import annotations

import json
import subprocess
import sys
from array import array
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ttg_lib.commands.results import results as results_command
from ttg_lib.messages import Result
from ttg_lib.results import (
    RESULTS_FILE,
    ResultsError,
    ResultsWriter,
    load_results,
    result_rows,
    sample_results,
)
from ttg_lib.space import load_space

A, B = 600, 500
ROWS = A * B
CHUNK = 2_000
FAILED_CHUNKS = frozenset({7, 100})
SPACE = {"axes": {"a": list(range(A)), "b": list(range(B))}}


def value_of(param_id: np.ndarray) -> np.ndarray:
    return param_id * 0.5 + 1.0


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """A finished record: results.parquet of 300,000 rows in row groups of 10,000."""
    record = tmp_path_factory.mktemp("big") / "run-big"
    order = np.random.default_rng(1).permutation(ROWS // CHUNK)  # chunks finish out of order
    with ResultsWriter(record, load_space(SPACE), row_group_rows=10_000) as writer:
        for chunk in order.tolist():
            start = chunk * CHUNK
            failed = chunk in FAILED_CHUNKS
            values = array("d") if failed else array(
                "d", value_of(np.arange(start, start + CHUNK)).tobytes())
            writer.add(Result(run_id="r", chunk_id=chunk, start=start, count=CHUNK,
                              worker=f"w-{chunk % 3}", attempt=1, started_at=1.0,
                              finished_at=2.0, values=values,
                              error="RuntimeError: boom" if failed else None))
    assert pq.ParquetFile(record / RESULTS_FILE).metadata.num_row_groups >= 30
    return record


def expected_ids(keep) -> np.ndarray:
    ids = np.arange(ROWS)
    return ids[keep(ids, ids // B, ids % B)]


def failed_ids() -> np.ndarray:
    ids = np.arange(ROWS)
    return ids[np.isin(ids // CHUNK, list(FAILED_CHUNKS))]


# -- load_results ---------------------------------------------------------------------------

def test_a_column_slice_and_a_param_id_range_are_exactly_those_rows(table):
    frame = load_results(table, columns=["a", "value"],
                         filters=[("param_id", ">=", 150_000), ("param_id", "<", 153_000)])
    assert list(frame.columns) == ["a", "value"]  # param_id read to sort, then dropped
    ids = np.arange(150_000, 153_000)
    assert frame["a"].tolist() == (ids // B).tolist()
    assert frame["value"].tolist() == value_of(ids).tolist()


def test_or_of_ands_and_an_expression_give_the_same_rows(table):
    dnf = load_results(table, columns=["param_id", "a", "b"],
                       filters=[[("a", "<", 2), ("b", ">=", 490)], [("b", "==", 7)]])
    expression = load_results(table, columns=["param_id", "a", "b"],
                              filters=((pc.field("a") < 2) & (pc.field("b") >= 490))
                              | (pc.field("b") == 7))
    want = expected_ids(lambda i, a, b: ((a < 2) & (b >= 490)) | (b == 7))
    assert dnf["param_id"].tolist() == want.tolist()
    assert expression.equals(dnf)
    assert dnf["a"].tolist() == (want // B).tolist() and dnf["b"].tolist() == (want % B).tolist()


def test_in_not_in_null_and_dictionary_columns(table):
    picked = load_results(table, columns=["param_id"],
                          filters=[("param_id", "in", [5, 9, 299_999])])
    assert picked["param_id"].tolist() == [5, 9, 299_999]
    alone = load_results(table, columns=["param_id"], filters=("param_id", "<", 3))
    assert alone["param_id"].tolist() == [0, 1, 2]  # one predicate needs no list around it
    failed = load_results(table, filters=[("error", "!=", None)])
    assert failed["param_id"].tolist() == failed_ids().tolist()
    assert failed["value"].isna().all() and (failed["error"] == "RuntimeError: boom").all()
    by_worker = load_results(table, columns=["param_id", "worker"],
                             filters=[("worker", "not in", ["w-0", "w-1"]),
                                      ("param_id", "<", 20_000)])
    want = expected_ids(lambda i, a, b: ((i // CHUNK) % 3 == 2) & (i < 20_000))
    assert by_worker["param_id"].tolist() == want.tolist()
    assert set(by_worker["worker"]) == {"w-2"}


def test_no_slice_is_the_whole_table_as_before(table):
    frame = load_results(table)
    assert len(frame) == ROWS and frame["param_id"].tolist() == list(range(ROWS))
    assert list(frame.columns) == ["param_id", "a", "b", "value", "worker", "attempt", "error",
                                   "source_run"]
    assert str(frame["a"].dtype) == "int64"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"columns": ["value", "loss"]},
     "invalid columns='loss': columns are param_id, a, b, value, value_json, worker"),
    ({"filters": [("loss", "<", 1)]}, "no column 'loss'; columns are param_id, a, b, value"),
    ({"filters": pc.field("loss") < 1}, "no column 'loss'; columns are param_id, a, b,"),
    ({"filters": [("a", "~", 1)]}, "operator one of =, ==, !=, <, >, <=, >=, in, not in"),
    ({"filters": [("a", "in", 3)]}, "'in' takes a list of values"),
    ({"filters": [("a", "<", "x")]}, "(the columns' types: param_id: int64, a: int64"),
    ({"filters": "a < 3"}, "a list of (column, op, value) tuples, a list of such lists"),
])
def test_a_bad_column_or_filter_is_one_line_naming_what_is_allowed(table, kwargs, message):
    with pytest.raises(ResultsError) as caught:
        load_results(table, **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_parts_of_a_dead_run_read_in_the_tables_final_layout(tmp_path):
    """Unmerged parts: an error-only part lacks the value column, an int part is widened."""
    writer = ResultsWriter(tmp_path)
    for start, values, error in ((0, array("q", [1, 2]), None), (2, array("d"), "E: x"),
                                 (4, array("d", [0.5, 1.5]), None)):
        writer.add(Result(run_id="r", chunk_id=start, start=start, count=2, worker="w",
                          attempt=1, started_at=1.0, finished_at=2.0, values=values,
                          error=error))
        writer.flush()
    frame = load_results(tmp_path, columns=["value"], filters=pc.field("param_id") != 1)
    assert frame["value"].tolist()[:1] == [1.0] and frame["value"].tolist()[3:] == [0.5, 1.5]
    assert frame["value"].isna().tolist() == [False, True, True, False, False]


# -- exports --------------------------------------------------------------------------------

def test_the_command_exports_a_slice(table, tmp_path):
    runner = CliRunner()
    out = tmp_path / "slice.csv"
    done = runner.invoke(results_command, [str(table), "--format", "csv", "--out", str(out),
                                           "--columns", "param_id,value",
                                           "--where", "param_id >= 1000",
                                           "--where", "param_id < 1010"])
    assert done.exit_code == 0, done.output
    header, *lines = out.read_text().splitlines()
    assert header == '"param_id","value"'
    assert [tuple(map(float, line.split(","))) for line in lines] == \
        [(i, value_of(np.array(i))) for i in range(1000, 1010)]
    done = runner.invoke(results_command, [str(table), "--format", "jsonl", "--out", "-",
                                           "--where", 'worker in ["w-1"]',
                                           "--where", "param_id < 10000"])
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    want = expected_ids(lambda i, a, b: ((i // CHUNK) % 3 == 1) & (i < 10_000))
    assert sorted(r["param_id"] for r in rows) == want.tolist()
    assert {r["worker"] for r in rows} == {"w-1"} and "value_json" not in rows[0]
    sliced = tmp_path / "slice.parquet"
    done = runner.invoke(results_command, [str(table), "--out", str(sliced), "--columns", "b",
                                           "--where", "a = 3"])
    assert done.exit_code == 0 and pq.read_table(sliced).column_names == ["b"]
    assert sorted(pq.read_table(sliced).column("b").to_pylist()) == list(range(B))


@pytest.mark.parametrize(("args", "message"), [
    (["--columns", "nope"], "invalid columns='nope': columns are param_id"),
    (["--where", "nope < 3"], "no column 'nope'; columns are param_id"),
    (["--where", "param_id ~ 3"], "COLUMN OP VALUE with OP one of"),
    (["--failed", "--columns", "a"], "give --columns/--where without it"),
])
def test_a_bad_slice_on_the_command_line_is_one_line(table, tmp_path, args, message):
    done = CliRunner().invoke(results_command, [str(table), "--out", str(tmp_path / "x.csv"),
                                                "--format", "csv", *args])
    assert done.exit_code == 2 and message in done.stderr
    assert "Traceback" not in done.output and not (tmp_path / "x.csv").exists()


EXPORT_PEAK = """
import json, sys, tracemalloc
import pyarrow as pa
import pyarrow.csv, pyarrow.dataset  # their imports (pandas) are not the export's memory
from ttg_lib.results import export_results, reading
reading.ROW_GROUP_ROWS = 10_000  # Parquet out: row groups the size of the table's, not 262,144
tracemalloc.start()
export_results(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"arrow": pa.default_memory_pool().max_memory(),
                  "python": tracemalloc.get_traced_memory()[1]}))
"""


@pytest.mark.slow  # a fresh interpreter each, under tracemalloc: JSON lines take ~20 s of CPU
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_an_export_streams_in_memory_far_below_the_table(table, tmp_path, fmt):
    """The peak of Arrow's memory pool and of Python's allocations while exporting 300,000
    rows in 30 row groups: a row group or two, not the table (a fresh process each)."""
    whole = pq.read_table(table / RESULTS_FILE).nbytes  # ~14 MB in Arrow
    text_whole = ROWS * 60  # the exported text is ~60 bytes a row
    out = tmp_path / f"all.{fmt}"
    done = subprocess.run([sys.executable, "-c", EXPORT_PEAK, str(table), fmt, str(out)],
                          capture_output=True, text=True, check=True)
    peak = json.loads(done.stdout)
    assert peak["arrow"] < whole / 4, (peak, whole)  # ~2 MB: a row group or two
    assert peak["python"] < text_whole / 2, (peak, text_whole)  # JSON: 8,192 rows' dicts
    assert result_rows(out if fmt == "parquet" else table) == ROWS
    if fmt != "parquet":
        assert len(out.read_text().splitlines()) == ROWS + (fmt == "csv")


# -- sampling -------------------------------------------------------------------------------

def test_a_sample_is_uniform_without_repeats_and_the_same_each_time(table):
    first = sample_results(table, 5_000, columns=["param_id", "value"])
    assert len(first) == 5_000 and first["param_id"].is_unique
    assert first["param_id"].is_monotonic_increasing
    assert first.equals(sample_results(table, 5_000, columns=["param_id", "value"]))
    good = first[~first["param_id"].isin(failed_ids())]
    assert good["value"].tolist() == value_of(good["param_id"].to_numpy()).tolist()
    halves = (first["param_id"] < ROWS // 2).sum()
    assert 2_300 < halves < 2_700  # both halves of the table, not the first rows
    assert len(sample_results(table, 10 * ROWS)) == ROWS


def test_the_notebook_samples_a_table_above_its_load_limit(table, monkeypatch):
    """Over LOAD_ROWS the section streams the table through the live chart's sampler: the
    bottom-k sample by param_id hash (failed points apart) and the counts of every row."""
    from ttg_lib.notebook import results as section
    from ttg_lib.notebook.resultchart import results_figure, results_note
    from ttg_lib.notebook.sample import smallest

    monkeypatch.setattr(section, "LOAD_ROWS", 100_000)
    section._load.cache_clear()
    loaded = section.load_run_results(table)
    assert loaded is not None and loaded.expected is None
    bad = failed_ids()
    assert loaded.total == section.Counts(ROWS, len(bad), ROWS - len(bad))
    good = np.setdiff1d(np.arange(ROWS), bad)
    want = np.union1d(good[smallest(good, section.MAX_POINTS - section.MAX_FAILED)],
                      bad[smallest(bad, section.MAX_FAILED)])
    assert loaded.frame["param_id"].tolist() == want.tolist()
    ok = loaded.frame[loaded.frame["error"].isna()]
    assert ok["value"].tolist() == value_of(ok["param_id"].to_numpy()).tolist()
    assert "first 10 of a uniform sample (by param_id hash) of 5,000 of the 300,000 points" \
        in section.results_table(table)
    assert "of 300,000 points drawn" in results_note(table)
    assert results_figure(table) is not None
    monkeypatch.setattr(section, "LOAD_ROWS", ROWS)
    section._load.cache_clear()
    whole = section.load_run_results(table)
    assert whole is not None and len(whole.frame) == ROWS and whole.counts is None
    section._load.cache_clear()


def test_the_writer_side_does_not_import_the_readers_pandas():
    """The orchestrator imports ttg_lib.results to write the table: pyarrow.dataset (which
    imports pandas, ~40 MiB of RSS) is the readers' alone."""
    code = ("import sys, ttg_lib.results; "
            "print('pandas' in sys.modules, 'pyarrow.dataset' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "False"]
