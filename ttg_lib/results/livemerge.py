"""The table merged while the run goes: the settled prefix of the parts, in the background.

Why: at close every part was read back and written again into ``results.parquet``; for
10^9 rows that took minutes after the last result. Here every id below the *frontier* (the
end of the contiguous run of chunks written from id 0) can no longer change, so a thread
merges those rows into the table's row groups while results still arrive, and the close
merges only the tail. The thread is niced: it takes spare CPU, the run's reading and its
workers first (an orchestrator reading behind the workers lets results pile up in the
broker); whatever it has not reached by the close, the close merges at its own priority.

Crash consistency is unchanged: the merged rows go to ``results.parquet.tmp``, a Parquet
file without its footer until the close (unreadable; a reopening writer deletes it), and
the parts stay the durable copy until the finished table is fsynced and renamed in. Any
doubt (a row below what was merged already, a layout widened late, a failed write) ends
live merging: the close then merges every part, as before.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrowcols import int64s
from .ordered import sorted_batches

_END = 1 << 62  # the frontier of the close: every row
STEP_ROW_GROUPS = 4  # merge once the frontier moved this many row groups (1 Mi rows): a
# part that straddles the frontier is read again at the next step, so not at every part
MERGE_NICE = 10  # the merging thread takes spare CPU: the run's reading and the workers first
# (merged slower than results come, the thread falls behind and the close does the rest)


@dataclass(frozen=True)
class Part:
    path: Path
    low: int
    high: int


class RowGroups:
    """Tables in order written as row groups of exactly ``rows`` (the last: the rest)."""

    def __init__(self, writer: pq.ParquetWriter, rows: int):
        self.writer, self.rows = writer, rows
        self._pending: list[pa.Table] = []
        self._size = 0

    def put(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._size += table.num_rows
        if self._size >= self.rows:  # row groups of exactly ``rows``: the rest waits
            whole = pa.concat_tables(self._pending)
            cut = self._size - self._size % self.rows
            self.writer.write_table(whole.slice(0, cut), row_group_size=self.rows)
            self._pending, self._size = [whole.slice(cut)], self._size - cut

    def close(self, schema: pa.Schema, empty: bool) -> None:
        """The rest; an empty table still gets its one (empty) row group if ``empty``."""
        if self._size or empty:
            self.writer.write_table(pa.concat_tables(self._pending) if self._size
                                    else schema.empty_table())
        self.writer.close()


class LiveMerge:
    """Merges parts into ``out`` up to the frontier, on its own thread.

    The writer's thread calls :meth:`add` after each durable part and :meth:`finish` at
    close; the merging thread reads only parts already renamed in (they never change) and
    writes only ``out``."""

    def __init__(self, out: Path, schema: pa.Schema, rows: int, options: dict[str, Any]):
        self.schema, self._step_rows = schema, STEP_ROW_GROUPS * rows
        self.frontier = 0  # every id below it is in a part (the writer's thread only)
        self._ranges: list[tuple[int, int]] = []  # chunks written past the frontier
        self._merged_to = 0  # every row below it is in ``out`` (the merging thread's)
        self._pending: list[Part] = []
        self._queue: queue.SimpleQueue[tuple[Part | None, int]] = queue.SimpleQueue()
        self.failed: BaseException | None = None
        self._handle = open(out, "wb")  # noqa: SIM115 (closed by the thread or abandon)
        self._groups = RowGroups(pq.ParquetWriter(self._handle, schema, **options), rows)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ttg-live-merge", daemon=True)
        self._thread.start()

    def add(self, part: Path, ids: np.ndarray, ranges: Iterable[tuple[int, int]]) -> bool:
        """A durable part (its sorted ``param_id``s) holding the chunks ``ranges``
        (start, end); False when this part means giving up (a row below the frontier)."""
        if len(ids) and int(ids[0]) < self.frontier:
            return False  # a row already merged, or about to be: the close merges all
        for start, end in ranges:
            heapq.heappush(self._ranges, (start, end))
        while self._ranges and self._ranges[0][0] <= self.frontier:
            self.frontier = max(self.frontier, heapq.heappop(self._ranges)[1])
        if len(ids):
            self._queue.put((Part(part, int(ids[0]), int(ids[-1])), self.frontier))
        return True

    def finish(self) -> bool:
        """Merge the rest here (the caller's thread, at the caller's priority: the niced
        thread stops after its step), write the footer, fsync; False if merging failed
        (the caller merges every part instead)."""
        self._stop_thread()
        try:
            if self.failed is not None:
                raise self.failed
            self._step(_END)
            self._groups.close(self.schema, empty=False)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        except Exception:  # any: the merge of every part decides, and says what failed
            self._discard()
            return False
        return True

    def abandon(self) -> None:
        """Stop merging; ``out`` is left for the caller to overwrite or delete."""
        self._stop_thread()
        self._discard()

    def _stop_thread(self) -> None:
        self._stop.set()
        self._queue.put((None, -1))
        self._thread.join()

    def _discard(self) -> None:
        """Close a file no one will read (the close writes ``out`` anew): a footer that
        fails to go out changes nothing."""
        with contextlib.suppress(OSError, ValueError):
            self._groups.writer.close()
        with contextlib.suppress(OSError):
            self._handle.close()

    # -- the merging thread --

    def _work(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread has its own nice
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MERGE_NICE)
        try:
            while True:
                part, frontier = self._queue.get()
                while part is not None:  # everything queued so far: one step, not one each
                    self._pending.append(part)
                    try:
                        part, frontier = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if frontier < 0:
                    return  # stopped: the close does the rest
                while frontier - self._merged_to >= self._step_rows and not self._stop.is_set():
                    self._step(min(frontier, self._merged_to + self._step_rows))
        except Exception as exc:  # the close merges every part instead
            self.failed = exc

    def _step(self, frontier: int) -> None:
        """Every pending row in [merged_to, frontier) out, in order."""
        low, due = self._merged_to, [p for p in self._pending if p.low < frontier]
        if frontier <= low:
            return
        if due:
            for table in sorted_batches([p.path for p in due], self.schema,
                                        keep=lambda _file, t: _between(t, low, frontier)):
                self._groups.put(table)
        self._merged_to = frontier
        self._pending = [p for p in self._pending if p.high >= frontier]


def _between(table: pa.Table, low: int, high: int) -> pa.Table:
    """The rows with ``low <= param_id < high``."""
    ids = int64s(table.column("param_id"))
    if len(ids) > 1 and not np.all(ids[1:] >= ids[:-1]):
        return table.filter(pa.array((ids >= low) & (ids < high)))
    start, end = np.searchsorted(ids, [low, high], side="left")
    return table.slice(int(start), int(end - start))
