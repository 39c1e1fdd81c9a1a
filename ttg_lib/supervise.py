"""The worker as a thin supervisor over its compute process (Celery prefork, Dask nanny).

:class:`Supervisor` hands a batch of chunks to a :class:`~ttg_lib.childproc.ComputeChild`
in one message and gets them back packed: no round trip per point, none per chunk of a fast
batch. While it waits it keeps the leases alive and watches the process's cursor:

* the process died (SIGKILL, SIGSEGV, ``os._exit``, OOM): the point the cursor names is
  tried again, at most ``max_crashes`` more times, then recorded as its own failed row
  (``crashed: signal 9 (SIGKILL)``); a crash in an untracked chunk (fast points) is pinned
  down by computing that chunk again with every point tracked. The chunk's other points are
  computed; the process is replaced; the worker's broker connection never notices.
* a point ran past its time limit (``point_timeout_s``; -1: ``auto``, 10 x the p99 of the
  points finished so far, never under 10 s): the process is killed from outside and the point
  recorded ``timeout after S s``.
* between batches, a process that computed ``recycle_after`` chunks or grew past
  ``max_mib`` is replaced (leaky functions).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from . import byvalue
from .childproc import ChildDied, ComputeChild
from .compute import Fetch
from .messages import PointFailure, Task
from .points import UNTRACKED, WAITING, ChunkOutcome, Job, compute_job

AUTO = -1.0  # Task.point_timeout_s: learn the limit from the run
AUTO_FACTOR, AUTO_FLOOR_S, AUTO_MIN_POINTS = 10.0, 10.0, 10
START_FAILURES = 3  # a compute process that dies this often before any chunk: give up
SLOW_POINT_S = 60.0  # a point running longer is shown (heartbeat: ttg monitor, the panel)


class ComputeBroken(RuntimeError):
    """The compute process cannot even start; the batch's chunks are dead-lettered."""


@dataclass
class Running:
    """The point a worker's compute process is on, when it has run for a while."""

    chunk_id: int
    param_id: int | None  # None: the chunk's points are not tracked (fast ones)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"chunk": self.chunk_id, "param_id": self.param_id,
                "seconds": round(self.seconds, 1)}


class PointClock:
    """Durations of the points finished so far (tracked ones), for ``--point-timeout auto``."""

    KEEP = 4096

    def __init__(self) -> None:
        self._sorted: list[float] = []
        self.seen = 0

    def add(self, seconds: list[float]) -> None:
        for s in seconds[-self.KEEP:]:
            bisect.insort(self._sorted, s)
        self.seen += len(seconds)
        if len(self._sorted) > self.KEEP:  # drop evenly: the shape stays
            self._sorted = self._sorted[::2]

    def limit(self) -> float:
        """10 x p99, never under 10 s; 0 (none yet) until enough points finished."""
        if self.seen < AUTO_MIN_POINTS or not self._sorted:
            return 0.0
        p99 = self._sorted[min(len(self._sorted) - 1, int(0.99 * len(self._sorted)))]
        return max(AUTO_FLOOR_S, AUTO_FACTOR * p99)


@dataclass
class _Tracking:
    """A chunk's crash and timeout record while the supervisor works on it."""

    job: Job
    crashes: dict[int, int] = field(default_factory=dict)
    unknown: int = 0  # crashes or hangs whose point the cursor could not name


@dataclass
class Counters:
    crashes: int = 0
    timeouts: int = 0
    recycled: int = 0
    started: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"compute_crashes": self.crashes, "point_timeouts": self.timeouts,
                "compute_recycled": self.recycled, "compute_started": self.started}


class Supervisor:
    """Computes batches of chunks in a compute process; see the module docstring."""

    POLL_S = 0.1  # how often the cursor is read while a batch runs

    def __init__(self, log: Callable[..., None] | None = None):
        self.log = log or (lambda *_a, **_k: None)
        self.child: ComputeChild | None = None
        self.clock = PointClock()
        self.counters = Counters()
        self.running: Running | None = None
        self._dead_cpu_s = 0.0
        self._fetch: Fetch | None = None
        self._payloads: dict[str, bytes | None] = {}  # functions shipped by value, by ref
        self._dead_peak_mib = 0.0

    def peak_rss_mib(self) -> float:
        """The highest peak memory of this worker's compute processes (the worker's own
        peak is reported beside it, so a function's memory is not hidden by the split)."""
        if self.child is not None:
            self._dead_peak_mib = max(self._dead_peak_mib, self.child.rss_mib("VmHWM"))
        return round(self._dead_peak_mib, 1)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of every compute process this worker ran."""
        return self._dead_cpu_s + (self.child.cpu_s if self.child else 0.0)

    def start(self) -> None:
        """Start the compute process ahead of the first chunk (start-up overlaps connect)."""
        self._child()

    READY_TIMEOUT_S = 60.0

    def ready(self) -> None:
        """Wait for the compute process's hello, so a worker that says it is ready is."""
        for _ in range(START_FAILURES):
            child = self._child()
            try:
                if child.wait_ready(self.READY_TIMEOUT_S):
                    return
            except ChildDied as exc:
                self.log("compute_start_failed", level="error", how=exc.how)
            self._retire(child)

    def close(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def limit_of(self, task: Task) -> float:
        return self.clock.limit() if task.point_timeout_s == AUTO else task.point_timeout_s

    def run(self, tasks: list[Task], keepalive: Callable[[], None],
            fetch: Fetch | None = None) -> list[ChunkOutcome]:
        """Every task's outcome, in order, whatever the user's function does (``fetch``: a
        function shipped by value, from the broker, which only this process talks to)."""
        self._fetch = fetch
        begun = time.time()
        tracking = [_Tracking(Job(task)) for task in tasks]
        done: dict[int, ChunkOutcome] = {}
        start_failures = 0
        while len(done) < len(tracking):
            self._maybe_recycle(tasks[0])
            child = self._child()
            pending = [i for i in range(len(tracking)) if i not in done]
            if tasks[0].recycle_after:  # exactly N chunks a process, whatever the batches
                pending = pending[:max(1, tasks[0].recycle_after - child.jobs_done)]
            base = child.seq
            try:
                self._batch(child, [tracking[i] for i in pending], pending, done, keepalive,
                            base)
                start_failures = 0
            except _Restart:  # a point ran out of time: recorded, the process replaced
                continue
            except ChildDied as exc:
                seq, offset = child.where()
                self._retire(child)
                if seq == base:
                    start_failures += 1
                    if start_failures >= START_FAILURES:
                        raise ComputeBroken(f"the compute process does not start: "
                                            f"{exc.how}") from None
                    continue
                index = pending[seq - base - 1] if seq - base - 1 < len(pending) else None
                if index is not None and index not in done:
                    self._crashed(tracking[index], offset, exc.how)
        self.running = None
        for index, outcome in done.items():
            self.clock.add(outcome.point_seconds)
            if tracking[index].job.careful:  # computed again after a crash or a hang: it
                outcome.started_at = begun  # started with the batch
        return [done[i] for i in range(len(tracking))]

    def _batch(self, child: ComputeChild, jobs: list[_Tracking], order: list[int],
               done: dict[int, ChunkOutcome], keepalive: Callable[[], None],
               base: int) -> None:
        child.send([self._with_function(child, t.job) for t in jobs])
        got = 0
        seen, since = child.where(), time.monotonic()
        next_keepalive = since + self.POLL_S
        while got < len(jobs):
            outcomes = child.receive(self.POLL_S)
            for outcome in outcomes or ():
                done[order[got]] = outcome
                got += 1
            now = time.monotonic()
            if outcomes:
                continue
            if now >= next_keepalive:
                keepalive()
                next_keepalive = now + self.POLL_S
            where = child.where()
            if where != seen:
                seen, since = where, now
            seq, offset = where
            if not 0 < seq - base <= len(jobs):
                continue
            tracked = jobs[seq - base - 1]
            task = tracked.job.task
            running_s = now - since
            if offset != WAITING:
                self.running = Running(task.chunk_id, None if offset < 0 else
                                       task.start + offset, running_s)
            limit = self.limit_of(task)
            if limit and offset != WAITING and running_s > limit:
                self._timed_out(child, tracked, offset, limit)
                raise _Restart() from None

    def _timed_out(self, child: ComputeChild, tracked: _Tracking, offset: int,
                   limit: float) -> None:
        child.kill()
        self._retire(child)
        task = tracked.job.task
        tracked.job.careful = True
        if offset == UNTRACKED:  # a fast chunk stalled: find the point with every one tracked
            tracked.unknown += 1
            self.log("chunk_stalled", level="warning", chunk=task.chunk_id, limit_s=limit)
            if tracked.unknown > 2:
                tracked.job.skip.update({i: PointFailure(i, f"timeout after {limit:g} s")
                                         for i in range(task.count)
                                         if i not in tracked.job.skip})
            return
        self.counters.timeouts += 1
        tracked.job.skip[offset] = PointFailure(offset, f"timeout after {limit:g} s")
        self.log("point_timeout", level="warning", chunk=task.chunk_id,
                 param_id=task.start + offset, limit_s=limit)

    def _crashed(self, tracked: _Tracking, offset: int, how: str) -> None:
        task = tracked.job.task
        tracked.job.careful = True
        self.counters.crashes += 1
        if offset < 0:  # untracked (or between retries): the next pass names the point
            tracked.unknown += 1
            self.log("compute_crashed", level="warning", chunk=task.chunk_id, how=how)
            if tracked.unknown > task.max_crashes + 1:  # not even tracked it can be pinned
                tracked.job.skip.update({i: PointFailure(i, f"crashed: {how}",
                                                         tracked.unknown)
                                         for i in range(task.count)
                                         if i not in tracked.job.skip})
            return
        count = tracked.crashes.get(offset, 0) + 1 + tracked.unknown
        tracked.unknown = 0  # the untracked crash was this point's, most likely
        tracked.crashes[offset] = count
        self.log("compute_crashed", level="warning", chunk=task.chunk_id,
                 param_id=task.start + offset, how=how, tries=count)
        if count > task.max_crashes:
            tracked.job.skip[offset] = PointFailure(offset, f"crashed: {how}", count)

    def _with_function(self, child: ComputeChild, job: Job) -> Job:
        """A function shipped by value goes to a compute process once, with its first job."""
        ref = job.task.compute
        job.payload = None
        if byvalue.is_ref(ref) and ref not in child.functions:
            if ref not in self._payloads and self._fetch is not None:
                if len(self._payloads) >= 8:
                    self._payloads.clear()
                self._payloads[ref] = self._fetch(ref[len(byvalue.PREFIX):])
            job.payload = self._payloads.get(ref)
            child.functions.add(ref)
        return job

    def _child(self) -> ComputeChild:
        if self.child is None:
            self.child = ComputeChild()
            self.counters.started += 1
        return self.child

    def _retire(self, child: ComputeChild) -> None:
        self._dead_cpu_s += child.cpu_s
        self._dead_peak_mib = max(self._dead_peak_mib, child.rss_mib("VmHWM"))
        child.stop(0.5)
        if self.child is child:
            self.child = None

    def _maybe_recycle(self, task: Task) -> None:
        """Leaky functions: a process past its chunk count or memory cap is replaced (the
        run's settings travel with its tasks)."""
        child = self.child
        if child is None:
            return
        why = ""
        if task.recycle_after and child.jobs_done >= task.recycle_after:
            why = f"{child.jobs_done} chunks"
        elif task.max_worker_mib and (rss := child.rss_mib()) > task.max_worker_mib:
            why = f"{rss:.0f} MiB"
        if why:
            self.counters.recycled += 1
            self.log("compute_recycled", after=why)
            self._retire(child)


class _Restart(ChildDied):
    def __init__(self) -> None:
        super().__init__("killed by the worker")


class InlineSupervisor(Supervisor):
    """Computes in the worker's own process, on a helper thread while the main thread keeps
    the leases: points fail alone, but a crash takes the worker (``ttg worker --no-isolate``,
    TTG_ISOLATE=0, where a second process is not wanted)."""

    def __init__(self, log: Callable[..., None] | None = None):
        super().__init__(log)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttg-compute")

    def start(self) -> None:
        return None

    def ready(self) -> None:
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    def run(self, tasks: list[Task], keepalive: Callable[[], None],
            fetch: Fetch | None = None) -> list[ChunkOutcome]:
        future = self.pool.submit(lambda: [compute_job(Job(task), fetch=fetch)
                                           for task in tasks])
        while True:
            try:
                return future.result(timeout=self.POLL_S)
            except FutureTimeout:
                keepalive()
