"""A batch of results as one Arrow table of rows, under the table's value layout.

Nothing a worker sends stops the table: a chunk whose values do not fit the typed columns
goes to ``value_json`` as JSON text, and a value that cannot be stored at all (a string with
a lone surrogate from ``os.listdir``, a type JSON cannot write) becomes that point's error
row, its neighbours kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .. import arrowcols
from ..failures import row_columns
from ..messages import Result, ValueColumns, compact_json
from .layout import ARROW, MISFIT, NO_VALUES, ValueLayout, schema_for


@dataclass
class _Rows:
    """One result's rows: typed arrays, JSON text of a misfit, errors (one, or per point)."""

    count: int
    arrays: list[pa.Array] | None = None
    texts: pa.Array | None = None
    error: str | None = None
    point_errors: list[str | None] | None = field(default=None)


def has_values(result: Result) -> bool:
    return (result.error is None and len(result.values) == result.count > 0
            and len(result.failures) < result.count)  # all failed: no values to type by


def rows_table(batch: list[Result], space: Any, layout: ValueLayout,
               widen: bool = True) -> tuple[pa.Table, ValueLayout]:
    """The batch's rows, and the layout they were written under (the first values settle a
    ``none`` layout; with ``widen`` an int64 column becomes float64 for floats)."""
    if layout is NO_VALUES or layout.mode == "none":
        first = next((r.values for r in batch if has_values(r)), None)
        layout = NO_VALUES if first is None else ValueLayout.infer(first)
    rows: list[_Rows] = []
    for r in batch:
        piece = _Rows(r.count, error=r.error)
        if piece.error is None and len(r.values) != r.count:
            piece.error = f"the result had {len(r.values)} values for {r.count} params"
        if piece.error is None and layout.mode != "none":
            layout = _fit(piece, r.values, layout, rows, widen)
        rows.append(piece)
    return _table(batch, rows, space, layout), layout


def _fit(piece: _Rows, values: Any, layout: ValueLayout, before: list[_Rows],
         widen: bool) -> ValueLayout:
    try:
        piece.arrays = layout.fit(values)
        if piece.arrays is None and widen:
            wider = layout.widened(values)
            if wider is not None:
                _cast(before, layout, wider)
                layout, piece.arrays = wider, wider.fit(values)
        if piece.arrays is None:
            piece.texts = arrowcols.strings([compact_json(v) for v in _points(values)])
            if layout.mode == "json":
                piece.arrays, piece.texts = [piece.texts], None
    except Exception:  # a value Arrow or JSON cannot hold: point by point
        piece.arrays = None
        _point_by_point(piece, values, layout)
    return layout


def _points(values: Any) -> list[Any]:
    return list(values) if isinstance(values, ValueColumns) else list(values)


def _point_by_point(piece: _Rows, values: Any, layout: ValueLayout) -> None:
    texts: list[str | None] = []
    errors: list[str | None] = []
    for value in _points(values):
        try:
            text = compact_json(value)
            text.encode()
            texts.append(text)
            errors.append(None)
        except Exception as exc:  # the one point that cannot be stored
            texts.append(None)
            errors.append(f"the value cannot be stored: {type(exc).__name__}: {exc}")
    piece.texts = arrowcols.strings(texts)
    piece.point_errors = errors
    if layout.mode == "json":
        piece.arrays, piece.texts = [piece.texts], None


def _cast(before: list[_Rows], old: ValueLayout, new: ValueLayout) -> None:
    """Rows typed under ``old`` re-typed under the wider ``new`` (int64 -> float64)."""
    for piece in before:
        if piece.arrays is not None:
            piece.arrays = [a if o == n else a.cast(ARROW[n]) for a, (_x, o), (_y, n)
                            in zip(piece.arrays, old.columns, new.columns, strict=True)]


def _table(batch: list[Result], rows: list[_Rows], space: Any,
           layout: ValueLayout) -> pa.Table:
    schema = schema_for(space, layout)
    counts = np.fromiter((r.count for r in batch), dtype=np.int64, count=len(batch))
    total = int(counts.sum())
    columns: dict[str, Any] = {"param_id": arrowcols.from_numpy(np.concatenate(
        [np.arange(r.start, r.start + r.count, dtype=np.int64) for r in batch]
        or [np.zeros(0, dtype=np.int64)]))}
    if space is not None:
        chunks = [space.columns(r.start, r.count) for r in batch]
        for axis in space.axes:
            columns[axis.name] = arrowcols.from_numpy(
                np.concatenate([c[axis.name] for c in chunks]) if chunks
                else np.zeros(0, dtype=np.int64))
    for index, (name, kind) in enumerate(layout.columns):
        columns[name] = _concat([p.arrays[index] if p.arrays is not None else None
                                 for p in rows], rows, ARROW[kind])
    if MISFIT in schema.names:
        columns[MISFIT] = (_concat([p.texts for p in rows], rows, pa.string())
                           if any(p.texts is not None for p in rows)
                           else arrowcols.nulls(total, pa.string()))
    columns["worker"] = arrowcols.repeat([r.worker for r in batch], counts, decode=False)
    columns["attempt"] = arrowcols.from_numpy(np.repeat(
        np.fromiter((r.attempt for r in batch), dtype=np.int64, count=len(batch)), counts))
    columns["source_run"] = arrowcols.repeat([r.run_id for r in batch], counts, decode=False)
    columns["error"] = _errors(rows, counts, total)
    per_point = row_columns(batch, [p.error for p in rows], counts)  # points that failed
    if per_point is not None:  # alone (the worker's per-point errors)
        columns["error"], columns["attempt"] = per_point
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _concat(arrays: list[pa.Array | None], rows: list[_Rows], arrow_type: pa.DataType
            ) -> pa.Array:
    pieces = [a if a is not None else arrowcols.nulls(p.count, arrow_type)
              for a, p in zip(arrays, rows, strict=True)]
    return pa.concat_arrays(pieces) if pieces else arrowcols.nulls(0, arrow_type)


def _errors(rows: list[_Rows], counts: np.ndarray, total: int) -> pa.Array:
    if any(p.point_errors is not None for p in rows):
        per_row: list[str | None] = []
        for p in rows:
            per_row += p.point_errors if p.point_errors is not None else [p.error] * p.count
        return arrowcols.strings(per_row)
    errors = [p.error for p in rows]
    return (arrowcols.repeat(errors, counts) if any(errors)
            else arrowcols.nulls(total, pa.string()))
