"""Which points of a new space earlier runs computed already: the sources, and the lookup.

A source is an earlier run in the same output directory whose record names the same
function fingerprint and whose finished ``results.parquet`` has the same axes (names and
types). Its rows without an error are the candidates, newest run first when several have a
point. The lookup keeps two hash keys, a row id and a source index per candidate (26 bytes:
10^7 stored points in about 300 MiB) and walks the new space a block of points at a time, so
its memory follows the earlier runs, never the new space.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..results.layout import ARROW, AXIS_KINDS, RESULTS_FILE, axis_names
from .keys import point_keys

BLOCK = 1 << 20  # new points hashed per pass


@dataclass(frozen=True)
class Source:
    """An earlier run whose rows may be reused."""

    run_id: str
    table: Path  # its results.parquet


@dataclass
class ReuseMap:
    """The reused points, sorted by their id in the new space: for each, the source (an
    index into ``sources``) and the row's ``param_id`` there."""

    sources: list[Source]
    new_ids: np.ndarray  # int64, sorted
    src: np.ndarray  # int16
    old_ids: np.ndarray  # int64

    @classmethod
    def empty(cls, sources: Sequence[Source] = ()) -> ReuseMap:
        return cls(list(sources), np.zeros(0, np.int64), np.zeros(0, np.int16),
                   np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.new_ids)

    def without(self, rejected: set[int]) -> ReuseMap:
        """The map once the sources ``rejected`` are: their points are computed again."""
        keep = ~np.isin(self.src, np.fromiter(rejected, np.int16, len(rejected)))
        return ReuseMap(self.sources, self.new_ids[keep], self.src[keep], self.old_ids[keep])

    def by_source(self) -> dict[str, int]:
        counts = np.bincount(self.src, minlength=len(self.sources)) if len(self) else []
        return {s.run_id: int(n) for s, n in zip(self.sources, counts, strict=False) if n}

    def chunk(self, chunk_id: int, chunk_size: int) -> slice:
        """The entries that fall in chunk ``chunk_id`` (a slice of the sorted arrays)."""
        lo, hi = np.searchsorted(self.new_ids, [chunk_id * chunk_size,
                                                (chunk_id + 1) * chunk_size])
        return slice(int(lo), int(hi))

    def chunks(self, chunk_size: int) -> np.ndarray:
        """The chunks with at least one reused point, sorted (the ids are: no sort)."""
        chunks = self.new_ids // chunk_size
        return chunks[np.concatenate([[True], chunks[1:] != chunks[:-1]])] if len(chunks) \
            else chunks


def find_sources(output_dir: str | Path, run_id: str, fingerprint: str,
                 space: Any) -> list[Source]:
    """Earlier runs of the same function and axes, newest table first."""
    found: list[tuple[float, Source]] = []
    for config in Path(output_dir, "runs").glob("*/config.json"):
        record = config.parent
        table = record / RESULTS_FILE
        if record.name == run_id or not table.exists():
            continue
        try:
            if json.loads(config.read_text()).get("fingerprint") != fingerprint:
                continue
            if not _same_axes(pq.read_schema(table), space):
                continue
            found.append((table.stat().st_mtime, Source(record.name, table)))
        except (OSError, ValueError, pa.ArrowException):
            continue  # a record being written, or broken: nothing to reuse from it
    return [source for _mtime, source in sorted(found, key=lambda f: (-f[0], f[1].run_id))]


def _same_axes(schema: pa.Schema, space: Any) -> bool:
    """The same axes, no more (a point of fewer axes is not the same point), same types."""
    if set(axis_names(schema)) != set(space.axis_names):
        return False
    for axis in space.axes:
        if axis.name not in schema.names:
            return False
        if schema.field(axis.name).type != ARROW[AXIS_KINDS[axis.kind]]:
            return False
    return True


def lookup(space: Any, sources: Sequence[Source], block: int = BLOCK) -> ReuseMap:
    """Every point of ``space`` some source has a value for (newest source first)."""
    if not sources:
        return ReuseMap.empty()
    names = sorted(space.axis_names)
    k1, k2, ids, src = _candidates(sources, names)
    order = np.argsort(k1, kind="stable")  # by key; among equals, as filled: newest first
    k1 = k1[order]  # one array at a time: never two copies of all four
    k2 = k2[order]
    ids = ids[order]
    src = src[order]
    del order
    first = np.ones(len(k1), dtype=bool)
    first[1:] = k1[1:] != k1[:-1]
    if not first.all():
        k1 = k1[first]
        k2 = k2[first]
        ids = ids[first]
        src = src[first]
    del first
    new_ids: list[np.ndarray] = []
    new_src: list[np.ndarray] = []
    old_ids: list[np.ndarray] = []
    for pos in range(0, space.size if len(k1) else 0, block):
        n = min(block, space.size - pos)
        a1, a2 = point_keys(space.columns(pos, n, tuple(names)), names)
        order = np.argsort(a1)  # sorted needles: the search walks the keys in order
        at = np.minimum(np.searchsorted(k1, a1[order]), len(k1) - 1)
        hit = (k1[at] == a1[order]) & (k2[at] == a2[order])
        found = order[hit]
        sort = np.argsort(found)  # back in the space's order
        new_ids.append(found[sort].astype(np.int64) + pos)
        new_src.append(src[at[hit][sort]])
        old_ids.append(ids[at[hit][sort]])
    del k1, k2, ids, src  # before the pieces are joined: one of the two at a time
    if not new_ids:
        return ReuseMap.empty(sources)
    return ReuseMap(list(sources), np.concatenate(new_ids), np.concatenate(new_src),
                    np.concatenate(old_ids))


def _candidates(sources: Sequence[Source], names: list[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keys, row ids and source of every stored row without an error, in arrays sized once
    from the files' metadata (no list of pieces to concatenate: memory stays at one copy)."""
    total = sum(pq.ParquetFile(s.table).metadata.num_rows for s in sources)
    k1 = np.empty(total, np.uint64)
    k2 = np.empty(total, np.uint64)
    ids = np.empty(total, np.int64)
    src = np.empty(total, np.int16)
    filled = 0
    for index, source in enumerate(sources):
        for table in row_groups(source.table, ["param_id", *names, "error"]):
            ok = table.column("error").is_null().to_numpy(zero_copy_only=False)
            a1, a2 = point_keys({n: table.column(n) for n in names}, names)
            n = int(ok.sum())
            end = filled + n
            k1[filled:end], k2[filled:end] = a1[ok], a2[ok]
            ids[filled:end] = table.column("param_id").to_numpy()[ok]
            src[filled:end] = index
            filled = end
    return k1[:filled], k2[:filled], ids[:filled], src[:filled]


def row_groups(path: Path, columns: Sequence[str]) -> Iterator[pa.Table]:
    """A table's row groups, one at a time, each column in one piece."""
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        yield parquet.read_row_group(group, columns=list(columns),
                                     use_threads=False).combine_chunks()
