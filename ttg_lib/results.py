"""Results kept as a table: ``results.parquet`` in a run's record, written while the run goes.

One row per point: ``param_id``, one column per axis of the space, the value (``value`` for a
scalar, ``value.<key>`` for each key of a dict of scalars, JSON text otherwise), ``worker``,
``attempt`` and ``error`` (a dead-lettered point has its error and null values).

The value columns settle from the first batch. A later batch of another shape (floats where
the first were strings, other dict keys, ...) is kept whole as JSON text in ``value_json``
with null typed values: a table never refuses a result.

Durability: every :meth:`ResultsWriter.flush` writes its rows as one complete Parquet file
under ``results.parts/`` (written aside, fsynced, renamed), so rows it reported are on disk
even if the orchestrator dies; :meth:`ResultsWriter.close` merges the parts into
``results.parquet`` a row group at a time. Memory stays one row group whatever the run's size.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import arrowcols
from .config import ConfigError
from .failures import row_columns
from .messages import Result, ValueColumns, compact_json
from .retryfailed import FailedPoints, Supersede
from .space import Space

if TYPE_CHECKING:
    import pandas as pd

RESULTS_FILE = "results.parquet"
PARTS_DIR = "results.parts"
ROW_GROUP_ROWS = 65_536
FORMATS = ("parquet", "csv", "jsonl")
MISFIT = "value_json"  # a batch whose shape differs from the first one's lands here
_META_KEY = b"ttg.values"
_EXACT_IN_FLOAT = 2**53
_INT64 = (-(2**63), 2**63 - 1)
_ARROW = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
          "string": pa.string(), "json": pa.string()}
_AXIS_KINDS = {"int": "int64", "float": "float64", "bool": "bool", "str": "string"}


class ResultsError(ConfigError):
    """The results of a run cannot be found or written as asked; one line for the CLI."""


# --- the value columns --------------------------------------------------------------------

@dataclass(frozen=True)
class ValueLayout:
    """How values become columns: ``scalar`` (one ``value`` column), ``dict`` (a column per
    key) or ``json`` (``value`` as JSON text). Kinds: int64, float64, bool, string, json."""

    mode: str
    columns: tuple[tuple[str, str], ...]  # (column name, kind)

    @classmethod
    def infer(cls, values: Sequence[Any] | None) -> ValueLayout:
        if values is None:
            return cls("json", (("value", "json"),))
        if isinstance(values, ValueColumns):
            return cls("dict", tuple((f"value.{key}", _kind_of(column))
                                     for key, column in values.columns.items()))
        kind = _kind_of(values)
        return cls("json" if kind == "json" else "scalar", (("value", kind),))

    def fit(self, values: Sequence[Any]) -> list[pa.Array] | None:
        """The values as this layout's columns, or None when they do not fit it."""
        if self.mode == "dict":
            if not isinstance(values, ValueColumns):
                return None
            keys = [name.removeprefix("value.") for name, _kind in self.columns]
            if len(values.columns) != len(keys) or not set(values.columns) >= set(keys):
                return None
            arrays = [_fit(values.columns[key], kind)
                      for key, (_name, kind) in zip(keys, self.columns, strict=True)]
            return None if any(a is None for a in arrays) else arrays  # type: ignore[return-value]
        if isinstance(values, ValueColumns):
            values = list(values)
        array = _fit(values, self.columns[0][1])
        return None if array is None else [array]

    def to_json(self) -> bytes:
        return compact_json({"mode": self.mode, "columns": self.columns}).encode()

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> ValueLayout:
        data = json.loads((schema.metadata or {})[_META_KEY])
        return cls(data["mode"], tuple((name, kind) for name, kind in data["columns"]))


def value_column_names(schema: pa.Schema) -> list[str]:
    """The columns that hold a chunk's values: what verification compares."""
    layout = ValueLayout.from_schema(schema)
    return [name for name, _kind in layout.columns] + ([MISFIT] if MISFIT in schema.names
                                                       else [])


def _kind_of(values: Sequence[Any]) -> str:
    typecode = getattr(values, "typecode", None)
    if typecode == "q":
        return "int64"
    if typecode == "d":
        return "float64"
    types = set(map(type, values)) - {type(None)}
    if types == {bool}:
        return "bool"
    if types == {str}:
        return "string"
    if types == {int} and _ints_within(values, *_INT64):
        return "int64"
    if types and types <= {int, float} and _ints_within(values, -_EXACT_IN_FLOAT,
                                                         _EXACT_IN_FLOAT):
        return "float64"
    return "json"


def _ints_within(values: Iterable[Any], low: int, high: int) -> bool:
    return all(low <= v <= high for v in values if type(v) is int)


def _fit(values: Sequence[Any], kind: str) -> pa.Array | None:
    """One column of values as an Arrow array of ``kind``; None when that would change a
    value (a float into int64, an int above 2**53 into float64, a string into a number)."""
    if kind == "json":
        return arrowcols.strings([None if v is None else compact_json(v) for v in values])
    typecode = getattr(values, "typecode", None)
    if typecode in ("q", "d"):
        data = np.frombuffer(values, dtype=np.int64 if typecode == "q" else np.float64)
        if (kind, typecode) in (("int64", "q"), ("float64", "d")):
            return arrowcols.from_numpy(data)
        if (kind, typecode) == ("float64", "q") and (np.abs(data) <= _EXACT_IN_FLOAT).all():
            return arrowcols.from_numpy(data.astype(np.float64))
        return None
    present = set(map(type, values))
    types = present - {type(None)}
    if not types <= _ALLOWED[kind]:
        return None
    if int in types and not _ints_within(values, *(_INT64 if kind == "int64" else
                                                   (-_EXACT_IN_FLOAT, _EXACT_IN_FLOAT))):
        return None
    if kind == "string":
        return arrowcols.strings(values)
    valid = None
    if type(None) in present:
        valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
        values = [0 if v is None else v for v in values]
    return arrowcols.from_numpy(np.array(values, dtype=_NUMPY[kind]), valid)


_ALLOWED = {"int64": {int}, "float64": {int, float}, "bool": {bool}, "string": {str}}
_NUMPY = {"int64": np.int64, "float64": np.float64, "bool": np.bool_}


# --- the writer ---------------------------------------------------------------------------

class ResultsWriter:
    """Streams results into ``results.parquet`` in ``record_dir`` (a run's record).

    ``add`` buffers a chunk's rows; every ``row_group_rows`` rows (or on ``flush``) they go
    to disk as a durable part, and ``add``/``flush`` return the chunk ids that made it there
    (the broker's copies of those may be released). ``close`` writes ``results.parquet``.
    Opening a record that already has parts (or a finished table) continues it: resume.
    """

    def __init__(self, record_dir: str | Path, space: Space | None = None, *,
                 row_group_rows: int = ROW_GROUP_ROWS):
        self.dir = Path(record_dir)
        self.path = self.dir / RESULTS_FILE
        self.parts = self.dir / PARTS_DIR
        self.space = space
        self.row_group_rows = row_group_rows
        self.rows_written = 0
        self._buffer: list[Result] = []
        self._buffered_rows = 0
        self._layout: ValueLayout | None = None
        self._schema: pa.Schema | None = None
        self._next_part = 0
        self._closed = False
        self._reopen()
        self.supersede = Supersede.load(self.dir)  # --retry-failed: old failed rows to drop

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, result: Result) -> list[int]:
        """Buffer one chunk's rows; returns the chunk ids written to disk by this call.

        A result outside the space raises ValueError here, before it is buffered: the
        collector refuses such results first, and a bad one never costs the good ones."""
        if result.start < 0 or result.count < 0 or (
                self.space is not None and result.start + result.count > self.space.size):
            raise ValueError(f"chunk {result.chunk_id} (params {result.start}.."
                             f"{result.start + result.count - 1}) is outside the space")
        self._buffer.append(result)
        self._buffered_rows += result.count
        return self.flush() if self._buffered_rows >= self.row_group_rows else []

    def add_many(self, results: Iterable[Result]) -> list[int]:
        durable: list[int] = []
        for result in results:
            durable += self.add(result)
        return durable

    def flush(self) -> list[int]:
        """Write the buffered rows as one durable part; returns their chunk ids."""
        if not self._buffer:
            return []
        batch = self._buffer
        table = self._table(batch)
        if self.supersede is not None:  # --retry-failed: only the retried points' rows
            table = self.supersede.new_rows(table)
        self.parts.mkdir(parents=True, exist_ok=True)
        part = self.parts / f"part-{self._next_part:06d}.parquet"
        _write_durably(part, lambda handle: pq.write_table(
            table, handle, row_group_size=len(table), **_write_options(table.schema)))
        self._buffer, self._buffered_rows = [], 0  # only once on disk: a full disk loses nothing
        self._next_part += 1
        self.rows_written += len(table)
        return [r.chunk_id for r in batch]

    def close(self) -> Path:
        """Flush, then merge the parts into ``results.parquet`` (one row group at a time);
        closing again changes nothing."""
        if self._closed:
            return self.path
        self._closed = True
        self.flush()
        if self._schema is None:  # nothing was ever added: an empty table, still with columns
            self._settle([])
        parts = _part_files(self.parts)
        assert self._schema is not None
        if len(parts) == 1 and self.supersede is None:  # a small run: its one part is the
            os.replace(parts[0], self.path)  # table already
        else:
            _merge(parts, self.path, self._schema, self.row_group_rows,
                   self.supersede.old_batches(parts, _batches) if self.supersede else None)
        shutil.rmtree(self.parts, ignore_errors=True)
        Supersede.done(self.dir)
        return self.path

    def retry(self, failed: FailedPoints) -> None:
        """--retry-failed: the failed rows of ``failed`` are replaced by the new ones."""
        self.supersede = Supersede.extend(self.supersede, failed, self._next_part)
        self.supersede.save(self.dir)

    def value_columns(self, result: Result) -> list[pa.Array]:
        """A result's value columns exactly as this table would store them: what the
        recomputation of a chunk restored from disk is compared with."""
        table = self._table([result])
        return [table.column(name).combine_chunks() for name in value_column_names(table.schema)]

    # -- internals --

    def _reopen(self) -> None:
        """Continue a record: drop half-written parts, keep the rest, adopt their schema."""
        for tmp in self.parts.glob("*.tmp"):
            tmp.unlink()
        existing = _part_files(self.parts) or ([self.path] if self.path.exists() else [])
        if not existing:
            return
        schema = pq.read_schema(existing[0])
        axes = list(self.space.axis_names) if self.space is not None else []
        stored = [n for n in schema.names if n not in _FIXED and not n.startswith("value")]
        if axes != stored:
            raise ValueError(f"{self.dir} holds results of axes {stored}, not {axes}")
        if existing == [self.path]:  # a finished table: it becomes the first part again
            self.parts.mkdir(parents=True, exist_ok=True)
            existing = [self.parts / "part-000000.parquet"]
            os.replace(self.path, existing[0])
        self._schema, self._layout = schema, ValueLayout.from_schema(schema)
        self._next_part = int(existing[-1].stem.split("-")[1]) + 1

    def _settle(self, batch: list[Result]) -> None:
        """The value columns follow the first batch with values (JSON text if none has)."""
        first = next((r.values for r in batch if _has_values(r)), None)
        self._layout = ValueLayout.infer(first)
        fields = [pa.field("param_id", pa.int64(), nullable=False)]
        if self.space is not None:
            fields += [pa.field(axis.name, _ARROW[_AXIS_KINDS[axis.kind]])
                       for axis in self.space.axes]
        fields += [pa.field(name, _ARROW[kind]) for name, kind in self._layout.columns]
        if self._layout.mode != "json":
            fields.append(pa.field(MISFIT, pa.string()))
        # a handful of workers for a million rows: their names as a dictionary column
        fields += [pa.field("worker", WORKER_TYPE), pa.field("attempt", pa.int64()),
                   pa.field("error", pa.string())]
        self._schema = pa.schema(fields, metadata={_META_KEY: self._layout.to_json()})

    def _table(self, batch: list[Result]) -> pa.Table:
        if self._schema is None:
            self._settle(batch)
        layout, schema = self._layout, self._schema
        assert layout is not None and schema is not None
        counts = np.fromiter((r.count for r in batch), dtype=np.int64, count=len(batch))
        columns: dict[str, Any] = {"param_id": arrowcols.from_numpy(np.concatenate(
            [np.arange(r.start, r.start + r.count, dtype=np.int64) for r in batch]))}
        if self.space is not None:
            chunks = [self.space.columns(r.start, r.count) for r in batch]
            for axis in self.space.axes:
                columns[axis.name] = arrowcols.from_numpy(
                    np.concatenate([c[axis.name] for c in chunks]))
        pieces: dict[str, list[pa.Array]] = {name: [] for name, _kind in layout.columns}
        misfits: list[pa.Array] = []
        errors: list[str | None] = []
        any_misfit = False
        for r in batch:
            error, arrays = r.error, None
            if error is None and len(r.values) != r.count:
                error = f"the result had {len(r.values)} values for {r.count} params"
            if error is None:
                arrays = layout.fit(r.values)
            for (name, kind), array in zip(layout.columns, arrays or [None] * len(pieces),
                                           strict=True):
                pieces[name].append(array if array is not None
                                    else arrowcols.nulls(r.count, _ARROW[kind]))
            misfit = error is None and arrays is None
            any_misfit |= misfit
            misfits.append(arrowcols.strings([compact_json(v) for v in r.values]) if misfit
                           else _NO_TEXT)
            errors.append(error)
        for name, _kind in layout.columns:
            columns[name] = pa.concat_arrays(pieces[name])
        if layout.mode != "json":
            columns[MISFIT] = (pa.concat_arrays([m if m is not _NO_TEXT
                                                 else arrowcols.nulls(r.count, pa.string())
                                                 for m, r in zip(misfits, batch, strict=True)])
                               if any_misfit else arrowcols.nulls(int(counts.sum()),
                                                                  pa.string()))
        columns["worker"] = arrowcols.repeat([r.worker for r in batch], counts, decode=False)
        columns["attempt"] = arrowcols.from_numpy(np.repeat(
            np.fromiter((r.attempt for r in batch), dtype=np.int64, count=len(batch)), counts))
        columns["error"] = (arrowcols.repeat(errors, counts) if any(errors)
                            else arrowcols.nulls(int(counts.sum()), pa.string()))
        per_point = row_columns(batch, errors, counts)  # points that failed alone
        if per_point is not None:
            columns["error"], columns["attempt"] = per_point
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


_FIXED = ("param_id", "worker", "attempt", "error")
WORKER_TYPE = pa.dictionary(pa.int32(), pa.string())
_NO_TEXT = pa.nulls(0, pa.string())  # a marker: this chunk's rows fitted the typed columns


def _has_values(result: Result) -> bool:
    return (result.error is None and len(result.values) == result.count > 0
            and len(result.failures) < result.count)  # all failed: no values to type by


def _write_durably(path: Path, write: Any) -> None:
    """Write aside, fsync, rename: a part is either whole on disk or absent."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_options(schema: pa.Schema) -> dict[str, Any]:
    """Dictionary pages for text (worker names, errors, categories), not for numbers (a
    value column rarely repeats; trying costs more than the bytes it saves); statistics
    where they are read (param_id ranges for resume, value_json's null count for exports)."""
    return {"use_dictionary": [f.name for f in schema if f.type == pa.string()],
            "write_statistics": [name for name in ("param_id", MISFIT) if name in schema.names],
            "compression": os.environ.get("TTG_RESULTS_COMPRESSION", "snappy")}


def _part_files(parts_dir: Path) -> list[Path]:
    return sorted(parts_dir.glob("part-*.parquet")) if parts_dir.exists() else []


def _batches(files: Sequence[Path]) -> Iterator[pa.RecordBatch]:
    """Every row group of every file, one at a time (a part is one row group)."""
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):  # threads only contend on a busy host
            yield from parquet.read_row_group(group, use_threads=False).to_batches()


def _merge(files: Sequence[Path], out: Path, schema: pa.Schema, rows: int,
           batches: Iterable[pa.RecordBatch] | None = None) -> None:
    """Parts into one file (``batches``: their rows, if not all of them), rows coalesced
    into row groups of about ``rows``."""
    def write(handle: Any) -> None:
        with pq.ParquetWriter(handle, schema, **_write_options(schema)) as writer:
            pending: list[pa.RecordBatch] = []
            size = 0
            for batch in _batches(files) if batches is None else batches:
                pending.append(batch)
                size += batch.num_rows
                if size >= rows:
                    writer.write_table(pa.Table.from_batches(pending, schema),
                                       row_group_size=size)
                    pending, size = [], 0
            if pending or not files:
                writer.write_table(pa.Table.from_batches(pending, schema))
    _write_durably(out, write)


# --- reading and exporting ----------------------------------------------------------------

def result_files(run: str | Path, output_dir: str | Path = "outputs") -> list[Path]:
    """The Parquet file(s) holding a run's results: ``results.parquet``, or the parts of a
    run whose orchestrator died before merging them. ``run`` is a run id, a record
    directory or a Parquet file."""
    given = Path(run)
    if given.is_file():
        return [given]
    record = given if given.is_dir() else Path(output_dir) / "runs" / str(run)
    if (record / RESULTS_FILE).is_file():
        return [record / RESULTS_FILE]
    parts = _part_files(record / PARTS_DIR)
    if parts:
        return parts
    where = record if record.exists() else f"{record} (no such run record)"
    raise ResultsError("run", str(run), f"no {RESULTS_FILE} in {where}; give a run id "
                                        f"under {output_dir}/runs, a record directory or a "
                                        f"Parquet file")


def stored_chunks(record_dir: str | Path, chunk_size: int, total_params: int) -> set[int]:
    """The chunks whose every row is already on disk (``results.parquet`` or its parts): what
    a resumed run need not publish again. Reads only ``param_id``, a row group at a time."""
    try:
        files = result_files(record_dir)
    except ResultsError:
        return set()
    chunks = -(-total_params // chunk_size)
    rows = np.zeros(chunks, dtype=np.int64)
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            ids = parquet.read_row_group(group, columns=["param_id"], use_threads=False)
            ids = ids.column(0).to_numpy()
            ids = ids[(ids >= 0) & (ids < total_params)]
            rows += np.bincount(ids // chunk_size, minlength=chunks)
    expected = np.full(chunks, chunk_size, dtype=np.int64)
    expected[-1] = total_params - chunk_size * (chunks - 1)
    return set(np.flatnonzero(rows >= expected).tolist())


def failed_chunks(record_dir: str | Path, chunk_size: int, total_params: int) -> set[int]:
    """The chunks on disk as dead-lettered (their rows carry an error): a resumed run keeps
    them as failed, it does not count them done."""
    try:
        files = result_files(record_dir)
    except ResultsError:
        return set()
    failed: dict[int, int] = {}
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=["param_id", "error"],
                                           use_threads=False)
            ids = table.column("param_id").to_numpy()
            errors = table.column("error").is_valid().to_numpy(zero_copy_only=False)
            for chunk in (ids[errors] // chunk_size).tolist():
                failed[chunk] = failed.get(chunk, 0) + 1
    # a chunk whose points failed alone is done (its other rows have values): failed means
    # every row of it failed, as a dead-lettered chunk's do
    return {c for c, n in failed.items() if n >= min(chunk_size, total_params - c * chunk_size)}


def load_results(run: str | Path, output_dir: str | Path = "outputs") -> pd.DataFrame:
    """A run's results as a pandas DataFrame, one row per point, sorted by ``param_id``
    (``value_json`` only when some batch did not fit the typed columns)."""
    try:
        import pandas as pd
    except ImportError:
        raise ResultsError("pandas", None, "load_results needs pandas: pip install pandas "
                                           "(or 'ttg[notebooks]')") from None
    files = result_files(run, output_dir)
    table = pa.concat_tables([pq.read_table(f) for f in files]).sort_by("param_id")
    if MISFIT in table.column_names and table.column(MISFIT).null_count == len(table):
        table = table.drop_columns([MISFIT])
    frame = table.to_pandas()
    for name in table.column_names:  # int64 with nulls (failed points) stays integer
        column = table.column(name)
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get)
    return frame


def export_results(run: str | Path, format: str = "parquet", out: str | Path | None = None,
                   output_dir: str | Path = "outputs") -> Path | None:
    """Write a run's results as Parquet, CSV or JSON lines, streaming a row group at a time
    (rows in the order they were written; sort by ``param_id`` to read them in order).
    ``out`` defaults to ``results-<run>.<format>`` here; ``-`` means stdout (csv, jsonl).
    Returns the path written (None for stdout)."""
    if format not in FORMATS:
        raise ResultsError("format", format, f"one of {', '.join(FORMATS)}")
    files = result_files(run, output_dir)
    if out is None:
        out = Path(f"results-{_run_name(files[0])}.{format}")
    if str(out) == "-":
        if format == "parquet":
            raise ResultsError("out", "-", "Parquet is binary: give a file with --out")
        _write_text(files, format, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return None
    out = Path(out)
    if format == "parquet":
        _merge(files, out, pq.read_schema(files[0]), ROW_GROUP_ROWS)
    else:
        with open(out, "wb") as handle:
            _write_text(files, format, handle)
    return out


def _run_name(file: Path) -> str:
    if file.parent.name == PARTS_DIR:
        return file.parent.parent.name
    return file.parent.name if file.name == RESULTS_FILE else file.stem


def _write_text(files: Sequence[Path], format: str, handle: Any) -> None:
    drop = [MISFIT] if _never_set(files, MISFIT) else []
    if format == "csv":
        import pyarrow.csv as pacsv
        first = True
        for batch in _batches(files):
            table = pa.Table.from_batches([batch]).drop_columns(drop)
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=first))
            handle.write(buffer.getvalue().to_pybytes())
            first = False
        return
    for batch in _batches(files):
        lines = (json.dumps(row, separators=(",", ":")) for row in
                 batch.drop_columns(drop).to_pylist())
        handle.write(("\n".join(lines) + "\n").encode())


def _never_set(files: Sequence[Path], column: str) -> bool:
    """True when ``column`` is null in every row: read from the footers, not the data."""
    for file in files:
        meta = pq.ParquetFile(file).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        if column not in names:
            continue
        index = names.index(column)
        for g in range(meta.num_row_groups):
            col = meta.row_group(g).column(index)
            stats = col.statistics
            if stats is None or stats.null_count != meta.row_group(g).num_rows:
                return False
    return True
