"""``ttg run --resume RUN --retry-failed``: recompute only the failed points, into the same
``results.parquet``.

:class:`FailedPoints` reads which rows of a run's table carry an error; their chunks are
published again with ``Task.only`` naming those points (the chunk mates are not computed
again) and ``attempt`` one above the row's. The results table keeps the new rows of those
points only, and at close drops each old failed row that has a new one (:class:`Supersede`,
persisted in the record so a retry that is itself interrupted loses nothing: an old row goes
only once its replacement is on disk). The table keeps its length.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .messages import Task

SUPERSEDE_FILE = "retry-failed.json"


@dataclasses.dataclass
class FailedPoints:
    """The failed points of a run's table, by chunk: offsets and the highest attempt."""

    chunk_size: int
    offsets: dict[int, list[int]]
    attempts: dict[int, int]

    @classmethod
    def read(cls, files: Sequence[Path], chunk_size: int) -> FailedPoints:
        """The points whose latest row (parts in order: an interrupted retry's new rows
        come after the rows they replace) has an error."""
        tables = [pq.read_table(f, columns=["param_id", "attempt", "error"]) for f in files]
        ever = pa.concat_arrays([t.filter(pc.is_valid(t.column("error"))).column("param_id")
                                 .combine_chunks() for t in tables]
                                or [pa.array([], pa.int64())])
        latest: dict[int, tuple[bool, int]] = {}  # param_id -> (failed, attempt)
        for table in tables:
            rows = table.filter(pc.is_in(table.column("param_id"), value_set=ever))
            for pid, attempt, error in zip(rows.column("param_id").to_pylist(),
                                           rows.column("attempt").to_pylist(),
                                           rows.column("error").to_pylist(), strict=True):
                latest[pid] = (error is not None, int(attempt or 1))
        offsets: dict[int, list[int]] = {}
        attempts: dict[int, int] = {}
        for pid, (failed, attempt) in latest.items():
            if failed:
                chunk = pid // chunk_size
                offsets.setdefault(chunk, []).append(pid - chunk * chunk_size)
                attempts[chunk] = max(attempts.get(chunk, 0), attempt)
        return cls(chunk_size, {c: sorted(o) for c, o in offsets.items()}, attempts)

    @property
    def chunks(self) -> set[int]:
        return set(self.offsets)

    @property
    def count(self) -> int:
        return sum(len(o) for o in self.offsets.values())

    def param_ids(self) -> np.ndarray:
        return np.array(sorted(c * self.chunk_size + o for c, offs in self.offsets.items()
                               for o in offs), dtype=np.int64)

    def task(self, task: Task) -> Task:
        """A retried chunk's task: only its failed points, one attempt higher."""
        if task.chunk_id not in self.offsets:
            return task
        return dataclasses.replace(task, only=tuple(self.offsets[task.chunk_id]),
                                   attempt=self.attempts[task.chunk_id] + 1)


class Supersede:
    """Old failed rows to replace: new rows of retried chunks keep only the retried points;
    at close, the parts before ``from_part`` lose the rows that have a newer one."""

    def __init__(self, param_ids: np.ndarray, chunk_size: int, from_part: int):
        self.param_ids = pa.array(param_ids, type=pa.int64())
        self.chunks = pa.array(np.unique(param_ids // chunk_size), type=pa.int64())
        self.chunk_size = chunk_size
        self.from_part = from_part

    @classmethod
    def extend(cls, earlier: Supersede | None, failed: FailedPoints,
               next_part: int) -> Supersede:
        """A retry's set; an interrupted earlier retry's (not closed yet) is kept in it, from
        its first new part on, so its rows still replace theirs."""
        ids = failed.param_ids()
        if earlier is None:
            return cls(ids, failed.chunk_size, next_part)
        ids = np.union1d(ids, earlier.param_ids.to_numpy())
        return cls(ids, failed.chunk_size, earlier.from_part)

    def save(self, record_dir: Path) -> None:
        (record_dir / SUPERSEDE_FILE).write_text(json.dumps({
            "param_ids": self.param_ids.to_pylist(), "chunk_size": self.chunk_size,
            "from_part": self.from_part}))

    @classmethod
    def load(cls, record_dir: Path) -> Supersede | None:
        try:
            data = json.loads((record_dir / SUPERSEDE_FILE).read_text())
        except (OSError, ValueError):
            return None
        return cls(np.array(data["param_ids"], dtype=np.int64), data["chunk_size"],
                   data["from_part"])

    def new_rows(self, table: pa.Table) -> pa.Table:
        """A fresh batch: rows of retried chunks only for their retried points."""
        ids = table.column("param_id")
        chunk = pc.divide(ids, self.chunk_size)  # integer division on int64
        keep = pc.or_(pc.is_in(ids, value_set=self.param_ids),
                      pc.invert(pc.is_in(chunk, value_set=self.chunks)))
        return table.filter(keep)

    def old_rows(self, parts: Sequence[Path]) -> Callable[[Path, pa.Table], pa.Table]:
        """Which rows of a part to keep: in the parts before the retry, the old failed rows
        that were replaced are left out."""
        new = [p for p in parts if _index(p) >= self.from_part]
        replaced = pa.concat_arrays(
            [pq.read_table(p, columns=["param_id"]).column(0).combine_chunks()
             for p in new] or [pa.array([], pa.int64())])
        replaced = pc.filter(replaced, pc.is_in(replaced, value_set=self.param_ids))

        def keep(part: Path, table: pa.Table) -> pa.Table:
            if _index(part) < self.from_part and len(replaced):
                return table.filter(pc.invert(pc.is_in(table.column("param_id"),
                                                       value_set=replaced)))
            return table
        return keep

    @staticmethod
    def done(record_dir: Path) -> None:
        (record_dir / SUPERSEDE_FILE).unlink(missing_ok=True)


def _index(part: Path) -> int:
    return int(part.stem.split("-")[1])
