"""The run's fault: a worker killed without warning, and how long its chunk took to return.

The fault demo kills at ``kill_at`` of the chunks; the demo's button and tests kill on
request. The first kill is the run's recorded fault (``summary.json``'s ``fault``).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .cluster import Cluster, WorkerState, WorkerStatus
from .messages import Result
from .verify import ResultCollector

FAULT_WAIT_S = 1.0  # how long the fault demo waits for a worker that is surely mid-chunk


class Faults:
    def __init__(self, kill_at: float | None, chunks_total: int):
        self.kill_at = kill_at  # None: no fault demo
        self.chunks_total = chunks_total
        self.first: dict[str, Any] | None = None
        self._due: float | None = None  # the demo kills by then even if nobody is mid-chunk

    def maybe_demo(self, cluster: Cluster, collector: ResultCollector, elapsed_s: float) -> None:
        """At ``kill_at``, kill a worker that is mid-chunk, so the fault shows recovery.

        Equal chunks keep workers in step: the chunk that crosses ``kill_at`` often ends as
        the others do, and a worker's heartbeat may still name a chunk whose result is in.
        So the victim must be busy with a chunk not yet done; if none is, wait a little
        (at most FAULT_WAIT_S) for the next chunks to start."""
        if self.kill_at is None or self.first is not None:
            return
        if collector.finished < math.ceil(self.kill_at * self.chunks_total):
            return
        now, rows = time.monotonic(), cluster.worker_status()
        if self._due is None:
            self._due = now + FAULT_WAIT_S
        victim = _mid_chunk_worker(rows, collector)
        reporting = any(w.last_heartbeat for w in rows)  # a cluster may read no heartbeat
        if victim is None and reporting and now < self._due:
            return
        self.kill(cluster, collector, elapsed_s, victim, reason="fault demo", rows=rows)

    def kill(self, cluster: Cluster, collector: ResultCollector, elapsed_s: float,
             name: str | None = None, reason: str = "manual",
             rows: list[WorkerStatus] | None = None) -> dict[str, Any]:
        """Kill one worker without warning (the cluster picks when ``name`` is None);
        ``rows``: the worker status the caller has just read."""
        status = {w.name: w for w in (rows if rows is not None else cluster.worker_status())}
        victim = cluster.kill_worker(name)
        info = {"kill_at": self.kill_at if reason == "fault demo" else None,
                "killed_worker": victim.name, "killed_at_s": round(elapsed_s, 3),
                "killed_wall": time.time(),
                "killed_at_fraction": round(collector.finished / self.chunks_total, 3),
                "victim_chunk": (status[victim.name].current_chunk if victim.name in status
                                 else None),
                "recovered_after_s": None, "reason": reason}
        if self.first is None:
            self.first = info
        return info

    def on_result(self, result: Result) -> None:
        """The first redelivered chunk started after the kill is the recovery."""
        fault = self.first
        if (fault is not None and fault["recovered_after_s"] is None and result.redelivered
                and result.started_at >= fault["killed_wall"]):
            fault["recovered_after_s"] = round(result.started_at - fault["killed_wall"], 3)
            fault["recovered_chunk"] = result.chunk_id
            fault["recovered_by"] = result.worker

    def summary(self) -> dict[str, Any] | None:
        if self.first is None:
            return None
        return {k: v for k, v in self.first.items() if k != "killed_wall"}


def freeze_busy_workers(cluster: Any, timeout_s: float = 5.0) -> list[str]:
    """SIGSTOP every live worker of a local cluster once each holds a chunk (workers in
    step finish together: frozen between chunks they would hold nothing), so the queues
    hold still, e.g. to compare a monitor with the broker; returns the names to thaw."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [w for w in cluster.worker_status() if w.state == WorkerState.RUNNING]
        if rows and all(w.activity == "busy" for w in rows):
            break
        time.sleep(0.02)  # heartbeat files change without notification
    names = [w.name for w in cluster.live_workers()]
    for name in names:
        cluster.freeze_worker(name)
    return names


def _mid_chunk_worker(rows: list[WorkerStatus], collector: ResultCollector) -> str | None:
    """The worker that started an unfinished chunk last, by the heartbeats."""
    busy = [w for w in rows if w.busy_with is not None
            and 0 <= w.busy_with < collector.chunks_total
            and not collector.chunk_state[w.busy_with]]
    if not busy:
        return None
    return max(busy, key=lambda w: w.chunk_started_at or 0).name
