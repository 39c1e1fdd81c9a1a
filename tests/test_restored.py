"""A resumed run's restored chunks are verified like fresh ones: a recomputation is compared
with the rows on disk (ttg_lib.restored). No broker: results are written as a run writes
them, then read back as a resumed run reads them."""

from __future__ import annotations

import math
from array import array

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttg_lib.messages import Result, ValueColumns, decode_results, encode_results
from ttg_lib.restored import DiskComparison, stored_values
from ttg_lib.results import PARTS_DIR, ResultsWriter
from ttg_lib.verify import ResultCollector

CHUNK = 10


def result(cid: int, values, worker: str = "w-1") -> Result:
    r = Result(run_id="r", chunk_id=cid, start=cid * CHUNK, count=CHUNK, worker=worker,
               attempt=1, started_at=1.0, finished_at=2.0, values=values)
    (back,) = decode_results(encode_results([r]))  # as the orchestrator receives it
    assert isinstance(back, Result)
    return back


def ints(cid: int) -> list[int]:
    return [p * p for p in range(cid * CHUNK, (cid + 1) * CHUNK)]


def floats(cid: int) -> list[float]:
    return [math.sqrt(p) / 3 for p in range(cid * CHUNK, (cid + 1) * CHUNK)]


def dicts(cid: int) -> ValueColumns:
    return ValueColumns({"x": array("q", ints(cid)), "y": array("d", floats(cid))})


def texts(cid: int) -> list[str]:
    return [f"p{p}" for p in range(cid * CHUNK, (cid + 1) * CHUNK)]


def written(tmp_path, make, chunks: int = 6, workers=("w-1", "w-2")) -> ResultsWriter:
    """A dead orchestrator's parts (two row groups per part at most), then the resumed
    run's writer reopening them."""
    first = ResultsWriter(tmp_path, row_group_rows=2 * CHUNK + 5)
    for cid in range(chunks):
        first.add(result(cid, make(cid), workers[cid % len(workers)]))
    first.flush()
    del first  # no close: the orchestrator died
    return ResultsWriter(tmp_path, row_group_rows=2 * CHUNK + 5)


@pytest.mark.parametrize("make", [ints, floats, dicts, texts], ids=["int", "float", "dict",
                                                                   "text"])
def test_an_equal_recomputation_agrees_and_a_different_one_does_not(tmp_path, make):
    writer = written(tmp_path, make)
    stored = stored_values(tmp_path, CHUNK, 6 * CHUNK, range(6), lambda _c, _w: True)
    assert sorted(stored) == list(range(6))
    assert [stored[c].worker for c in range(6)] == ["w-1", "w-2"] * 3
    disk = DiskComparison(stored, writer, rtol=0.0)
    assert disk.agrees(0, result(0, make(0), "w-9"))
    changed = make(1)
    if isinstance(changed, ValueColumns):
        changed.columns["y"][3] += 1e-9
    else:
        changed[3] = changed[3] + (1e-9 if isinstance(changed[3], float) else
                                   "!" if isinstance(changed[3], str) else 1)
    assert not disk.agrees(1, result(1, changed, "w-9"))


def test_only_the_chunks_picked_are_read_and_a_tolerance_keeps_their_columns(tmp_path):
    writer = written(tmp_path, floats)
    picked = stored_values(tmp_path, CHUNK, 6 * CHUNK, {1, 2, 3, 4},
                           lambda cid, worker: worker == "w-2", keep_columns=True)
    assert sorted(picked) == [1, 3]  # asked for and computed by w-2
    assert all(c.columns is not None for c in picked.values())
    close = [v * (1 + 1e-12) for v in floats(3)]
    assert DiskComparison(dict(picked), writer, rtol=1e-9).agrees(3, result(3, close))
    assert not DiskComparison(dict(picked), writer, rtol=0.0).agrees(3, result(3, close))


def test_a_value_changed_on_disk_is_caught_by_the_resumed_runs_verification(tmp_path):
    """The collector sends the restored chunks' recomputations to the comparison: an
    intact chunk agrees, one whose stored value was altered is a wrong result."""
    writer = written(tmp_path, ints, chunks=4)
    part = sorted((tmp_path / PARTS_DIR).glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    values = table.column("value").to_pylist()
    values[3] += 1  # chunk 0's fourth point, altered on disk
    table = table.set_column(table.schema.get_field_index("value"), "value",
                             pa.array(values, pa.int64()))
    pq.write_table(table, part)
    collector = ResultCollector(run_id="r", total_params=4 * CHUNK, chunk_size=CHUNK)
    collector.restore(set(range(4)), set())
    stored = stored_values(tmp_path, CHUNK, 4 * CHUNK, range(4), lambda _c, _w: True)
    collector.recheck(DiskComparison(stored, writer, 0.0),
                      {cid: chunk.worker for cid, chunk in stored.items()})
    assert collector.awaited == 4 and collector.worker_of(1) == "w-2"
    for cid in range(4):
        assert collector.add_verification(result(cid, ints(cid), "w-3"))
    verdict = collector.verdict()
    assert verdict.values_recomputed == 4 * CHUNK and verdict.verifications_missing == 0
    assert verdict.wrong_results == CHUNK and not verdict.ok
    assert "chunk 0: values recomputed by w-3 differ" in verdict.problems[0]
