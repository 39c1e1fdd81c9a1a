"""results.parquet in param_id order (issue 22, item 7): parts sorted when written, merged in
order at close, and every export in that order, a dead orchestrator's parts included."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttg_lib.messages import Result
from ttg_lib.record import read_jsonl
from ttg_lib.results import PARTS_DIR, RESULTS_FILE, ResultsWriter, export_results, load_results
from ttg_lib.results.ordered import row_groups, sorted_batches
from ttg_lib.space import load_space

SPACE = load_space({"axes": {"a": list(range(40)), "b": [1, 2, 3, 4, 5]}})  # 200 points


def chunk(cid: int, size: int = 5) -> Result:
    start = cid * size
    return Result(run_id="r", chunk_id=cid, start=start, count=size, worker=f"w-{cid % 3}",
                  attempt=1, started_at=1.0, finished_at=2.0,
                  values=[float(start + i) for i in range(size)])


def ids_of(path) -> list[int]:
    return pq.read_table(path, columns=["param_id"]).column(0).to_pylist()


def test_chunks_in_any_arrival_order_close_into_a_table_in_param_id_order(tmp_path):
    order = list(range(40))
    random.Random(7).shuffle(order)
    with ResultsWriter(tmp_path, SPACE, row_group_rows=30) as writer:
        for n, cid in enumerate(order):
            writer.add(chunk(cid))
            if n % 3 == 2:
                writer.flush()  # parts of 3 chunks each, in arrival order
        parts = sorted((tmp_path / PARTS_DIR).glob("*.parquet"))
        assert len(parts) > 10
        for part in parts:  # each part sorted as it is written
            ids = ids_of(part)
            assert ids == sorted(ids)
    assert ids_of(tmp_path / RESULTS_FILE) == list(range(200))
    meta = pq.ParquetFile(tmp_path / RESULTS_FILE).metadata
    ranges = [(meta.row_group(g).column(0).statistics.min,
               meta.row_group(g).column(0).statistics.max) for g in range(meta.num_row_groups)]
    assert meta.num_row_groups > 1
    assert all(high < low for (_, high), (low, _) in zip(ranges[:-1], ranges[1:], strict=True))
    values = pq.read_table(tmp_path / RESULTS_FILE).column("value").to_pylist()
    assert values == [float(i) for i in range(200)]  # rows moved whole, not just their ids


def test_a_single_part_written_unsorted_by_an_older_ttg_is_sorted_at_close(tmp_path):
    with ResultsWriter(tmp_path, SPACE) as writer:
        for cid in (3, 1, 2, 0):
            writer.add(chunk(cid))
        writer.flush()
        part = next((tmp_path / PARTS_DIR).glob("*.parquet"))
        table = pq.read_table(part)
        shuffled = table.take(pa.array(np.random.default_rng(1).permutation(len(table))))
        pq.write_table(shuffled, part)  # as a part of before this change: arrival order
    assert ids_of(tmp_path / RESULTS_FILE) == list(range(20))


def test_exports_of_a_dead_orchestrators_parts_are_in_param_id_order(tmp_path):
    record = tmp_path / "run-1"
    writer = ResultsWriter(record, SPACE, row_group_rows=10)
    for cid in (7, 2, 9, 0, 5, 1, 8, 3, 6, 4):
        writer.add(chunk(cid))  # a part every 2 chunks, ranges interleaved
    del writer  # no close: only the parts
    assert not (record / RESULTS_FILE).exists()
    out = export_results(record, "parquet", tmp_path / "x.parquet")
    assert ids_of(out) == list(range(50))
    csv = export_results(record, "csv", tmp_path / "x.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in csv[1:]] == list(range(50))
    jsonl = export_results(record, "jsonl", tmp_path / "x.jsonl").read_text().splitlines()
    assert [json.loads(line)["param_id"] for line in jsonl] == list(range(50))
    assert load_results(record)["param_id"].tolist() == list(range(50))


def test_the_merge_holds_only_the_row_groups_that_overlap(tmp_path):
    """Parts over consecutive ranges (a run's in-order arrival, a few chunks out of place):
    the merge never holds more than the overlapping groups, whatever the table's length."""
    files = []
    for p in range(50):
        ids = np.arange(p * 100, p * 100 + 100)
        if p + 1 < 50:
            ids[-3:] += 100  # three late rows of the next range
        ids = np.sort(np.unique(ids))
        path = tmp_path / f"part-{p:06d}.parquet"
        pq.write_table(pa.table({"param_id": pa.array(ids, pa.int64())}), path)
        files.append(path)
    schema = pa.schema([pa.field("param_id", pa.int64())])
    assert len(row_groups(files)) == 50
    out, largest = [], 0
    for table in sorted_batches(files, schema):
        largest = max(largest, table.num_rows)
        out += table.column(0).to_pylist()
    assert out == sorted(out) and len(out) == sum(pq.read_metadata(f).num_rows for f in files)
    assert largest <= 200  # a step emits about one group's rows, never the whole table


def test_pandas_is_in_the_base_install():
    """`ttg_lib.load_results` after scripts/demo.sh (the base install) needs no extra."""
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert any(r.split(">")[0] == "pandas" for r in project["project"]["dependencies"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_runs_table_is_in_param_id_order(make_config, backend_name, broker_url):
    """Three workers, small chunks and a flush every second: parts overlap, rows arrive out of
    order; the closed table is in param_id order, one group after the other."""
    from ttg_lib.run import execute

    cfg = make_config(backend=backend_name, total_params=6000, chunk_size=20, work_ms=0.2,
                      workers=3, verify="none")
    summary = execute(cfg, say=lambda _line: None)
    assert summary["ok"] and summary["results_rows"] == 6000
    assert ids_of(summary["results_file"]) == list(range(6000))
    arrived = [row["chunk_id"] for row in read_jsonl(cfg.record_dir / "chunks.jsonl")]
    assert arrived != sorted(arrived)  # the order came from the merge, not the arrival


def test_the_close_never_imports_pandas(tmp_path):
    """pandas is installed now, and pyarrow's to_numpy would import it (~50 MiB) into the
    orchestrator: the merge reads param_id as a view of its buffer instead."""
    import subprocess
    import sys

    script = (
        "import random, sys\n"
        "from ttg_lib.messages import Result\n"
        "from ttg_lib.results import ResultsWriter\n"
        f"w = ResultsWriter({str(tmp_path)!r}, row_group_rows=50)\n"
        "ids = list(range(20)); random.Random(3).shuffle(ids)\n"
        "for c in ids:\n"
        "    w.add(Result(run_id='r', chunk_id=c, start=c * 10, count=10, worker='w',\n"
        "                 attempt=1, started_at=0.0, finished_at=0.0, values=[1.0] * 10))\n"
        "w.close()\n"
        "assert 'pandas' not in sys.modules, 'the close imported pandas'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert ids_of(tmp_path / RESULTS_FILE) == list(range(200))


def test_int64s_reads_slices_and_chunks_without_a_copy():
    from ttg_lib.arrowcols import int64s

    array = pa.chunked_array([pa.array(np.arange(10)), pa.array(np.arange(10, 15))])
    assert int64s(array).tolist() == list(range(15))
    sliced = array.chunk(0).slice(3, 4)
    assert int64s(sliced).tolist() == [3, 4, 5, 6]
    assert int64s(sliced.slice(4)).tolist() == []
    with pytest.raises(ValueError, match="nulls"):
        int64s(pa.array([1, None], pa.int64()))
