"""Values that travel typed (result frames) and results kept as a table (results.parquet).
No broker involved: frames are encoded and decoded as a backend would."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from array import array

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ttg_lib.commands.results import results as results_command
from ttg_lib.config import ConfigError
from ttg_lib.messages import (
    FRAME_MAGIC,
    PROTOCOL_VERSION,
    PointFailure,
    Result,
    ValueColumns,
    compact_json,
    decode_results,
    encode_results,
)
from ttg_lib.results import (
    PARTS_DIR,
    RESULTS_FILE,
    ResultsError,
    ResultsWriter,
    export_results,
    load_results,
    stored_chunks,
)
from ttg_lib.space import Space, load_space


def result(start: int, values, *, chunk_id: int | None = None, count: int | None = None,
           error: str | None = None, worker: str = "w-1", attempt: int = 1) -> Result:
    return Result(run_id="r", chunk_id=start if chunk_id is None else chunk_id, start=start,
                  count=len(values) if count is None else count, worker=worker,
                  attempt=attempt, started_at=1.0, finished_at=2.0, values=values, error=error)


def over_the_wire(*results: Result) -> list[Result]:
    back = decode_results(encode_results(list(results)))
    assert all(isinstance(r, Result) and not r.corrupt for r in back)
    return back  # type: ignore[return-value]


# --- frames -----------------------------------------------------------------------------

def test_floats_travel_as_float64_exactly():
    floats = [0.1, -0.0, 1e308, 5e-324, math.inf, 1 / 3, 2.0**53]
    (back,) = over_the_wire(result(0, floats))
    assert isinstance(back.values, array) and back.values.typecode == "d"
    assert [struct.pack("<d", v) for v in back.values] == [struct.pack("<d", v) for v in floats]
    (nan,) = over_the_wire(result(0, [math.nan, 1.0]))
    assert math.isnan(nan.values[0]) and nan.values.typecode == "d"
    frame = encode_results([result(0, [0.5, 0.25])])
    assert frame.endswith(struct.pack("<2d", 0.5, 0.25))  # raw float64, no JSON


def test_ints_stay_int64_and_other_values_choose_the_narrowest_exact_encoding():
    ints, mixed, big_mixed, flags, text = over_the_wire(
        result(0, [1, -2, 2**63 - 1]), result(3, [1, 2.5]), result(5, [2**60, 0.5]),
        result(7, [True, False]), result(9, ["a", None]))
    assert ints.values.typecode == "q" and list(ints.values) == [1, -2, 2**63 - 1]
    assert mixed.values.typecode == "d" and list(mixed.values) == [1.0, 2.5]
    assert list(big_mixed.values) == [2**60, 0.5] and type(big_mixed.values[0]) is int  # JSON
    assert list(flags.values) == [True, False] and type(flags.values[0]) is bool
    assert text.values == ["a", None]


def test_dicts_of_scalars_travel_as_one_typed_column_per_key():
    values = [{"loss": 0.5, "steps": 10, "ok": True, "tag": "a"},
              {"loss": 1.25, "steps": 11, "ok": False, "tag": None},
              {"loss": 2, "steps": 12, "ok": True, "tag": "c"}]
    frame = encode_results([result(0, values)])
    (back,) = decode_results(frame)
    assert isinstance(back.values, ValueColumns) and not back.corrupt
    columns = back.values.columns
    assert columns["loss"].typecode == "d" and columns["steps"].typecode == "q"
    assert columns["ok"] == [True, False, True] and columns["tag"] == ["a", None, "c"]
    assert back.values == values and list(back.values) == values and len(back.values) == 3
    assert back.values[1] == values[1] and back.values[-1] == values[-1]
    header = json.loads(frame[8:8 + struct.unpack(">I", frame[4:8])[0]])
    row = dict(zip(header["fields"], header["rows"][0], strict=True))
    assert row["enc"] == "cols"
    assert [c[:2] for c in row["cols"]] == [["loss", "f64"], ["steps", "i64"], ["ok", "json"],
                                            ["tag", "json"]]
    # key order may differ from dict to dict; nested values or other keys go as JSON
    reordered, nested, other_keys = over_the_wire(
        result(0, [{"a": 1, "b": 2.0}, {"b": 3.0, "a": 4}]), result(2, [{"a": [1, 2]}]),
        result(3, [{"a": 1}, {"b": 1}]))
    assert list(reordered.values) == [{"a": 1, "b": 2.0}, {"a": 4, "b": 3.0}]
    assert nested.values == [{"a": [1, 2]}] and other_keys.values == [{"a": 1}, {"b": 1}]


def test_a_flipped_bit_in_a_typed_column_is_flagged():
    frame = bytearray(encode_results([result(0, [{"loss": 0.5, "n": 1}] * 4)]))
    frame[-1] ^= 1
    (hit,) = decode_results(bytes(frame))
    assert hit.corrupt and len(hit.values) == 4


def test_a_cols_row_without_a_matching_schema_is_an_undecodable_frame():
    frame = encode_results([result(0, [{"x": 1.0}, {"x": 2.0}])])
    header_len = struct.unpack(">I", frame[4:8])[0]
    header = json.loads(frame[8:8 + header_len])
    header["rows"][0][header["fields"].index("cols")] = [["x", "f64", 999]]  # sizes ≠ payload
    forged = compact_json(header).encode()
    body = FRAME_MAGIC + struct.pack(">I", len(forged)) + forged + frame[8 + header_len:]
    assert decode_results(body) == [body]


def test_frames_from_before_typed_columns_still_decode():
    fields = ["run_id", "chunk_id", "start", "count", "worker", "attempt", "started_at",
              "finished_at", "error", "redelivered", "enc", "size", "checksum"]
    import zlib
    ints, text = array("q", [7, 8]).tobytes(), b'[0.5,"x"]'
    rows = [["r", 0, 0, 2, "w", 1, 0.0, 1.0, None, False, "i64", len(ints), zlib.crc32(ints)],
            ["r", 1, 2, 2, "w", 1, 0.0, 1.0, None, False, "json", len(text), zlib.crc32(text)]]
    header = compact_json({"v": PROTOCOL_VERSION, "fields": fields, "rows": rows}).encode()
    old = FRAME_MAGIC + struct.pack(">I", len(header)) + header + ints + text
    first, second = decode_results(old)
    assert list(first.values) == [7, 8] and second.values == [0.5, "x"]
    assert not first.corrupt and not second.corrupt


# --- the table --------------------------------------------------------------------------

SPACE = {"axes": {"lr": {"logspace": [-3, -1, 5]}, "depth": [2, 4, 6, 8],
                  "act": ["relu", "tanh", "gelu"]}}


def simulate(lr: float, depth: int, act: str) -> float:
    return lr * depth * (1.5 if act == "relu" else 1.0)


def write_run(record, space: Space, fn, chunk: int = 7, row_group_rows: int = 16,
              fail: frozenset[int] = frozenset()) -> list[int]:
    """Chunks computed as a worker would, sent through a frame, written as the orchestrator
    would; returns the chunk ids reported durable before close."""
    durable = []
    with ResultsWriter(record, space, row_group_rows=row_group_rows) as writer:
        for cid, start in enumerate(range(0, space.size, chunk)):
            count = min(chunk, space.size - start)
            if cid in fail:
                r = result(start, [], chunk_id=cid, count=count, error="RuntimeError: boom",
                           attempt=4)
            else:
                r = result(start, [fn(**p) for p in space.points(start, count)], chunk_id=cid,
                           worker=f"w-{cid % 2}")
            durable += writer.add(*over_the_wire(r))
    return durable


def test_a_5x4x3_grid_gives_60_rows_whose_values_equal_a_direct_call(tmp_path):
    space = load_space({"axes": {"a": {"linspace": [0, 1, 5]}, "b": [1, 2, 3, 4],
                                 "c": ["x", "y", "z"]}})
    durable = write_run(tmp_path, space, lambda a, b, c: a * b + len(c) / 3)
    assert durable and not (tmp_path / PARTS_DIR).exists()
    frame = load_results(tmp_path)
    assert len(frame) == 60 and frame["param_id"].tolist() == list(range(60))
    assert list(frame.columns) == ["param_id", "a", "b", "c", "value", "worker", "attempt",
                                   "error", "source_run"]  # the run that computed it
    for row in frame.itertuples(index=False):
        assert space.point(row.param_id) == {"a": row.a, "b": row.b, "c": row.c}
        assert row.value == row.a * row.b + len(row.c) / 3  # floats exactly
    assert str(frame["value"].dtype) == "float64" and str(frame["b"].dtype) == "int64"
    assert frame["error"].isna().all() and set(frame["worker"]) == {"w-0", "w-1"}
    parquet = pq.ParquetFile(tmp_path / RESULTS_FILE)
    assert parquet.schema_arrow.field("value").type == "double"
    assert parquet.metadata.num_rows == 60


def test_parts_stay_small_while_the_table_has_large_row_groups(tmp_path):
    """A writer holds every row group's metadata until the footer (and copies it to write
    it): 10^9 points in 65,536-row groups took ~180 MiB at the close. The table's groups
    are ROW_GROUP_ROWS, the parts (what the orchestrator buffers) PART_ROWS at most."""
    from array import array as typed

    from ttg_lib.results.writer import PART_ROWS, ROW_GROUP_ROWS

    assert ROW_GROUP_ROWS >= 4 * PART_ROWS
    total = ROW_GROUP_ROWS + PART_ROWS + 10
    with ResultsWriter(tmp_path) as writer:
        for start in range(0, total, 10_000):
            count = min(10_000, total - start)
            writer.add(result(start, typed("q", range(start, start + count))))
        writer.flush()
        parts = [pq.ParquetFile(f).metadata.num_rows
                 for f in (tmp_path / PARTS_DIR).glob("*.parquet")]
        assert sum(parts) == total and max(parts) <= PART_ROWS + 10_000
    groups = pq.ParquetFile(tmp_path / RESULTS_FILE).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [
        ROW_GROUP_ROWS, total - ROW_GROUP_ROWS]


def test_small_parts_are_coalesced_into_row_groups_on_close(tmp_path):
    space = load_space(SPACE)
    with ResultsWriter(tmp_path, space, row_group_rows=25) as writer:
        for start in range(0, 60, 5):
            writer.add(result(start, [1.0] * 5))
            assert writer.flush() == [start]  # a durable part of 5 rows each time
        assert len(list((tmp_path / PARTS_DIR).glob("*.parquet"))) == 12
    groups = pq.ParquetFile(tmp_path / RESULTS_FILE).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [25, 25, 10]
    with pytest.raises(ValueError, match="outside the space"):
        ResultsWriter(tmp_path / "other", space).add(result(58, [1.0] * 5))
    with pytest.raises(ResultsError, match="after results.parquet was written"):
        writer.add(result(0, [2.0] * 5))  # closed: a row now would never reach the table
    assert pq.ParquetFile(tmp_path / RESULTS_FILE).metadata.num_rows == 60


def test_dict_values_give_one_column_per_key_and_a_failing_point_its_error(tmp_path):
    space = load_space(SPACE)

    def fn(lr, depth, act):
        return {"loss": simulate(lr, depth, act), "steps": depth * 10, "act": act}

    write_run(tmp_path, space, fn, chunk=6, fail=frozenset({3}))
    frame = load_results(tmp_path)
    assert len(frame) == 60
    assert [c for c in frame.columns if c.startswith("value")] == ["value.loss",
                                                                   "value.steps", "value.act"]
    failed = frame[frame["error"].notna()]
    assert failed["param_id"].tolist() == list(range(18, 24))
    assert (failed["error"] == "RuntimeError: boom").all() and (failed["attempt"] == 4).all()
    assert failed[["value.loss", "value.steps", "value.act"]].isna().all().all()
    good = frame[frame["error"].isna()]
    for row in good.to_dict("records"):
        point = {k: row[k] for k in ("lr", "depth", "act")}
        assert fn(**point) == {"loss": row["value.loss"], "steps": row["value.steps"],
                               "act": row["value.act"]}
    assert str(frame["value.steps"].dtype) == "Int64"  # integers with nulls stay integers
    schema = pq.read_schema(tmp_path / RESULTS_FILE)
    assert str(schema.field("value.loss").type) == "double"
    assert str(schema.field("value.steps").type) == "int64"


def test_a_later_batch_of_another_shape_goes_to_json_text(tmp_path):
    with ResultsWriter(tmp_path, row_group_rows=4) as writer:
        writer.add(result(0, [1, 2]))               # settles value as int64
        writer.add(result(2, [0.5, 1.5]))           # floats: the column widens to float64
        writer.add(result(4, [{"a": 1}, {"a": 2}]))  # dicts do not fit a number
        writer.add(result(6, [3, 4]))
    frame = load_results(tmp_path)
    assert str(frame["value"].dtype) == "float64"
    assert frame["value"].tolist()[:4] == [1.0, 2.0, 0.5, 1.5]
    assert frame["value"].tolist()[6:] == [3.0, 4.0]
    assert frame["value"].isna().tolist() == [False] * 4 + [True] * 2 + [False] * 2
    assert frame["value_json"].tolist()[4:6] == ['{"a":1}', '{"a":2}']


def test_ints_then_floats_in_separate_parts_widen_the_whole_table(tmp_path):
    """Finding 8(b): the first flush fixes no type; the table is laid out from all parts."""
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, [1, 2]))
        writer.flush()                              # a part of int64 values
        writer.add(result(2, [0.5, 1.5]))
        writer.flush()                              # a part of float64 values
        assert load_results(tmp_path)["value"].tolist() == [1.0, 2.0, 0.5, 1.5]  # parts
    frame = load_results(tmp_path)
    assert str(frame["value"].dtype) == "float64" and "value_json" not in frame.columns
    assert frame["value"].tolist() == [1.0, 2.0, 0.5, 1.5]


def test_an_error_only_first_flush_does_not_make_every_value_text(tmp_path):
    """Finding 8(a): dead-lettered chunks first, floats later: the values stay float64."""
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, [], count=4, error="failed after 1 attempts"))
        writer.flush()
        writer.add(result(4, [2.5, 3.0]))
        writer.flush()
    frame = load_results(tmp_path)
    assert str(frame["value"].dtype) == "float64"
    assert frame["value"].mean() == 2.75


def test_a_lone_surrogate_is_kept_as_json_text_and_stops_nothing(tmp_path):
    """Finding 3: a string from os.listdir with a lone surrogate never stops the writer; it
    is kept exactly, as JSON text (its escape holds the surrogate)."""
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, ["a", "name-\udcff", "c"]))
        writer.flush()
        writer.add(result(3, ["d", "e"]))
    frame = load_results(tmp_path)
    assert len(frame) == 5 and frame["error"].isna().all()
    assert json.loads(frame["value_json"][1]) == "name-\udcff"
    assert frame["value"].tolist()[3:] == ["d", "e"]


def test_a_value_that_cannot_be_stored_is_that_points_error(tmp_path):
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, [0.5, 1.0]))
        writer.add(result(2, [1.5, {1, 2}, 2.5]))  # a set: neither a column nor JSON
        writer.add(result(5, [3.5, 4.5]))
    frame = load_results(tmp_path)
    assert frame["error"].notna().tolist() == [False, False, False, True, False, False, False]
    assert "cannot be stored" in frame["error"][3]
    assert frame["value_json"][2] == "1.5" and frame["value_json"][4] == "2.5"
    assert frame["value"].tolist()[5:] == [3.5, 4.5]


def test_error_batches_first_then_values_settle_the_columns(tmp_path):
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, [], count=3, error="boom"))
        writer.add(result(3, [0.25, 0.5]))
    frame = load_results(tmp_path)
    assert frame["value"].tolist()[3:] == [0.25, 0.5] and frame["value"].isna().sum() == 3
    assert "value_json" not in frame.columns  # never used: not shown


def test_json_values_are_kept_as_json_text(tmp_path):
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, [[1, 2], {"nested": {"x": 1}}]))
        writer.add(result(2, ["plain", 7]))
    frame = load_results(tmp_path)
    assert [json.loads(v) for v in frame["value"]] == [[1, 2], {"nested": {"x": 1}}, "plain", 7]


def test_an_empty_writer_still_writes_a_table_with_columns(tmp_path):
    ResultsWriter(tmp_path, load_space(SPACE)).close()
    frame = load_results(tmp_path)
    assert len(frame) == 0 and {"param_id", "lr", "depth", "act", "value"} <= set(frame.columns)


def test_parts_survive_a_dead_orchestrator_and_a_reopened_writer_continues(tmp_path):
    space = load_space(SPACE)
    writer = ResultsWriter(tmp_path, space, row_group_rows=20)
    durable = []
    for cid in range(4):  # 40 rows: two durable parts of 20, nothing buffered
        start = cid * 10
        durable += writer.add(result(start, [simulate(**p) for p in space.points(start, 10)],
                                     chunk_id=cid))
    assert durable == [0, 1, 2, 3]
    writer.add(result(40, [0.0] * 10, chunk_id=4))  # buffered only: lost with the process
    del writer  # the orchestrator dies here: no close
    assert stored_chunks(tmp_path, 10, 60) == {0, 1, 2, 3}  # what a resume need not redo
    (tmp_path / PARTS_DIR / "part-000002.parquet.tmp").write_bytes(b"half a file")
    assert not (tmp_path / RESULTS_FILE).exists()
    assert load_results(tmp_path)["param_id"].tolist() == list(range(40))  # parts readable

    with ResultsWriter(tmp_path, space, row_group_rows=20) as resumed:
        for cid in (4, 5):
            start = cid * 10
            resumed.add(result(start, [simulate(**p) for p in space.points(start, 10)],
                               chunk_id=cid))
    frame = load_results(tmp_path)
    assert frame["param_id"].tolist() == list(range(60))
    assert frame["value"].tolist() == [simulate(**space.point(i)) for i in range(60)]
    assert not (tmp_path / PARTS_DIR).exists()

    assert stored_chunks(tmp_path, 10, 60) == set(range(6))
    with pytest.raises(ValueError, match="holds results of axes"):
        ResultsWriter(tmp_path)  # another space's record: refused before anything is written
    ResultsWriter(tmp_path, space).close()  # reopening a finished table keeps it
    assert load_results(tmp_path)["value"].tolist() == frame["value"].tolist()


def test_exports_and_the_results_command(tmp_path, monkeypatch):
    space = load_space(SPACE)
    record = tmp_path / "outputs" / "runs" / "run-1"
    write_run(record, space, simulate, fail=frozenset({0}))
    monkeypatch.chdir(tmp_path)
    csv_path = export_results("run-1", "csv", output_dir="outputs")
    assert csv_path.name == "results-run-1.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0] == ('"param_id","lr","depth","act","value","worker","attempt","error",'
                        '"source_run"')
    assert len(lines) == 61
    jsonl = export_results(record, "jsonl", tmp_path / "r.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 60 and sorted(r["param_id"] for r in rows) == list(range(60))
    assert all((r["error"] is None) == (r["value"] is not None) for r in rows)
    copy = export_results(record / RESULTS_FILE, "parquet", tmp_path / "copy.parquet")
    assert pq.read_table(copy).to_pylist() == pq.read_table(record / RESULTS_FILE).to_pylist()

    runner = CliRunner()
    done = runner.invoke(results_command, ["run-1", "--format", "jsonl", "--out", "-"])
    assert done.exit_code == 0 and len(done.stdout.splitlines()) == 60
    done = runner.invoke(results_command, ["run-1", "--out", "x.parquet"])
    assert done.exit_code == 0 and (tmp_path / "x.parquet").exists()
    missing = runner.invoke(results_command, ["no-such-run"])
    assert missing.exit_code == 2
    assert "invalid run='no-such-run': no results.parquet in outputs/runs/no-such-run" \
        in missing.stderr
    assert "Traceback" not in missing.output


def test_a_missing_run_is_one_clear_error(tmp_path):
    with pytest.raises(ResultsError) as caught:
        load_results("nope", output_dir=tmp_path)
    assert isinstance(caught.value, ConfigError) and "no such run record" in str(caught.value)
    with pytest.raises(ResultsError, match="one of parquet, csv, jsonl"):
        export_results("nope", "xlsx", output_dir=tmp_path)


def test_ttg_lib_load_results_is_the_same_function():
    import ttg_lib
    from ttg_lib import results
    from ttg_lib.commands import results as results_cli
    assert ttg_lib.load_results is results.load_results
    assert results_cli.FORMATS == results.FORMATS


def test_the_command_line_starts_without_pyarrow():
    import subprocess
    import sys
    code = "import sys, ttg_lib.commands.results; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow  # a script in its own interpreter (pyarrow's import alone is a second)
def test_the_writer_benchmark_runs_end_to_end():
    """A smoke of benchmarks/results_write.py (the figures come from a full run)."""
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "results_write.py"
    proc = subprocess.run([sys.executable, str(script), "--points", "3000", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases = json.loads(proc.stdout)
    assert [c["case"] for c in cases] == ["int", "int+space", "dict+space"]
    assert all(c["rows_written"] == c["points"] > 2_500 and c["rows_per_s"] > 0
               and c["peak_rss_mib"] > 0 for c in cases)


def test_closing_twice_keeps_the_table(tmp_path):
    writer = ResultsWriter(tmp_path)
    writer.add(Result(run_id="r", chunk_id=0, start=0, count=3, worker="w", attempt=1,
                      started_at=0, finished_at=0, values=[1, 2, 3]))
    assert writer.close() == writer.close()
    assert pq.read_table(tmp_path / RESULTS_FILE).num_rows == 3


def test_jsonl_export_writes_null_for_nan_and_infinities(tmp_path):
    """Finding 15: strict JSON has no NaN or Infinity."""
    with ResultsWriter(tmp_path) as writer:
        writer.add(result(0, [float("nan"), float("inf"), -float("inf"), 1.5]))
    out = export_results(tmp_path, "jsonl", tmp_path / "out.jsonl")
    rows = [json.loads(line, parse_constant=lambda name: pytest.fail(name))
            for line in out.read_text().splitlines()]
    assert [row["value"] for row in rows] == [None, None, None, 1.5]


def test_an_axis_named_like_a_value_column_does_not_block_a_resume(tmp_path):
    """Finding 11: value columns come from the table's metadata, not a name prefix."""
    space = load_space({"axes": {"value_scale": [1.0, 2.0], "x": {"range": [0, 3]}}})
    with ResultsWriter(tmp_path, space) as writer:
        writer.add(result(0, [0.5] * 6, count=6))
    with ResultsWriter(tmp_path, space) as resumed:  # reopened: the axes check passes
        assert resumed.rows_written == 6
    assert load_results(tmp_path)["value_scale"].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_a_table_beside_leftover_parts_is_never_rebuilt_from_them(tmp_path):
    """Finding 2: a close cut between the table and the parts' removal; the reopened writer
    keeps the whole table, not the parts that survived."""
    import shutil

    with ResultsWriter(tmp_path, row_group_rows=2) as writer:
        for start in range(0, 10, 2):
            writer.add(result(start, [start, start + 1]))
    with ResultsWriter(tmp_path / "one") as writer:
        writer.add(result(0, [0, 1]))
    parts = tmp_path / PARTS_DIR
    parts.mkdir()
    shutil.copy(tmp_path / "one" / RESULTS_FILE, parts / "part-000000.parquet")  # a survivor
    (tmp_path / (RESULTS_FILE + ".tmp")).write_bytes(b"half a file")
    ResultsWriter(tmp_path).close()
    assert load_results(tmp_path)["param_id"].tolist() == list(range(10))
    assert not (tmp_path / (RESULTS_FILE + ".tmp")).exists()



def test_a_table_of_failed_points_only_takes_its_type_from_the_values_that_come_later(
        tmp_path):
    """Every point failed (--max-failures stopped the run): the closed table's value column
    is JSON, all null. Reopened (--resume --retry-failed), the ints that come are ints."""
    failed = [PointFailure(i, "RuntimeError: not fixed") for i in range(4)]
    with ResultsWriter(tmp_path) as writer:
        writer.add(dataclasses.replace(result(0, [None] * 4), failures=failed))
    assert pq.read_schema(tmp_path / RESULTS_FILE).field("value").type == "string"
    with ResultsWriter(tmp_path) as resumed:
        resumed.add(result(4, [8, 10, 12, 14], chunk_id=1))
    table = pq.read_table(tmp_path / RESULTS_FILE)
    assert table.schema.field("value").type == "int64"
    assert table.column("value").to_pylist() == [None] * 4 + [8, 10, 12, 14]
