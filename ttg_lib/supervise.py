"""The worker as a thin supervisor over its compute process (Celery prefork, Dask nanny).

:class:`Supervisor` hands a batch of chunks to a :class:`~ttg_lib.childproc.ComputeChild`
in one message and gets them back packed. Batches are submitted and collected apart, so the
worker hands over its next batch before it collects this one: the process goes on without
waiting for the worker's round trips to the broker. While it waits it keeps the leases alive
and watches the process's cursor:

* the process died (SIGKILL, SIGSEGV, ``os._exit``, OOM): the point the cursor names is
  tried again, at most ``max_crashes`` more times, then recorded as its own failed row
  (``crashed: signal 9 (SIGKILL)``); a crash in an untracked chunk (fast points) is pinned
  down by computing that chunk again with every point tracked. The chunk's other points are
  computed; the process is replaced; the worker's broker connection never notices.
* a point ran past its time limit (``point_timeout_s``; -1: ``auto``, 10 x the p99 of the
  points finished so far, never under 10 s; before this worker has finished 10, the limit
  another worker of the run learned): the process is killed from outside and the point
  recorded ``timeout after S s``.
* between batches, a process that computed ``recycle_after`` chunks or grew past
  ``max_mib`` is replaced (leaky functions).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from . import byvalue
from .childproc import ChildDied, ComputeChild, may_fork
from .compute import Fetch
from .computestate import AUTO, AUTO_FLOOR_S, Counters, PointClock, Running
from .messages import PointFailure, Task
from .points import UNTRACKED, WAITING, ChunkOutcome, Job, compute_job
from .zygote import Zygote

START_FAILURES = 3  # a compute process that dies this often before any chunk: give up


class ComputeBroken(RuntimeError):
    """The compute process cannot even start; the batch's chunks are dead-lettered."""


@dataclass
class _Tracking:
    """A chunk's crash and timeout record while the supervisor works on it."""

    job: Job
    crashes: dict[int, int] = field(default_factory=dict)
    unknown: int = 0  # crashes or hangs whose point the cursor could not name
    seq: int = 0  # its number in the process it was last sent to (the cursor's SEQ)
    outcome: ChunkOutcome | None = None


@dataclass
class Batch:
    """Chunks submitted together; :meth:`Supervisor.collect` gives their outcomes."""

    tracking: list[_Tracking]
    begun: float
    future: Future[list[ChunkOutcome]] | None = None  # InlineSupervisor's

    @property
    def complete(self) -> bool:
        return all(t.outcome is not None for t in self.tracking)


class Supervisor:
    """Computes batches of chunks in a compute process; see the module docstring."""

    POLL_S = 0.1  # how often the cursor is read while a batch runs

    def __init__(self, log: Callable[..., None] | None = None, renew_every: float = POLL_S,
                 shared_limit: Callable[[str], float] | None = None):
        self.log = log or (lambda *_a, **_k: None)
        self.renew_every = max(renew_every, self.POLL_S)  # keepalive: leases, the heartbeat
        self._ask_limit = shared_limit  # auto: the limit another worker of the run learned
        self._shared: dict[str, float] = {}  # ... by run id, once found (it never changes)
        self.child: ComputeChild | None = None
        self.zygote: Zygote | None = None  # forks the compute processes
        self.clock = PointClock()
        self.counters = Counters()
        self.running: Running | None = None
        self._dead_cpu_s = self._dead_peak_mib = self._next_ask = self._next_keepalive = 0.0
        self._fetch: Fetch | None = None
        self._payloads: dict[str, bytes | None] = {}  # functions shipped by value, by ref
        self._owed: deque[_Tracking] = deque()  # sent to the process, in order, not back yet
        self._unsent: deque[_Tracking] = deque()  # waiting for a (new) process
        self._seen: tuple[int, int] | None = None  # the cursor, as last read ...
        self._since = 0.0  # ... and since when it has read so
        self._start_failures = 0

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
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    def limit_of(self, task: Task) -> float:
        """A point's time limit: auto learns from this worker's points, or, before it has
        finished enough, takes what another worker of the run learned (:meth:`_shared_limit`)."""
        if task.point_timeout_s != AUTO:
            return task.point_timeout_s
        return self.clock.limit() or self._shared.get(task.run_id, 0.0)

    SHARED_ASK_EVERY_S = 2.0

    def _shared_limit(self, task: Task) -> float:
        """Asked of the broker only for a point running past the auto floor with no limit of
        its own yet (a first chunk that hangs), at most every SHARED_ASK_EVERY_S."""
        now = time.monotonic()
        if self._ask_limit is not None and now >= self._next_ask:
            self._next_ask = now + self.SHARED_ASK_EVERY_S
            if found := self._ask_limit(task.run_id):
                self._shared[task.run_id] = found
        return self.limit_of(task)

    def run(self, tasks: list[Task], keepalive: Callable[[], None],
            fetch: Fetch | None = None) -> list[ChunkOutcome]:
        """Every task's outcome, in order, whatever the user's function does (``fetch``: a
        function shipped by value, from the broker, which only this process talks to)."""
        return self.collect(self.submit(tasks, fetch), keepalive)

    def submit(self, tasks: list[Task], fetch: Fetch | None = None) -> Batch:
        """Hand ``tasks`` to the compute process now (behind any batch it is computing)."""
        self._fetch = fetch
        batch = Batch([_Tracking(Job(task)) for task in tasks], time.time())
        self._unsent.extend(batch.tracking)
        try:
            self._send()
        except BaseException:  # the broker failed us (a function shipped by value)
            self._drop(batch)
            raise
        return batch

    def collect(self, batch: Batch, keepalive: Callable[[], None]) -> list[ChunkOutcome]:
        """The batch's outcomes, in order; batches submitted earlier are collected first."""
        self._next_keepalive = time.monotonic() + self.renew_every
        try:
            while not batch.complete:
                if not self._owed:
                    self._send()
                child = self.child
                assert child is not None and self._owed, "a batch waits with nothing sent"
                try:
                    self._watch(child, keepalive)
                except _Restart:  # a point ran out of time: recorded, the process replaced
                    continue
                except ChildDied as exc:
                    self._died(child, exc.how)
        except BaseException:  # given up (ComputeBroken, the broker): not sent again
            self._drop(batch)
            raise
        self.running = None
        outcomes = [t.outcome for t in batch.tracking if t.outcome is not None]
        for tracked, outcome in zip(batch.tracking, outcomes, strict=True):
            if outcome.point_seconds:
                self.clock.add(outcome.point_seconds)
            elif outcome.load_error is None and (count := tracked.job.task.count):
                self.clock.add_mean((outcome.finished_at - outcome.started_at) / count, count)
            if tracked.job.careful:  # computed again after a crash or a hang: it started
                outcome.started_at = batch.begun  # with the batch
        return outcomes

    def _drop(self, batch: Batch) -> None:
        mine = {id(t) for t in batch.tracking}
        self._unsent = deque(t for t in self._unsent if id(t) not in mine)

    def _send(self) -> None:
        """Send what waits to the compute process, as far as recycling allows: a process
        due for replacement takes nothing more, and is replaced once it has caught up."""
        if not self._unsent:
            return
        task = self._unsent[0].job.task
        child = self.child
        if child is not None and (why := self._recycle_due(child, task)):
            if self._owed:
                return  # it finishes what it has first: collect() sends again then
            self.counters.recycled += 1
            self.log("compute_recycled", after=why)
            self._retire(child)
        child = self._child()
        room = len(self._unsent)
        if task.recycle_after:  # exactly N chunks a process, whatever the batches
            room = min(room, task.recycle_after - child.sent)
        jobs = [self._with_function(child, self._unsent[i].job) for i in range(room)]
        for _ in jobs:
            tracked = self._unsent.popleft()
            child.sent += 1
            tracked.seq = child.sent
            self._owed.append(tracked)
        try:
            child.send(jobs)
        except ChildDied:
            pass  # the next receive sees it ended, and deals with what it owed

    def _watch(self, child: ComputeChild, keepalive: Callable[[], None]) -> None:
        """One wait for outcomes; between them, the leases and the cursor (a hung point)."""
        outcomes = child.receive(self.POLL_S)
        if outcomes:
            for outcome in outcomes:
                self._owed.popleft().outcome = outcome
            self._start_failures = 0
            return
        now = time.monotonic()
        if now >= self._next_keepalive:
            keepalive()
            self._next_keepalive = now + self.renew_every
        where = child.where()
        if where != self._seen:
            self._seen, self._since = where, now
        seq, offset = where
        tracked = next((t for t in self._owed if t.seq == seq), None)
        if tracked is None:  # between jobs: nothing of ours is running
            return
        task = tracked.job.task
        running_s = now - self._since
        if offset != WAITING:
            self.running = Running(task.chunk_id, None if offset < 0 else
                                   task.start + offset, running_s)
        limit = self.limit_of(task)
        if not limit and task.point_timeout_s == AUTO and running_s > AUTO_FLOOR_S:
            limit = self._shared_limit(task)
        if limit and offset != WAITING and running_s > limit:
            child.kill()
            self._requeue(child)
            self._timed_out(tracked, offset, limit)
            raise _Restart() from None

    def _died(self, child: ComputeChild, how: str) -> None:
        """The process ended: the point it was on is charged, what it owed is sent again."""
        seq, _offset = where = child.where()
        owed = self._requeue(child)
        tracked = next((t for t in owed if t.seq == seq), None)
        if tracked is None:  # none of its jobs had started: it dies starting
            self._start_failures += 1
            if self._start_failures >= START_FAILURES:
                self._start_failures = 0
                raise ComputeBroken(f"the compute process does not start: {how}")
            return
        self._crashed(tracked, where[1], how)

    def _requeue(self, child: ComputeChild) -> list[_Tracking]:
        """Retire the process; what it owed goes first in line for the next one."""
        owed = list(self._owed)
        self._owed.clear()
        self._unsent.extendleft(reversed(owed))
        self._retire(child)
        return owed

    def _timed_out(self, tracked: _Tracking, offset: int, limit: float) -> None:
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
            if self.zygote is None or not self.zygote.alive:  # (a lost one: once more)
                if self.zygote is not None:
                    self.zygote.close(0.5)
                self.zygote = Zygote(fork=may_fork())
            self.child = ComputeChild(self.zygote)
            self.counters.started += 1
            self._seen = None
        return self.child

    def _retire(self, child: ComputeChild) -> None:
        self._dead_cpu_s += child.cpu_s
        self._dead_peak_mib = max(self._dead_peak_mib, child.rss_mib("VmHWM"))
        child.stop(0.5)
        if self.child is child:
            self.child = None

    def _recycle_due(self, child: ComputeChild, task: Task) -> str:
        """Leaky functions: why a process past its chunk count or memory cap is to be
        replaced ("" if it is not; the run's settings travel with its tasks)."""
        if task.recycle_after and child.sent >= task.recycle_after:
            return f"{child.sent} chunks"
        if task.max_worker_mib and (rss := child.rss_mib()) > task.max_worker_mib:
            return f"{rss:.0f} MiB"
        return ""


class _Restart(ChildDied):
    def __init__(self) -> None:
        super().__init__("killed by the worker")


class InlineSupervisor(Supervisor):
    """Computes in the worker's own process, on a helper thread while the main thread keeps
    the leases: points fail alone, but a crash takes the worker (``ttg worker --no-isolate``,
    TTG_ISOLATE=0, where a second process is not wanted)."""

    def __init__(self, log: Callable[..., None] | None = None, **settings: Any):
        super().__init__(log, **settings)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttg-compute")

    def start(self) -> None:
        return None

    def ready(self) -> None:
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    def submit(self, tasks: list[Task], fetch: Fetch | None = None) -> Batch:
        batch = Batch([_Tracking(Job(task)) for task in tasks], time.time())
        batch.future = self.pool.submit(lambda: [compute_job(Job(task), fetch=fetch)
                                                 for task in tasks])
        return batch

    def collect(self, batch: Batch, keepalive: Callable[[], None]) -> list[ChunkOutcome]:
        assert batch.future is not None
        while True:
            try:
                return batch.future.result(timeout=self.renew_every)
            except FutureTimeout:
                keepalive()
