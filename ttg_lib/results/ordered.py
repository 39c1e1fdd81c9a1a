"""Rows in ``param_id`` order, streamed: a k-way merge of sorted parts, a row group at a time.

Every part is written sorted (:meth:`ResultsWriter.flush`), so ``results.parquet`` is built
by merging them, never by sorting the whole table. The row groups of all the files are taken
in order of their smallest ``param_id`` (read from the footers' statistics); after loading
one, every row below the next group's smallest id is final and goes out. Memory is the row
groups whose id ranges overlap the point reached: a part covers the chunks finished in one
flush interval, published in index order, so only the few groups of the in-flight window are
held at once, whatever the table's length. A group written unsorted (a part of an older TTG)
is sorted when loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrowcols import int64s
from .layout import conform

Keep = Callable[[Path, pa.Table], pa.Table]  # rows of one file to keep (--retry-failed)


@dataclass(frozen=True)
class Group:
    """One row group of one file, with its smallest and largest ``param_id``."""

    low: int
    high: int
    file: Path
    index: int


def row_groups(files: Sequence[Path]) -> list[Group]:
    """Every row group of ``files``, by smallest ``param_id`` (ties: file order)."""
    groups = []
    for order, file in enumerate(files):
        meta = pq.ParquetFile(file).metadata
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        column = names.index("param_id")
        for g in range(meta.num_row_groups):
            if not meta.row_group(g).num_rows:
                continue
            stats = meta.row_group(g).column(column).statistics
            if stats is not None and stats.has_min_max:
                low, high = int(stats.min), int(stats.max)
            else:  # no statistics (written elsewhere): read the one column
                ids = _ids(pq.ParquetFile(file).read_row_group(g, columns=["param_id"]))
                low, high = int(ids.min()), int(ids.max())
            groups.append((low, order, g, high, file))
    return [Group(low, high, file, g) for low, order, g, high, file in sorted(groups)]


def sorted_batches(files: Sequence[Path], schema: pa.Schema, keep: Keep | None = None
                   ) -> Iterator[pa.Table]:
    """The rows of ``files`` in ``param_id`` order, in ``schema``, as tables of whole row
    groups' worth or less; ``keep`` filters each group's rows as it is loaded."""
    groups = row_groups(files)
    pool: list[pa.Table] = []  # loaded rows not yet out, each table sorted
    for i, group in enumerate(groups):
        table = _load(group, schema, keep)
        if table.num_rows:
            pool.append(table)
        bound = groups[i + 1].low if i + 1 < len(groups) else None
        heads, rest = [], []
        for part in pool:
            ids = _ids(part)
            cut = len(ids) if bound is None else int(np.searchsorted(ids, bound, side="left"))
            if cut:
                heads.append(part.slice(0, cut))
            if cut < len(ids):
                rest.append(part.slice(cut))
        pool = rest
        if heads:
            yield _in_order(heads)


def _in_order(heads: list[pa.Table]) -> pa.Table:
    """Sorted tables as one sorted table: laid end to end when their ranges do not interleave
    (parts of consecutive flushes, the usual case), sorted only when they do."""
    if len(heads) == 1:
        return heads[0]
    ranges = sorted((int(_ids(h)[0]), int(_ids(h)[-1]), i) for i, h in enumerate(heads))
    if all(high <= low for (_, high, _), (low, _, _) in zip(ranges[:-1], ranges[1:],
                                                              strict=True)):
        return pa.concat_tables([heads[i] for _, _, i in ranges])
    return pa.concat_tables(heads).sort_by("param_id")


def is_sorted(file: Path) -> bool:
    """True when a one-row-group file is in ``param_id`` order (it may stand as the table)."""
    parquet = pq.ParquetFile(file)
    if parquet.metadata.num_row_groups != 1:
        return False
    ids = _ids(parquet.read_row_group(0, columns=["param_id"], use_threads=False))
    return bool(np.all(ids[1:] >= ids[:-1]))


def _load(group: Group, schema: pa.Schema, keep: Keep | None) -> pa.Table:
    table = pq.ParquetFile(group.file).read_row_group(group.index, use_threads=False)
    table = pa.Table.from_batches([conform(b, schema) for b in table.to_batches()], schema)
    if keep is not None:
        table = keep(group.file, table)
    ids = _ids(table)
    if len(ids) > 1 and not np.all(ids[1:] >= ids[:-1]):
        table = table.sort_by("param_id")
    return table


def _ids(table: pa.Table) -> np.ndarray:
    return int64s(table.column("param_id"))  # not to_numpy: it imports pandas (~50 MiB)
