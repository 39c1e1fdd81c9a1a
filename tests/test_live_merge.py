"""The table merged while results arrive (ttg_lib/results/livemerge.py): the same table the
merge of every part at close makes, the close left only the tail, and a writer that dies
meanwhile leaves nothing a reopening writer trusts but its parts."""

from __future__ import annotations

import random
import shutil
import time

import pyarrow.parquet as pq

from ttg_lib.messages import Result
from ttg_lib.results import RESULTS_FILE, ResultsWriter
from ttg_lib.results.writer import merge, part_files

CHUNK = 10
CHUNKS = 400


def result(chunk: int, values: list | None = None) -> Result:
    return Result(run_id="r", chunk_id=chunk, start=chunk * CHUNK, count=CHUNK, worker="w",
                  attempt=1, started_at=0.0, finished_at=0.0,
                  values=values if values is not None else list(range(chunk * CHUNK,
                                                                      (chunk + 1) * CHUNK)))


def arrival(seed: int = 5) -> list[int]:
    """Chunks out of order within a window of 8 (workers finishing in their own time)."""
    order, rng = list(range(CHUNKS)), random.Random(seed)
    for i in range(0, CHUNKS - 8, 4):
        window = order[i:i + 8]
        rng.shuffle(window)
        order[i:i + 8] = window
    return order


def wait_merged(writer: ResultsWriter, rows: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        merged = writer._live._merged_to if writer._live is not None else 0
        if merged >= rows:
            return merged
        time.sleep(0.01)
    raise AssertionError(f"the live merge reached {merged} rows, not {rows}")


def test_the_live_table_is_the_merge_of_every_part_and_close_merges_the_tail(tmp_path):
    record = tmp_path / "run"
    writer = ResultsWriter(record, row_group_rows=20)
    order = arrival()
    for chunk in order[:300]:
        writer.add(result(chunk))
    wait_merged(writer, 2000)  # merged while results still arrive
    for chunk in order[300:]:
        writer.add(result(chunk))
    writer.flush()
    shutil.copytree(record / "results.parts", tmp_path / "parts")
    writer.close()
    table = pq.ParquetFile(record / RESULTS_FILE)
    merge(part_files(tmp_path / "parts"), tmp_path / "all.parquet", table.schema_arrow, 20)
    everything = pq.ParquetFile(tmp_path / "all.parquet")
    assert table.read().equals(everything.read())
    assert table.read().column("param_id").to_pylist() == list(range(CHUNKS * CHUNK))
    assert ([table.metadata.row_group(g).num_rows for g in range(table.num_row_groups)]
            == [everything.metadata.row_group(g).num_rows
                for g in range(everything.num_row_groups)])


def test_a_layout_widened_late_stops_the_live_merge_and_the_close_merges_all(tmp_path):
    writer = ResultsWriter(tmp_path, row_group_rows=20)
    for chunk in range(300):
        writer.add(result(chunk))
    wait_merged(writer, 2000)
    for chunk in range(300, CHUNKS):
        writer.add(result(chunk, [0.5] * CHUNK))  # ints become floats: the table is widened
    writer.close()
    table = pq.read_table(tmp_path / RESULTS_FILE)
    assert str(table.schema.field("value").type) == "double"
    assert table.column("param_id").to_pylist() == list(range(CHUNKS * CHUNK))
    assert table.column("value").to_pylist()[:3] == [0.0, 1.0, 2.0]


def test_a_writer_dead_mid_merge_leaves_its_parts_and_the_reopened_one_finishes(tmp_path):
    """A death while the table is half merged: its footerless file is deleted, the parts
    hold every row (a copy of the record taken mid-run stands for the crash)."""
    writer = ResultsWriter(tmp_path / "run", row_group_rows=20)
    for chunk in arrival()[:300]:
        writer.add(result(chunk))
    writer.flush()
    wait_merged(writer, 2000)
    shutil.copytree(tmp_path / "run", tmp_path / "crashed")
    half = tmp_path / "crashed" / (RESULTS_FILE + ".tmp")
    assert half.exists()  # the table merged so far, with no footer yet
    written = set(arrival()[:300])
    reopened = ResultsWriter(tmp_path / "crashed", row_group_rows=20)
    assert not half.exists() and reopened.rows_written == 300 * CHUNK
    for chunk in sorted(set(range(CHUNKS)) - written):
        reopened.add(result(chunk))
    reopened.close()
    ids = pq.read_table(tmp_path / "crashed" / RESULTS_FILE).column("param_id").to_pylist()
    assert ids == list(range(CHUNKS * CHUNK))
    writer.close()
