"""The sample a Results chart is drawn from: the ``k`` points with the smallest hash of their
``param_id`` (a bottom-k sample).

Why this sample: a hash of the id is a random key that no arrival order, worker or axis
can bias, so the sample is uniform over the points on disk at any moment; it depends only
on *which* points are there, never on the order they came in. A chart that follows a run
keeps its ``k`` smallest keys so far (:class:`Reservoir`, one pass over each new part); when
the run ends that is exactly the sample the static chart draws from the whole table
(:func:`bottom_k`), so the live chart ends as the static one. Seeded by nothing: the same
points every time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), \
    np.uint64(0x9E3779B97F4A7C15)


def priority(ids: Any) -> np.ndarray:
    """splitmix64 of each id: a bijection of uint64, so no two points tie."""
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64) + _GOLDEN
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def smallest(ids: Any, k: int) -> np.ndarray:
    """Positions of the ``k`` ids with the smallest priority, in ``param_id`` order."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) <= k:
        return np.argsort(ids, kind="stable")
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.argpartition(priority(ids), k - 1)[:k]
    return keep[np.argsort(ids[keep], kind="stable")]


def bottom_k(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The frame's bottom-k sample by ``param_id`` (every row when it has ``k`` or fewer)."""
    if len(frame) <= k:
        return frame
    return frame.iloc[smallest(frame["param_id"].to_numpy(dtype=np.int64), k)]


class Reservoir:
    """The bottom-k sample of every row :meth:`add` was given, kept as an Arrow table."""

    def __init__(self, k: int):
        self.k = k
        self.table: pa.Table | None = None
        self.seen = 0  # rows given so far

    def add(self, rows: pa.Table) -> None:
        """Keep the ``k`` smallest keys of the kept rows and ``rows`` (both in ``rows``'
        schema: a column widened since is widened in the kept rows too)."""
        self.seen += rows.num_rows
        if rows.num_rows == 0:
            return
        if self.table is not None:
            rows = pa.concat_tables([_conform(self.table, rows.schema), rows])
        ids = rows.column("param_id").to_numpy()
        self.table = rows.take(pa.array(smallest(ids, self.k)))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    from ..results.layout import conform

    batches = [conform(b, schema) for b in table.to_batches()]
    return pa.Table.from_batches(batches, schema)
