"""Reading a run's results back: the files, what a resume may skip, pandas, exports.

A finished run has ``results.parquet``; a run whose orchestrator died has its parts. Parts
written before the table's layout settled or widened are read in the layout of the last
part, as the finished table would be.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrowcols import int64s
from ..errors import ResultsError
from .layout import MERGED_DIR, MISFIT, PARTS_DIR, RESULTS_FILE, ValueLayout
from .ordered import sorted_batches
from .slicing import Filters, check_columns, sample, scan, to_expression
from .writer import ROW_GROUP_ROWS, merge, part_files

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("parquet", "csv", "jsonl")
JSON_ROWS = 8_192  # rows made Python objects at once by a JSON lines export


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
    parts = part_files(record / PARTS_DIR) or part_files(record / MERGED_DIR)
    if parts:
        return parts
    where = record if record.exists() else f"{record} (no such run record)"
    raise ResultsError("run", str(run), f"no {RESULTS_FILE} in {where}; give a run id "
                                        f"under {output_dir}/runs, a record directory or a "
                                        f"Parquet file")


def table_schema(files: Sequence[Path]) -> pa.Schema:
    """The schema the files' rows are read in: the last one with values (the widest)."""
    schemas = [pq.read_schema(f) for f in files]
    return next((s for s in reversed(schemas)
                 if ValueLayout.from_schema(s).mode != "none"), schemas[-1])


def _chunk_counts(files: Sequence[Path], column: str, chunk_size: int
                  ) -> Any:
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            yield parquet.read_row_group(group, columns=["param_id", column] if column
                                         else ["param_id"], use_threads=False)


def stored_chunks(record_dir: str | Path, chunk_size: int, total_params: int) -> set[int]:
    """The chunks whose every row is already on disk (``results.parquet`` or its parts): what
    a resumed run need not publish again. Reads only ``param_id``, a row group at a time."""
    try:
        files = result_files(record_dir)
    except ResultsError:
        return set()
    chunks = -(-total_params // chunk_size)
    rows = np.zeros(chunks, dtype=np.int64)
    for table in _chunk_counts(files, "", chunk_size):
        ids = int64s(table.column(0))  # a resume's orchestrator: no pandas
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
    for table in _chunk_counts(files, "error", chunk_size):
        ids = table.column("param_id").to_numpy()
        errors = table.column("error").is_valid().to_numpy(zero_copy_only=False)
        for chunk in (ids[errors] // chunk_size).tolist():
            failed[chunk] = failed.get(chunk, 0) + 1
    # a chunk whose points failed alone is done (its other rows have values): failed means
    # every row of it failed, as a dead-lettered chunk's do
    return {c for c, n in failed.items() if n >= min(chunk_size, total_params - c * chunk_size)}


def read_table(files: Sequence[Path]) -> pa.Table:
    """Every row of the files in one table, each part in the table's final layout."""
    schema = table_schema(files)
    return pa.Table.from_batches(list(scan(files, schema)), schema)


def load_results(run: str | Path, output_dir: str | Path = "outputs", *,
                 columns: Sequence[str] | None = None, filters: Filters = None
                 ) -> pd.DataFrame:
    """A run's results as a pandas DataFrame, one row per point, sorted by ``param_id``
    (``value_json`` only when some batch did not fit the typed columns).

    ``columns`` and ``filters`` read a slice, never the whole table: only those columns, only
    the rows the filters keep (pyarrow's DNF form, e.g. ``[("param_id", "<", 1000)]``, or a
    ``pyarrow.compute`` expression), row groups outside a ``param_id`` range skipped unread.
    A column or filter the table cannot answer is one ResultsError naming what it has."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ResultsError("pandas", None, "load_results needs pandas, part of TTG's "
                                           "install: pip install pandas") from None
    files = result_files(run, output_dir)
    schema = table_schema(files)
    wanted = check_columns(columns, schema)
    read = wanted if wanted is None or "param_id" in wanted else [*wanted, "param_id"]
    projected = schema if read is None else pa.schema([schema.field(c) for c in read],
                                                      metadata=schema.metadata)
    table = pa.Table.from_batches(list(scan(files, schema, read, filters)), projected)
    return _frame(table, wanted)


def sample_results(run: str | Path, rows: int, output_dir: str | Path = "outputs", *,
                   columns: Sequence[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of a run's results drawn uniformly at random (the same for the same
    ``seed``), as :func:`load_results` gives them: a look at a table too big to load."""
    files = result_files(run, output_dir)
    schema = table_schema(files)
    wanted = check_columns(columns, schema)
    read = wanted if wanted is None or "param_id" in wanted else [*wanted, "param_id"]
    return _frame(sample(files, schema, rows, seed, read), wanted)


def result_rows(run: str | Path, output_dir: str | Path = "outputs") -> int:
    """How many rows the table holds, from the files' footers (nothing read)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in result_files(run, output_dir))


def _frame(table: pa.Table, wanted: list[str] | None) -> pd.DataFrame:
    """Rows sorted by param_id (unless they are), the columns asked for, as pandas."""
    ids = table.column("param_id").to_numpy()
    if len(ids) > 1 and not bool((ids[1:] >= ids[:-1]).all()):
        table = table.sort_by("param_id")
    if wanted is not None and "param_id" not in wanted:
        table = table.drop_columns(["param_id"])
    elif wanted is None and MISFIT in table.column_names and \
            table.column(MISFIT).null_count == len(table):
        table = table.drop_columns([MISFIT])
    return frame_of(table)


def frame_of(table: pa.Table) -> pd.DataFrame:
    """An Arrow table of results as pandas, an int64 column with nulls kept integer."""
    import pandas as pd

    frame = table.to_pandas(split_blocks=True)  # no consolidating copy of a big table
    for name in table.column_names:  # int64 with nulls (failed points) stays integer
        column = table.column(name)
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get)
    return frame


def export_results(run: str | Path, format: str = "parquet", out: str | Path | None = None,
                   output_dir: str | Path = "outputs", *, columns: Sequence[str] | None = None,
                   filters: Filters = None) -> Path | None:
    """Write a run's results as Parquet, CSV or JSON lines in ``param_id`` order, streaming
    a batch at a time: memory stays a few row groups whatever the table's size (a closed
    run's table is written in order; a dead orchestrator's parts are merged as the close
    would). ``columns``/``filters``: a slice, as :func:`load_results` takes them.
    ``out`` defaults to ``results-<run>.<format>`` here; ``-`` means stdout (csv, jsonl).
    JSON lines write NaN and infinities as ``null`` (strict JSON has neither).
    Returns the path written (None for stdout)."""
    if format not in FORMATS:
        raise ResultsError("format", format, f"one of {', '.join(FORMATS)}")
    files = result_files(run, output_dir)
    table = table_schema(files)
    wanted = check_columns(columns, table)
    to_expression(filters, table)  # a bad filter fails before a file is made
    if wanted is None and format != "parquet" and _never_set(files, MISFIT):
        wanted = [n for n in table.names if n != MISFIT]  # text: no column of nulls
    schema = table if wanted is None else pa.schema(
        [table.field(c) for c in wanted],  # a slice's values are no longer the table's
        metadata=table.metadata if columns is None else None)
    rows = (scan(files, table, wanted, filters) if len(files) == 1
            else _merged_slice(files, table, wanted, filters))
    if out is None:
        out = Path(f"results-{_run_name(files[0])}.{format}")
    if str(out) == "-":
        if format == "parquet":
            raise ResultsError("out", "-", "Parquet is binary: give a file with --out")
        _write_text(rows, schema, format, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return None
    out = Path(out)
    if format == "parquet":
        merge(files, out, schema, ROW_GROUP_ROWS, source=rows)
    else:
        with open(out, "wb") as handle:
            _write_text(rows, schema, format, handle)
    return out


def _run_name(file: Path) -> str:
    if file.parent.name in (PARTS_DIR, MERGED_DIR):
        return file.parent.parent.name
    return file.parent.name if file.name == RESULTS_FILE else file.stem


def _write_text(rows: Iterable[pa.RecordBatch], schema: pa.Schema, format: str,
                handle: Any) -> None:
    """CSV (one header) or JSON lines, a batch at a time."""
    if format == "csv":
        import pyarrow.csv as pacsv
        first = True
        for batch in rows:
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=first))
            handle.write(buffer.getvalue().to_pybytes())
            first = False
        if first:  # no row: still the header
            handle.write((",".join(f'"{n}"' for n in schema.names) + "\n").encode())
        return
    for batch in rows:
        for start in range(0, batch.num_rows, JSON_ROWS):  # Python dicts: ~600 bytes a row
            lines = (json.dumps({k: _finite(v) for k, v in row.items()},
                                separators=(",", ":"), allow_nan=False)
                     for row in batch.slice(start, JSON_ROWS).to_pylist())
            handle.write(("\n".join(lines) + "\n").encode())


def _merged_slice(files: Sequence[Path], schema: pa.Schema, wanted: list[str] | None,
                  filters: Filters) -> Iterator[pa.RecordBatch]:
    """Parts not yet merged (a dead orchestrator's), in ``param_id`` order, sliced."""
    expression = to_expression(filters, schema)
    for table in sorted_batches(files, schema):
        if expression is not None:
            table = table.filter(expression)
        if wanted is not None:
            table = table.select(wanted)
        yield from (b for b in table.to_batches() if b.num_rows)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


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
