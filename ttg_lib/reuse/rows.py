"""A source's rows for reused points, renumbered into the new space, a row group at a time.

What the new table gets (every column, ``source_run`` naming the run that computed the
value: the source, or the run it had reused the row from) and what a verification compares
with (the value columns of the sampled points) are the same read: the source's row groups,
each row matched against the entries of that source by a sorted search (memory: the
entries' ids, never the source's table).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..results.layout import WORKER_TYPE
from .lookup import ReuseMap, row_groups

SOURCE_RUN = "source_run"


def reused_rows(rmap: ReuseMap, index: int, picked: np.ndarray | None = None,
                columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
    """Rows of source ``index`` for its entries in ``rmap`` (those ``picked``, a mask over
    the map, if given), ``param_id`` set to the new id and ``source_run`` filled in."""
    source = rmap.sources[index]
    mine = rmap.src == index
    if picked is not None:
        mine &= picked
    old, new = rmap.old_ids[mine], rmap.new_ids[mine]
    order = np.argsort(old, kind="stable")
    old, new = old[order], new[order]
    if not len(old):
        return
    names = pq.read_schema(source.table).names
    wanted = list(columns) if columns is not None else names
    read = list(dict.fromkeys(["param_id", "error", *wanted]))
    for table in row_groups(source.table, [c for c in read if c in names]):
        pids = table.column("param_id").to_numpy()
        left = np.searchsorted(old, pids, "left")
        count = np.searchsorted(old, pids, "right") - left
        count[table.column("error").is_valid().to_numpy(zero_copy_only=False)] = 0
        total = int(count.sum())
        if not total:
            continue
        rows = np.repeat(np.arange(len(pids)), count)
        entry = np.repeat(left, count) + (np.arange(total) - np.repeat(np.cumsum(count) - count,
                                                                        count))
        out = table.take(pa.array(rows))
        out = out.set_column(out.schema.get_field_index("param_id"), "param_id",
                             pa.array(new[entry], pa.int64()))
        out = _with_source(out, source.run_id)
        yield out.select([c for c in dict.fromkeys((*wanted, SOURCE_RUN))
                          if c in out.schema.names])


def _with_source(table: pa.Table, run_id: str) -> pa.Table:
    """``source_run``: the row's own when it has one (reused before), else the source's."""
    own = pa.array([run_id] * len(table), pa.string())
    if SOURCE_RUN in table.schema.names:
        stored = table.column(SOURCE_RUN).cast(pa.string())
        column = pc.coalesce(stored, own).cast(WORKER_TYPE)
        return table.set_column(table.schema.get_field_index(SOURCE_RUN), SOURCE_RUN, column)
    return table.append_column(SOURCE_RUN, own.dictionary_encode().cast(WORKER_TYPE))
