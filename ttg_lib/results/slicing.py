"""A slice of a run's results: some columns, the rows a filter keeps, read a batch at a time.

A table of 10^9 rows does not fit in memory, so every reader (``load_results``, the exports,
the notebook's sample) goes through :func:`scan`: a pyarrow dataset over the run's files in
the table's final layout (a part that lacks a column reads it as nulls, an int64 value column
the table widened reads as float64), read one row group at a time, those whose ``param_id``
statistics rule the filter out skipped unread. Filters are pyarrow's DNF form
(``[("param_id", "<", 10)]``, or a list of such lists: OR of ANDs) or a ``pyarrow.compute``
expression; a bad column, operator or value is one :class:`ResultsError` line naming what is
allowed, never a pyarrow traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ResultsError

if TYPE_CHECKING:  # pyarrow.dataset imports pandas (40 MiB): readers only, not the writer
    import pyarrow.dataset as ds

OPERATORS = ("=", "==", "!=", "<", ">", "<=", ">=", "in", "not in")
BATCH_ROWS = 65_536  # rows a batch at most (= the writer's row group)
Filters = Sequence[Any] | pc.Expression | None


def dataset(files: Sequence[Path], schema: pa.Schema) -> ds.Dataset:
    """The files as one dataset in ``schema``; a row group is read when its batch is wanted
    (pre-buffering reads many ahead: 40 MB instead of 2 for a table of 10^4-row groups)."""
    import pyarrow.dataset as ds

    unbuffered = ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False))
    return ds.dataset([str(f) for f in files], schema=schema, format=unbuffered)


def check_columns(columns: Sequence[str] | None, schema: pa.Schema) -> list[str] | None:
    """The columns asked for, each one of the table's (a bad one is one clear line)."""
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    wanted = list(columns)
    unknown = [c for c in wanted if c not in schema.names]
    if unknown or not wanted:
        raise ResultsError("columns", unknown[0] if unknown else [],
                           f"columns are {', '.join(schema.names)}")
    return wanted


def to_expression(filters: Filters, schema: pa.Schema) -> pc.Expression | None:
    """DNF filters or an expression as one expression over ``schema``, checked."""
    if filters is None or (not isinstance(filters, pc.Expression) and not len(filters)):
        return None
    if isinstance(filters, pc.Expression):
        expression = filters
    else:
        if _is_clause_list([filters]):  # one predicate alone: ("param_id", "<", 10)
            filters = [filters]
        clauses = filters if _is_clause_list(filters[0]) else [filters]
        expression = None
        for clause in clauses:
            if not _is_clause_list(clause) or not clause:
                raise ResultsError("filters", clause, _FORM)
            term = None
            for predicate in clause:
                one = _predicate(predicate, schema)
                term = one if term is None else term & one
            expression = term if expression is None else expression | term
    return _bound(expression, schema)


def scan(files: Sequence[Path], schema: pa.Schema, columns: Sequence[str] | None = None,
         filters: Filters = None, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The rows the filter keeps, the columns asked for, a batch at a time in file order.

    One row group at a time, each read only when the consumer asks: a dataset scanner reads
    ahead of a slow consumer (an export writing CSV) by hundreds of row groups, which for a
    table of 10^9 rows is gigabytes. Row groups whose statistics rule the filter out are
    never read."""
    wanted = check_columns(columns, schema)
    expression = to_expression(filters, schema)
    try:
        for fragment in dataset(files, schema).get_fragments(filter=expression):
            for group in fragment.split_by_row_group(expression, schema=schema):
                table = group.to_table(schema=schema, columns=wanted, filter=expression,
                                       batch_size=batch_rows, use_threads=False)
                for batch in table.to_batches(max_chunksize=batch_rows):
                    if batch.num_rows:
                        yield batch
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ResultsError("filters", str(expression), _first_line(exc)) from None


def sample(files: Sequence[Path], schema: pa.Schema, rows: int, seed: int = 0,
           columns: Sequence[str] | None = None) -> pa.Table:
    """``rows`` rows drawn uniformly without replacement (the same for the same seed), read
    a batch at a time: memory holds the sample, never the table."""
    import pyarrow.parquet as pq

    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    wanted = check_columns(columns, schema)
    projected = schema if wanted is None else pa.schema([schema.field(c) for c in wanted],
                                                        metadata=schema.metadata)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(rows, total),
                                                        replace=False, shuffle=False))
    kept, offset = [], 0
    for batch in scan(files, schema, wanted):
        lo, hi = np.searchsorted(chosen, [offset, offset + batch.num_rows])
        if hi > lo:
            kept.append(batch.take(pa.array(chosen[lo:hi] - offset)))
        offset += batch.num_rows
    return pa.Table.from_batches(kept, projected)


def parse_where(text: str) -> tuple[str, str, Any]:
    """``--where 'COLUMN OP VALUE'`` as a DNF predicate (VALUE is JSON: 3, 0.5, true,
    [1, 2] for in; anything else is text)."""
    for op, token in _WHERE_TOKENS:  # 'not in' before 'in', '<=' before '<'
        head, sep, tail = text.partition(token)
        if sep and head.strip() and tail.strip():
            return head.strip(), op, _literal(tail.strip())
    raise ResultsError("where", text, f"COLUMN OP VALUE with OP one of {', '.join(OPERATORS)}"
                                      f" (e.g. 'param_id < 1000', 'worker in [\"w-1\"]')")


# -- internals --

_WHERE_TOKENS = (("not in", " not in "), ("in", " in "), ("<=", "<="), (">=", ">="),
                 ("!=", "!="), ("==", "=="), ("<", "<"), (">", ">"), ("=", "="))
_FORM = ("a list of (column, op, value) tuples, a list of such lists (OR of ANDs), or a "
         "pyarrow.compute expression")


def _is_clause_list(item: Any) -> bool:
    return isinstance(item, list | tuple) and all(isinstance(p, list | tuple) and len(p) == 3
                                                  and isinstance(p[0], str) for p in item)


def _predicate(predicate: Any, schema: pa.Schema) -> pc.Expression:
    if not isinstance(predicate, list | tuple) or len(predicate) != 3:
        raise ResultsError("filters", predicate, _FORM)
    column, op, value = predicate
    if column not in schema.names:
        raise ResultsError("filters", tuple(predicate), f"no column {column!r}; columns are "
                                                        f"{', '.join(schema.names)}")
    if op not in OPERATORS:
        raise ResultsError("filters", tuple(predicate), f"operator one of {', '.join(OPERATORS)}")
    field = pc.field(column)
    if value is None and op in ("=", "==", "!="):  # null is never equal to anything: test it
        return field.is_valid() if op == "!=" else field.is_null()
    if op in ("in", "not in"):
        if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
            raise ResultsError("filters", tuple(predicate), f"'{op}' takes a list of values")
        inside = field.isin(list(value))
        return ~inside if op == "not in" else inside
    return {"=": field == value, "==": field == value, "!=": field != value,
            "<": field < value, ">": field > value, "<=": field <= value,
            ">=": field >= value}[op]


def _bound(expression: Any, schema: pa.Schema) -> pc.Expression:
    """The expression checked against the table's columns and types now, before a scan."""
    import pyarrow.dataset as ds

    if not isinstance(expression, pc.Expression):
        raise ResultsError("filters", expression, _FORM)
    try:
        empty = pa.Table.from_batches([], schema)
        ds.dataset(empty).to_table(filter=expression)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ResultsError("filters", str(expression), _explain(exc, schema)) from None
    return expression


def _explain(exc: Exception, schema: pa.Schema) -> str:
    text = _first_line(exc)
    if "No match for FieldRef" in text:
        name = text.split("FieldRef.Name(", 1)[-1].split(")", 1)[0]
        return f"no column {name!r}; columns are {', '.join(schema.names)}"
    types = ", ".join(f"{f.name}: {getattr(f.type, 'value_type', f.type)}" for f in schema)
    return f"{text} (the columns' types: {types})"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip("'\"")
