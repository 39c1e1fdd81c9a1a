"""The work the peers benchmark gives Dask, Ray and TTG: the same chunks, the same functions.

Imported by the worker processes of all three systems (``benchmarks/peers.py`` puts the
repository on their PYTHONPATH), so it stays free of heavy imports.
"""

from __future__ import annotations

import math
import os
import pickle
from dataclasses import dataclass
from typing import Any

from ttg_lib.compute import load, placeholder, run_chunk

PLACEHOLDER = "ttg_lib.compute:placeholder"
POINT_XY = "benchmarks.peer_work:point_xy"
WORKERS = 3  # every system gets three worker processes


def point_xy(param_id: int, work_ms: float) -> dict[str, Any]:
    """A small dict per point, as a real sweep returns (a float and an int), deterministic in
    the id so every system's results can be checked against a direct recomputation."""
    h = placeholder(param_id, work_ms)
    return {"x": (h % 1_000_003) / 1_000_003, "y": h % 1_000}


@dataclass(frozen=True)
class Workload:
    name: str
    label: str
    params: int
    chunk: int
    work_ms: float
    compute: str = PLACEHOLDER
    kill_at: float | None = None  # fraction of chunks gathered when one worker is SIGKILLed

    @property
    def chunks(self) -> int:
        return math.ceil(self.params / self.chunk)

    def ranges(self) -> list[tuple[int, int, int]]:
        """(chunk id, start, count) for every chunk, the same for every system."""
        return [(cid, cid * self.chunk, min(self.chunk, self.params - cid * self.chunk))
                for cid in range(self.chunks)]

    def ideal_s(self, workers: int) -> float:
        return math.ceil(self.chunks / workers) * self.chunk * self.work_ms / 1000


def workloads(quick: bool) -> dict[str, Workload]:
    """The issue's five workloads; ``quick`` shrinks each to a few seconds for the smoke test."""
    q = quick
    items = [
        Workload("small", "small", 120 if q else 1_000, 10, 20.0 if q else 100.0),
        Workload("small-fault", "small, one of 3 workers SIGKILLed at 30 %",
                 120 if q else 1_000, 10, 20.0 if q else 100.0, kill_at=0.3),
        Workload("medium", "medium", 1_000 if q else 10_000, 100, 1.0 if q else 10.0),
        Workload("chunks", f"{'1,000' if q else '10,000'} chunks × 10 params, 0 ms",
                 10_000 if q else 100_000, 10, 0.0),
        Workload("million", f"{'20,000' if q else '1,000,000'} points returning a dict, "
                 "chunks of 1,000", 20_000 if q else 1_000_000, 1_000, 0.0, compute=POINT_XY),
    ]
    return {w.name: w for w in items}


def chunk_task(compute: str, chunk_id: int, start: int, count: int, work_ms: float,
               exec_log: str | None = None, packed: bool = False) -> list[Any] | bytes:
    """One chunk on a Dask or Ray worker: the same loop as a TTG worker's. With ``exec_log``,
    each execution first appends "chunk_id pid" to it, so the driver can kill a process that
    is surely mid-chunk and count how many chunks were run more than once. ``packed``
    returns the values pickled as one bytes object (Dask serializes a list result value by
    value, a frame each; TTG packs a batch's values into one frame too)."""
    if exec_log:
        with open(exec_log, "a") as log:  # one short line, O_APPEND: no interleaving
            log.write(f"{chunk_id} {os.getpid()}\n")
    values = run_chunk(load(compute), start, count, work_ms)
    return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL) if packed else values
