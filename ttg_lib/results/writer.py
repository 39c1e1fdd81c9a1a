"""The results writer: a run's rows on disk while it goes, one table at its end.

Durability: every :meth:`ResultsWriter.flush` writes its rows as one complete Parquet file
under ``results.parts/`` (written aside, fsynced, renamed, the directory fsynced), so rows it
reported are on disk, name included, before the broker drops its copies.
:meth:`ResultsWriter.close` merges the parts into ``results.parquet`` a row group at a time,
in ``param_id`` order (each part is sorted when written; :mod:`.ordered` merges them), laid
out once more from every part (a column widened late is widened in all of them). In a fresh
run most of that merge is done while results still arrive (:mod:`.livemerge`: the settled
prefix, on a thread), so the close merges only the tail.

The table is only ever built from complete information: the parts are moved aside
(``results.parts.merged``, one atomic rename) before the finished table takes their place,
so a death at any moment leaves either the parts or the whole table, never a table beside
a subset of the parts it holds. :meth:`_reopen` finishes or undoes whatever step a dead
writer was in.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import crashpoints
from ..arrowcols import int64s
from ..errors import ResultsError
from ..messages import Result
from ..retryfailed import FailedPoints, Supersede
from ..space import Space
from .layout import (
    MERGED_DIR,
    META_KEY,
    MISFIT,
    NO_VALUES,
    PARTS_DIR,
    RESULTS_FILE,
    ValueLayout,
    axis_names,
    schema_for,
    stored_layout,
    value_column_names,
)
from .livemerge import LiveMerge, RowGroups
from .ordered import Keep, is_sorted, sorted_batches
from .rows import rows_table

ROW_GROUP_ROWS = 1 << 18  # results.parquet's row groups. A writer holds every row group's
# metadata (~6 KB) until the footer and copies it to write the footer: at 65,536 rows 10^9
# points made 15,259 groups, ~180 MiB at the close. A group is buffered whole while written,
# so 1 Mi rows cost ~70 MiB more during the run; 256 Ki: 3,815 groups at 10^9
PART_ROWS = 65_536  # a part (one flush) at most: what the orchestrator buffers between flushes


class ResultsWriter:
    """Streams results into ``results.parquet`` in ``record_dir`` (a run's record).

    ``add`` buffers a chunk's rows; every ``PART_ROWS`` rows (fewer if ``row_group_rows``,
    the table's row groups, is smaller; or on ``flush``) they go to disk as a durable part,
    and ``add``/``flush`` return the chunk ids that made it there (the broker's copies of
    those may be released). ``close`` writes ``results.parquet``.
    Opening a record that already has parts (or a finished table) continues it: resume.
    """

    def __init__(self, record_dir: str | Path, space: Space | None = None, *,
                 row_group_rows: int = ROW_GROUP_ROWS):
        self.dir = Path(record_dir)
        self.path = self.dir / RESULTS_FILE
        self.parts = self.dir / PARTS_DIR
        self.space = space
        self.row_group_rows = row_group_rows
        self.part_rows = min(row_group_rows, PART_ROWS)
        self.rows_written = 0  # rows in this record's table, those before a resume included
        self._buffer: list[Result] = []
        self._buffered_rows = 0
        self._layout: ValueLayout = NO_VALUES
        self._next_part = 0
        self._closed = False
        self._reopen()
        self.supersede = Supersede.load(self.dir)  # --retry-failed: old failed rows to drop
        self._live: LiveMerge | None = None  # the table merged as the parts come (fresh runs)
        self._live_ok = (self._next_part == 0 and self.supersede is None  # TTG_LIVE_MERGE=0:
                         and os.environ.get("TTG_LIVE_MERGE", "1") != "0")  # all at close
        self.reused: np.ndarray | None = None  # sorted param_ids whose rows are copied in

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, result: Result) -> list[int]:
        """Buffer one chunk's rows; returns the chunk ids written to disk by this call.

        A result outside the space raises ResultsError here, before it is buffered: the
        collector refuses such results first, and a bad one never costs the good ones."""
        if result.start < 0 or result.count < 0 or (
                self.space is not None and result.start + result.count > self.space.size):
            raise ResultsError("result", f"chunk {result.chunk_id}",
                               f"params {result.start}..{result.start + result.count - 1} "
                               f"are outside the space")
        if self._closed:  # the table is final: a row now would be lost, so never silently
            raise ResultsError("result", f"chunk {result.chunk_id}",
                               "it arrived after results.parquet was written")
        self._buffer.append(result)
        self._buffered_rows += result.count
        return self.flush() if self._buffered_rows >= self.part_rows else []

    def add_many(self, results: Iterable[Result]) -> list[int]:
        durable: list[int] = []
        for result in results:
            durable += self.add(result)
        return durable

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def flush(self) -> list[int]:
        """Write the buffered rows as one durable part; returns their chunk ids."""
        if not self._buffer:
            return []
        batch = sorted(self._buffer, key=lambda r: r.start)  # a part is in param_id order
        table, layout = rows_table(batch, self.space, self._layout)
        if self.supersede is not None:  # --retry-failed: only the retried points' rows
            table = self.supersede.new_rows(table)
        if self.reused is not None and len(self.reused):  # their rows come from the source
            table = table.filter(pa.array(~in_sorted(table.column("param_id").to_numpy(),
                                                     self.reused)))
        part = self._write_part(table)
        self._buffer, self._buffered_rows = [], 0  # only once on disk: a full disk loses nothing
        self._layout = layout
        self._merge_live(part, table, [(r.start, r.start + r.count) for r in batch])
        return [r.chunk_id for r in batch]

    def _merge_live(self, part: Path, table: pa.Table, ranges: list[tuple[int, int]]) -> None:
        """A part to the live merge (started by the first); any doubt stops it for good."""
        if not self._live_ok or self.supersede is not None or self.reused is not None:
            return self._stop_live()
        schema = self._schema()
        if self._live is None:
            try:
                self._live = LiveMerge(self._tmp, schema, self.row_group_rows,
                                       write_options(schema))
            except OSError:  # the part is on disk: the close merges every part instead
                return self._stop_live()
        if not (self._live.schema.equals(schema, check_metadata=True)
                and self._live.add(part, int64s(table.column("param_id")), ranges)):
            self._stop_live()

    def _stop_live(self) -> None:
        self._live_ok = False
        if self._live is not None:
            self._live.abandon()
            self._live = None

    @property
    def _tmp(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def _schema(self) -> pa.Schema:
        final = self._layout if self._layout.mode != "none" else ValueLayout.infer(None)
        return schema_for(self.space, final)

    def add_rows(self, table: pa.Table, layout: ValueLayout) -> None:
        """Rows made elsewhere (reused from an earlier run, under that table's ``layout``)
        as one durable part; the table's layout widens to hold them."""
        self.flush()
        self._stop_live()  # rows from elsewhere: the close merges every part
        self._layout = self._layout.merged(layout)
        self._write_part(table.replace_schema_metadata(
            {**(table.schema.metadata or {}), META_KEY: layout.to_json()}))

    def _write_part(self, table: pa.Table) -> Path:
        if not self.parts.exists():
            self.parts.mkdir(parents=True)
            fsync_dir(self.dir)
        part = self.parts / f"part-{self._next_part:06d}.parquet"
        write_durably(part, lambda handle: pq.write_table(
            table, handle, row_group_size=max(1, len(table)),
            **write_options(table.schema)))
        self._next_part += 1
        self.rows_written += len(table)
        return part

    def close(self) -> Path:
        """Flush, then merge the parts into ``results.parquet`` (one row group at a time);
        closing again changes nothing. A failed flush leaves the writer open (retry)."""
        if self._closed:
            return self.path
        self.flush()
        schema, live, self._live = self._schema(), self._live, None
        parts = part_files(self.parts)
        tmp = self._tmp
        merged_live = live is not None and live.schema.equals(schema, check_metadata=True) \
            and live.finish()  # merged as the run went: the tail in, the footer, fsynced
        if live is not None and not merged_live:
            live.abandon()
        if not merged_live:
            self._merge_all(parts, tmp, schema)
        crashpoints.reach("table-written")
        merged = self.dir / MERGED_DIR
        if self.parts.exists():
            os.replace(self.parts, merged)  # the parts aside, in one step
        fsync_dir(self.dir)
        crashpoints.reach("parts-aside")
        os.replace(tmp, self.path)
        fsync_dir(self.dir)
        crashpoints.reach("table-in-place")
        shutil.rmtree(merged, ignore_errors=True)
        Supersede.done(self.dir)
        self._closed = True
        return self.path

    def _merge_all(self, parts: list[Path], tmp: Path, schema: pa.Schema) -> None:
        """Every part into ``tmp`` (no live merge, or it gave up)."""
        if len(parts) == 1 and self.supersede is None and pq.read_schema(parts[0]).equals(
                schema, check_metadata=True) and is_sorted(parts[0]):
            shutil.copyfile(parts[0], tmp)  # a small run: its one part is the table already
            _fsync_file(tmp)
        else:
            merge(parts, tmp, schema, self.row_group_rows, durable=True,
                  keep=self.supersede.old_rows(parts) if self.supersede else None)

    def retry(self, failed: FailedPoints) -> None:
        """--retry-failed: the failed rows of ``failed`` are replaced by the new ones."""
        self.supersede = Supersede.extend(self.supersede, failed, self._next_part)
        self.supersede.save(self.dir)

    def value_columns(self, result: Result) -> list[pa.Array]:
        """A result's value columns exactly as this table would store them: what the
        recomputation of a chunk restored from disk is compared with."""
        return value_columns(result, self.space, self._layout)

    # -- internals --

    def _reopen(self) -> None:
        """Continue a record: finish or undo a dead writer's close, drop half-written files,
        keep the parts, adopt their layout."""
        merged = self.dir / MERGED_DIR
        if merged.exists():
            if self.path.exists():  # the table holds every part: they are redundant
                shutil.rmtree(merged)
            elif not self.parts.exists():  # died before the table was in place: undo
                os.replace(merged, self.parts)
        if self.path.exists() and self.parts.exists():  # a close by an older TTG, cut short
            os.replace(self.parts, merged)
            shutil.rmtree(merged)
        self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)
        for tmp in self.parts.glob("*.tmp"):
            tmp.unlink()
        existing = part_files(self.parts) or ([self.path] if self.path.exists() else [])
        if not existing:
            return
        axes = list(self.space.axis_names) if self.space is not None else []
        stored = axis_names(pq.read_schema(existing[0]))
        if axes != stored:
            raise ResultsError("resume", str(self.dir),
                               f"it holds results of axes {stored}, not {axes}")
        if existing == [self.path]:  # a finished table: it becomes the first part again
            self.parts.mkdir(parents=True, exist_ok=True)
            existing = [self.parts / "part-000000.parquet"]
            os.replace(self.path, existing[0])
            fsync_dir(self.parts)
            fsync_dir(self.dir)
        # the newest part with values settles the layout (most often the last: one footer)
        self._layout = next((lay for lay in map(stored_layout, reversed(existing))
                             if lay.mode != "none"), NO_VALUES)
        self.rows_written = sum(pq.read_metadata(f).num_rows for f in existing)
        self._next_part = int(existing[-1].stem.split("-")[1]) + 1


def value_columns(result: Result, space: Space | None,
                  layout: ValueLayout = NO_VALUES) -> list[pa.Array]:
    """A result's value columns as a table of ``layout`` would store them."""
    table, _layout = rows_table([result], space, layout, widen=False)
    return [table.column(name).combine_chunks() for name in value_column_names(table.schema)]


def in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """A mask: which of ``values`` are in ``sorted_set`` (a sorted search, no hash table)."""
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def fsync_dir(path: Path) -> None:
    """A rename or a new file is durable only once its directory is."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_durably(path: Path, write: Any) -> None:
    """Write aside, fsync, rename, fsync the directory: whole on disk or absent."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    crashpoints.reach("part-written")
    os.replace(tmp, path)
    crashpoints.reach("part-renamed")
    fsync_dir(path.parent)


def write_options(schema: pa.Schema) -> dict[str, Any]:
    """How each column is encoded, chosen by measurement (benchmarks/results/
    2026-12-05-close-profile): 14.2 bytes a row became 8.0, and writing and merging take
    less than half the CPU. Dictionary pages for text and for the columns that repeat (worker
    and run names, written plain they were 32 bytes a row before compression; ``attempt``,
    nearly always 1), not for values (a value column rarely repeats; trying costs more than
    the bytes it saves); ``param_id`` delta-encoded (consecutive ids: a bit or two a row);
    statistics where they are read (param_id ranges for resume and the merge, value_json's
    null count for exports)."""
    repeating = [f.name for f in schema
                 if f.type == pa.string() or pa.types.is_dictionary(f.type)
                 or f.name == "attempt"]
    return {"use_dictionary": repeating,
            "column_encoding": ({"param_id": "DELTA_BINARY_PACKED"}
                                if "param_id" in schema.names else None),
            "write_statistics": [name for name in ("param_id", MISFIT) if name in schema.names],
            "compression": os.environ.get("TTG_RESULTS_COMPRESSION", "snappy")}


def part_files(parts_dir: Path) -> list[Path]:
    return sorted(parts_dir.glob("part-*.parquet")) if parts_dir.exists() else []


def batches(files: Sequence[Path]) -> Iterator[pa.RecordBatch]:
    """Every row group of every file, one at a time (a part is one row group)."""
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):  # threads only contend on a busy host
            yield from parquet.read_row_group(group, use_threads=False).to_batches()


def merge(files: Sequence[Path], out: Path, schema: pa.Schema, rows: int,
          durable: bool = False, keep: Keep | None = None,
          source: Iterable[pa.RecordBatch] | None = None) -> None:
    """Parts into one file of ``schema`` in ``param_id`` order, rows coalesced into row
    groups of about ``rows`` (``keep``: which rows of a file, if not all of them;
    ``source``: the rows to write instead, in order, e.g. a slice); ``durable``: ``out`` is
    written in place and fsynced (the caller renames it)."""
    def write(handle: Any) -> None:
        groups = RowGroups(pq.ParquetWriter(handle, schema, **write_options(schema)), rows)
        tables = (sorted_batches(files, schema, keep) if source is None else
                  (pa.Table.from_batches([b]) for b in source))
        for table in tables:
            groups.put(table)
        groups.close(schema, empty=not files)
    if durable:
        with open(out, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    else:
        write_durably(out, write)


class NoResults:
    """keep_results=false: the run's results are checked and dropped (as before there was a
    results table), to measure what keeping them costs."""

    rows_written = 0
    path = None

    def add(self, result: Result) -> list[int]:
        return []

    def flush(self) -> list[int]:
        return []

    def close(self) -> None:
        return None
