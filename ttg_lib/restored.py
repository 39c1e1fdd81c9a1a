"""A resumed run's chunks restored from its record, checked like fresh ones.

A resumed run does not compute again what its record holds. With ``--verify full`` (or
``sample``) those chunks are still recomputed by the workers, and each recomputation is
compared with the rows on disk: the stored value columns are digested here, a row group at a
time (a CRC32 per chunk, no values kept), and the recomputation goes through the same
:meth:`ResultsWriter.value_columns` as the rows did before it is digested the same way. With a
tolerance (``--verify-rtol``) the stored columns of the chunks to recompute are kept for the
comparison, as a fresh run keeps the values of its chunks awaiting one.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .messages import Result
from .results import ResultsWriter, result_files, value_column_names


@dataclass(frozen=True)
class StoredChunk:
    worker: str  # who computed it: its recomputation goes to another worker
    digest: int
    columns: list[pa.Array] | None = None  # kept for a tolerant comparison only
    types: tuple[pa.DataType, ...] = ()  # as stored (a part may predate a widened column)


def values_digest(columns: Sequence[pa.Array]) -> int:
    """A chunk's value columns as one CRC32, equal exactly when the values are."""
    crc = 0
    for column in columns:
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if numeric and column.null_count == 0:
            crc = zlib.crc32(column.to_numpy().tobytes(), crc)
        else:  # text, booleans, nulls: their Python values, as JSON (NaN stays NaN)
            crc = zlib.crc32(json.dumps(column.to_pylist()).encode(), crc)
    return crc


def columns_close(a: Sequence[pa.Array], b: Sequence[pa.Array], rtol: float) -> bool:
    """Floats within ``rtol`` (NaN equal to NaN), everything else exactly equal."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y) or x.type != y.type:
            return False
        if pa.types.is_floating(x.type) and not x.null_count and not y.null_count:
            if not np.allclose(x.to_numpy(), y.to_numpy(), rtol=rtol, atol=0.0,
                               equal_nan=True):
                return False
        elif not x.equals(y):
            return False
    return True


def stored_values(record_dir: str | Path, chunk_size: int, total_params: int,
                  chunks: Iterable[int], want: Callable[[int, str], bool],
                  keep_columns: bool = False) -> dict[int, StoredChunk]:
    """The chunks among ``chunks`` that ``want(chunk, worker)`` picks, with their stored
    values digested; a chunk whose rows are not all there is left out."""
    candidates = set(chunks)
    files = result_files(record_dir)
    pieces: dict[int, list[pa.Table]] = {}
    out: dict[int, StoredChunk] = {}
    for file in files:
        parquet = pq.ParquetFile(file)
        names = value_column_names(parquet.schema_arrow)  # a part's own: from its metadata
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=["param_id", "worker", *names],
                                           use_threads=False)
            for cid, rows in _by_chunk(table, chunk_size):
                if cid not in candidates or cid in out:
                    continue
                pieces.setdefault(cid, []).append(rows)
                size = min(chunk_size, total_params - cid * chunk_size)
                if sum(len(t) for t in pieces[cid]) < size:
                    continue  # the chunk goes on in a later row group
                whole = pa.concat_tables(pieces.pop(cid)).sort_by("param_id")
                worker = str(whole.column("worker")[0].as_py())
                if want(cid, worker):
                    columns = [whole.column(n).combine_chunks() for n in names]
                    out[cid] = StoredChunk(worker, values_digest(columns),
                                           columns if keep_columns else None,
                                           tuple(c.type for c in columns))
    return out


def _by_chunk(table: pa.Table, chunk_size: int) -> Iterable[tuple[int, pa.Table]]:
    """The row group's rows cut where the chunk changes (a chunk's rows are written
    together)."""
    if not len(table):
        return
    cids = table.column("param_id").to_numpy() // chunk_size
    cuts = np.flatnonzero(np.diff(cids)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(cids)]])
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(cids[start]), table.slice(start, end - start)


class DiskComparison:
    """Answers "does this recomputation agree with the rows on disk?" for restored chunks."""

    def __init__(self, stored: dict[int, StoredChunk], writer: ResultsWriter, rtol: float):
        self.stored = stored
        self.writer = writer
        self.rtol = rtol

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self.stored

    def agrees(self, chunk_id: int, result: Result) -> bool:
        return stored_agrees(self.stored.pop(chunk_id), self.writer.value_columns(result),
                             self.rtol)


def stored_agrees(stored: StoredChunk, mine: Sequence[pa.Array], rtol: float) -> bool:
    """Recomputed value columns against stored ones: exactly (their digests), or within
    ``rtol`` when the stored columns were kept."""
    if len(stored.types) == len(mine):  # a part written before its column widened
        mine = [_as_stored(m, t) for m, t in zip(mine, stored.types, strict=True)]
    if values_digest(mine) == stored.digest:
        return True
    return bool(rtol) and stored.columns is not None and columns_close(stored.columns, mine,
                                                                       rtol)


def _as_stored(column: pa.Array, stored: pa.DataType) -> pa.Array:
    """A recomputed column in the type its chunk was stored as, when that changes no value
    (ints stored before the table widened to floats); else as it is (then they differ)."""
    if column.type == stored:
        return column
    try:
        return column.cast(stored)  # a safe cast: 2.5 never becomes 2
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return column
