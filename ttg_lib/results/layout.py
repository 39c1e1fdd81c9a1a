"""How a chunk's values become typed columns of ``results.parquet``.

A table has one value layout: ``scalar`` (one ``value`` column), ``dict`` (a ``value.<key>``
column per key) or ``json`` (``value`` as JSON text), recorded in the schema's metadata
(``ttg.values``): what is a value column is read from there, never guessed from a name.
The layout comes from the values themselves: the first chunk *with values* settles it (an
error-only chunk says nothing about types), and a later float where ints were widens the
column to float64 instead of pushing the floats aside. A chunk of another shape still never
stops the table: it is kept whole as JSON text in ``value_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import arrowcols
from ..messages import ValueColumns, compact_json

RESULTS_FILE = "results.parquet"
PARTS_DIR = "results.parts"
MERGED_DIR = "results.parts.merged"  # parts moved aside once the table holds them all
MISFIT = "value_json"  # a chunk whose shape differs from the table's lands here
FIXED = ("param_id", "worker", "attempt", "error", "source_run")
WORKER_TYPE = pa.dictionary(pa.int32(), pa.string())
META_KEY = b"ttg.values"
EXACT_IN_FLOAT = 2**53
INT64 = (-(2**63), 2**63 - 1)
ARROW = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
         "string": pa.string(), "json": pa.string()}
AXIS_KINDS = {"int": "int64", "float": "float64", "bool": "bool", "str": "string"}


@dataclass(frozen=True)
class ValueLayout:
    """How values become columns: ``scalar``, ``dict``, ``json``, or ``none`` (only error
    rows so far). Kinds: int64, float64, bool, string, json."""

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
            keys = self.keys()
            if len(values.columns) != len(keys) or not set(values.columns) >= set(keys):
                return None
            arrays = [fit_column(values.columns[key], kind)
                      for key, (_name, kind) in zip(keys, self.columns, strict=True)]
            return None if any(a is None for a in arrays) else arrays  # type: ignore[return-value]
        if isinstance(values, ValueColumns):
            values = list(values)
        array = fit_column(values, self.columns[0][1])
        return None if array is None else [array]

    def keys(self) -> list[str]:
        return [name.removeprefix("value.") for name, _kind in self.columns]

    def widened(self, values: Sequence[Any]) -> ValueLayout | None:
        """This layout with int64 columns made float64 so that ``values`` fit (floats where
        ints were so far), or None when widening would not help."""
        if self.mode == "scalar" and not isinstance(values, ValueColumns):
            kinds = [(self.columns[0][1], _kind_of(values))]
        elif self.mode == "dict" and isinstance(values, ValueColumns) and \
                set(values.columns) == set(self.keys()):
            kinds = [(kind, _kind_of(values.columns[key]))
                     for key, (_name, kind) in zip(self.keys(), self.columns, strict=True)]
        else:
            return None
        if not any(old == "int64" and new == "float64" for old, new in kinds):
            return None
        wider = ValueLayout(self.mode, tuple(
            (name, "float64" if (old, new) == ("int64", "float64") else old)
            for (name, _kind), (old, new) in zip(self.columns, kinds, strict=True)))
        return wider if wider.fit(values) is not None else None

    def merged(self, other: ValueLayout) -> ValueLayout:
        """One layout for rows of both (reused rows beside new ones): the one that has
        values, int64 widened to float64 where the other has floats; the other's columns
        are kept when the two do not match (its rows then lose nothing they share)."""
        if self.mode == "none" or self == other:
            return other if self.mode == "none" else self
        if other.mode != self.mode or [n for n, _k in other.columns] != \
                [n for n, _k in self.columns]:
            return self
        wide = {("int64", "float64"), ("float64", "int64")}
        return ValueLayout(self.mode, tuple(
            (name, "float64" if (mine, theirs) in wide else mine)
            for (name, mine), (_n, theirs) in zip(self.columns, other.columns, strict=True)))

    def to_json(self) -> bytes:
        return compact_json({"mode": self.mode, "columns": self.columns}).encode()

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> ValueLayout:
        raw = (schema.metadata or {}).get(META_KEY)
        if raw is None:
            return NO_VALUES
        data = json.loads(raw)
        return cls(data["mode"], tuple((name, kind) for name, kind in data["columns"]))


NO_VALUES = ValueLayout("none", ())


def stored_layout(path: Path) -> ValueLayout:
    """A file's value layout. A table closed with no values at all (every point failed: its
    ``value`` column JSON, all null) says nothing about types, like the error-only parts it
    was made of: ``none``, so the values a --retry-failed brings settle the layout."""
    parquet = pq.ParquetFile(path)
    layout = ValueLayout.from_schema(parquet.schema_arrow)
    if layout.mode != "json" or "value" not in parquet.schema_arrow.names:
        return layout
    for group in range(parquet.num_row_groups):  # (no statistics on it: read until a value)
        values = parquet.read_row_group(group, columns=["value"]).column(0)
        if values.null_count < len(values):
            return layout
    return NO_VALUES


def value_column_names(schema: pa.Schema) -> list[str]:
    """The columns that hold a chunk's values (from the table's metadata): what
    verification compares."""
    layout = ValueLayout.from_schema(schema)
    return [name for name, _kind in layout.columns] + ([MISFIT] if MISFIT in schema.names
                                                       else [])


def axis_names(schema: pa.Schema) -> list[str]:
    """The columns that are axes of the space: neither fixed nor value columns."""
    values = set(value_column_names(schema)) | {MISFIT}
    return [n for n in schema.names if n not in FIXED and n not in values]


def schema_for(space: Any, layout: ValueLayout) -> pa.Schema:
    fields = [pa.field("param_id", pa.int64(), nullable=False)]
    if space is not None:
        fields += [pa.field(axis.name, ARROW[AXIS_KINDS[axis.kind]]) for axis in space.axes]
    fields += [pa.field(name, ARROW[kind]) for name, kind in layout.columns]
    if layout.mode not in ("json", "none"):
        fields.append(pa.field(MISFIT, pa.string()))
    # a handful of workers for a million rows: their names as a dictionary column
    fields += [pa.field("worker", WORKER_TYPE), pa.field("attempt", pa.int64()),
               pa.field("error", pa.string()),
               pa.field("source_run", WORKER_TYPE)]  # the run that computed the value
    return pa.schema(fields, metadata={META_KEY: layout.to_json()})


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A part's rows in the final table's schema: a column the part lacks (error rows only)
    is null, an int64 value column the table widened is cast to float64."""
    columns = []
    for field in schema:
        if field.name not in batch.schema.names:
            columns.append(pa.nulls(batch.num_rows, field.type))
            continue
        column = batch.column(field.name)
        columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


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
    if types == {int} and _ints_within(values, *INT64):
        return "int64"
    if types and types <= {int, float} and _ints_within(values, -EXACT_IN_FLOAT,
                                                        EXACT_IN_FLOAT):
        return "float64"
    return "json"


def _ints_within(values: Iterable[Any], low: int, high: int) -> bool:
    return all(low <= v <= high for v in values if type(v) is int)


def fit_column(values: Sequence[Any], kind: str) -> pa.Array | None:
    """One column of values as an Arrow array of ``kind``; None when that would change a
    value (a float into int64, an int above 2**53 into float64, a string into a number)."""
    if kind == "json":
        return arrowcols.strings([None if v is None else compact_json(v) for v in values])
    typecode = getattr(values, "typecode", None)
    if typecode in ("q", "d"):
        data = np.frombuffer(values, dtype=np.int64 if typecode == "q" else np.float64)
        if (kind, typecode) in (("int64", "q"), ("float64", "d")):
            return arrowcols.from_numpy(data)
        if (kind, typecode) == ("float64", "q") and (np.abs(data) <= EXACT_IN_FLOAT).all():
            return arrowcols.from_numpy(data.astype(np.float64))
        return None
    present = set(map(type, values))
    types = present - {type(None)}
    if not types <= _ALLOWED[kind]:
        return None
    if int in types and not _ints_within(values, *(INT64 if kind == "int64" else
                                                   (-EXACT_IN_FLOAT, EXACT_IN_FLOAT))):
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
