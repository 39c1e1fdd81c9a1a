"""A run's reuse: which chunks it publishes, which reused values it checks, the verdict.

Chunks keep their place in the space (``param_id`` = the point's index, as in every run): a
chunk with no reused point is published as it is, a chunk of reused points only is not
published at all, and a chunk with both is published with ``Task.only`` naming its missing
points (the worker computes those; the writer keeps their rows only). Nothing per chunk is
stored: a chunk's reused offsets are a sorted search in the map.

Reused values are checked the TTG way. ``--verify sample`` recomputes about one chunk in
:data:`SAMPLE_EVERY` of the chunks holding reused points, and at least one per source run;
``full`` recomputes all of them; ``none`` trusts the sources. A recomputation that differs
from the stored values (beyond ``--verify-rtol``) rejects that source: all its points are
computed again. Until the checks are answered, chunks holding reused points wait (the
others are computed meanwhile); then the verdict settles them all at once.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..messages import Result, Task
from ..restored import StoredChunk, stored_agrees, values_digest
from ..results.layout import value_column_names
from ..verify import VerifyMode
from .lookup import ReuseMap
from .rows import reused_rows

SAMPLE_EVERY = 100
CHECKER = "reused"  # a verification task's verify_of: no worker has this name


@dataclasses.dataclass(frozen=True)
class Check:
    """One sampled chunk's reused points of one source: where they are, what is stored."""

    source: int
    offsets: np.ndarray  # within the chunk, sorted
    stored: StoredChunk


class ReusePlan:
    def __init__(self, rmap: ReuseMap, *, run_id: str, chunk_size: int, total_params: int,
                 mode: VerifyMode, rtol: float, say: Callable[[str], None]):
        self.map = rmap
        self.chunk_size = chunk_size
        self.total_params = total_params
        self.rtol = rtol
        self.say = say
        self.mode = mode
        self.touched = rmap.chunks(chunk_size)  # chunks holding reused points
        self.waiting = self.touched  # ... as first found: those the verdict settles
        self.rejected: dict[int, str] = {}  # source index -> why
        self.points_checked = 0
        self.checks: dict[int, list[Check]] = self._checks(run_id) \
            if mode is not VerifyMode.NONE and len(rmap) else {}
        self.final = not self.checks

    # -- what is published --------------------------------------------------------------
    def only(self, chunk_id: int) -> tuple[int, ...] | None:
        """The offsets a chunk computes: None for all of them (no reused point), () for none."""
        if not self.touches(chunk_id):
            return None
        reused = self.offsets(chunk_id)
        count = min(self.chunk_size, self.total_params - chunk_id * self.chunk_size)
        missing = np.setdiff1d(np.arange(count), reused, assume_unique=True)
        return tuple(missing.tolist())

    def offsets(self, chunk_id: int, source: int | None = None) -> np.ndarray:
        part = self.map.chunk(chunk_id, self.chunk_size)
        ids = self.map.new_ids[part]
        if source is not None:
            ids = ids[self.map.src[part] == source]
        return ids - chunk_id * self.chunk_size

    def touches(self, chunk_id: int) -> bool:
        at = int(np.searchsorted(self.touched, chunk_id))
        return at < len(self.touched) and int(self.touched[at]) == chunk_id

    def verification_tasks(self, task_of: Callable[[int], Task],
                           chunks_total: int) -> list[Task]:
        """One recomputation per sampled chunk: its reused points only. Its chunk id is
        ``chunks_total`` past the chunk's (the same points, another name), so the broker,
        which keeps one recomputation per chunk id, keeps the chunk's own one too."""
        tasks = []
        for cid, checks in self.checks.items():
            only = np.sort(np.concatenate([c.offsets for c in checks]))
            tasks.append(dataclasses.replace(task_of(cid), chunk_id=chunks_total + cid,
                                             only=tuple(only.tolist())).verification(CHECKER))
        return tasks

    # -- the checks -----------------------------------------------------------------------
    def awaits(self, chunk_id: int) -> bool:
        return chunk_id in self.checks

    def check(self, chunk_id: int, result: Result,
              value_columns: Callable[[Result], Sequence[pa.Array]]) -> None:
        """A sampled chunk recomputed: each source's points compared with their stored
        values; a source that differs is rejected."""
        checks = self.checks.pop(chunk_id)
        result = dataclasses.replace(result, chunk_id=chunk_id)
        mine = None if result.error is not None else value_columns(result)
        for check in checks:
            if check.source in self.rejected:
                continue
            self.points_checked += len(check.offsets)
            if mine is None:
                why = f"its recomputation failed: {result.error}"
            elif stored_agrees(check.stored, [c.take(pa.array(check.offsets)) for c in mine],
                               self.rtol):
                continue
            else:
                why = f"values of chunk {result.chunk_id} differ from their recomputation"
            self._reject(check.source, why)
        if not self.checks:
            self._verdict()

    def _reject(self, source: int, why: str) -> None:
        self.rejected[source] = why
        run = self.map.sources[source].run_id
        count = int((self.map.src == source).sum())
        self.say(f"reuse: run {run} rejected ({why}); its {count:,} reused point(s) are "
                 f"computed again")

    def _verdict(self) -> None:
        if self.rejected:
            self.map = self.map.without(set(self.rejected))
            self.touched = self.map.chunks(self.chunk_size)
        self.final = True

    def _checks(self, run_id: str) -> dict[int, list[Check]]:
        """The sampled chunks, with the stored values of their reused points."""
        cids = self.map.new_ids // self.chunk_size
        if self.mode is VerifyMode.FULL:
            sampled = self.touched
        else:
            picked = [int(c) for c in self.touched.tolist()
                      if zlib.crc32(f"{run_id}/reused/{c}".encode()) % SAMPLE_EVERY == 0]
            firsts = [int(cids[np.argmax(self.map.src == s)]) for s in np.unique(self.map.src)]
            sampled = np.unique(np.array(picked + firsts, dtype=np.int64))
        mask = np.isin(cids, sampled)
        out: dict[int, list[Check]] = {}
        for index in np.unique(self.map.src[mask]).tolist():
            names = value_column_names(pq.read_schema(self.map.sources[index].table))
            parts = list(reused_rows(self.map, index, mask, ["param_id", *names]))
            table = pa.concat_tables(parts).sort_by("param_id") if parts else None
            ids = table.column("param_id").to_numpy() if table is not None else np.zeros(0)
            for cid in sampled.tolist():
                offsets = self.offsets(cid, index)
                if not len(offsets):
                    continue
                lo, hi = np.searchsorted(ids, [cid * self.chunk_size,
                                               (cid + 1) * self.chunk_size])
                rows = table.slice(int(lo), int(hi - lo)) if table is not None else None
                columns = [rows.column(n).combine_chunks() for n in names] if rows else []
                if rows is None or len(rows) != len(offsets):
                    columns = []  # a row the source lost: it cannot agree
                out.setdefault(cid, []).append(Check(index, offsets, StoredChunk(
                    "", values_digest(columns), columns if self.rtol else None,
                    tuple(c.type for c in columns))))
        return out

    # -- what it did -------------------------------------------------------------------------
    def summary(self, fingerprint: str) -> dict[str, Any]:
        return {"fingerprint": fingerprint, "sources": self.map.by_source(),
                "rejected": {self.map.sources[s].run_id: why
                             for s, why in self.rejected.items()},
                "points_checked": self.points_checked, "verify": str(self.mode)}
