"""The worker: pull a chunk, compute it, store the result, ack; forever.

Backend-agnostic: everything broker-specific sits behind :class:`Backend`.
Chunks are computed in a compute process (:mod:`ttg_lib.supervise`) while this one keeps the
lease and the broker connection alive, so a slow chunk is never mistaken for a dead worker,
and a point that crashes or hangs its process fails alone instead of taking the worker (and
its chunk mates) down with it. SIGTERM lets the current chunk finish and be stored, then the
worker exits 0 (unless TTG_KILL_ON_SIGTERM=1: see :meth:`Worker.install_signal_handlers`).
A broker outage is ridden out by retrying the connection every ~60 ms (refused connections
cost nothing), so work resumes as soon as the broker answers; results computed during the
outage are stored then. A broker that hands such tasks back (RabbitMQ) announces those late
stores, and whichever worker receives a handed-back task settles it instead of computing it
again (:class:`AnnouncesLateResults`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import deque
from typing import Any

from .. import childproc
from ..backends import (
    AnnouncesLateResults,
    BrokerUnavailable,
    Consumer,
    Delivery,
    ForgetsConsumers,
    open_consumer,
    stored_key,
)
from ..cluster import hardkill
from ..computestate import SLOW_POINT_S
from ..logs import EventLog
from ..messages import MessageError, Result, Task
from ..points import retry_delay
from ..procs import peak_rss_mib, tighten_timer_slack
from ..supervise import ComputeBroken, InlineSupervisor, Supervisor
from ..workerstate import BatchSizer, CpuMeter, Heartbeat, WorkerSettings
from .current import CurrentRuns
from .flight import InFlight, by_delivery, held_by

__all__ = ["BatchSizer", "CpuMeter", "Heartbeat", "Worker", "WorkerSettings", "retry_delay"]

MAX_BOUNCES = 20  # a recomputation its own producer keeps getting: one worker left; do it
LOOK_AHEAD = 1  # fast chunks: batches handed to the compute process beyond the one being
# stored, so it computes through the worker's round trips; 2 measured no better (Redis large
# preset vs f329c6f, 9 interleaved repeats each: 0.978 with 2, 1.023 with 1)


class Worker:
    def __init__(self, settings: WorkerSettings, backend: Consumer | None = None):
        self.settings = settings
        self.backend = backend or open_consumer(settings.backend, settings.url,
                                                lease_s=settings.lease_s)
        self.log = EventLog(worker=settings.name, run_id=settings.run_id)
        self.heartbeat = Heartbeat(settings.heartbeat_file, settings.name,
                                   peak_rss=self._peak_rss_mib)
        self.stopping = threading.Event()
        self.runs = CurrentRuns(self.backend)  # which run is ours (issue 20)
        self.supervisor = (Supervisor if settings.isolate else InlineSupervisor)(
            log=self.log, renew_every=settings.renew_every,  # leases renewed every lease/5
            shared_limit=self.runs.point_limit)
        self.chunks_done = 0
        self.batch = BatchSizer()
        self._handing_back: list[tuple[Delivery, Task]] = []
        self.cpu = CpuMeter()
        self._parent = os.getppid()
        self._reconnected_at = float("-inf")  # when this worker last came back from an outage

    # -- lifecycle ---------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the current chunk, store it, exit 0.

        With ``kill_on_sigterm`` (TTG_KILL_ON_SIGTERM=1, set by TTG's Kubernetes worker
        ConfigMap) SIGTERM is a hard kill instead: a deleted pod gets SIGTERM from the kubelet
        even for a force delete (kubernetes#120449), so this is how TTG's pod kill ends the
        process mid-chunk, exactly like SIGKILL of a local worker; its chunks are redelivered.
        """
        def stop(signum: int, _frame: Any) -> None:
            if self.settings.kill_on_sigterm:
                hardkill.end_now(signum)  # os._exit: works as a container's PID 1 too
            self.log("stop_requested", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> int:
        tighten_timer_slack()
        self.supervisor.start()  # its start-up overlaps the broker connection
        try:
            return self._run()
        finally:
            self.supervisor.close()

    def _run(self) -> int:
        if not self._connect_with_backoff():
            return 0  # stopped before the broker ever answered
        self._reconnected_at = float("-inf")  # a first connection is no comeback
        self.supervisor.ready()
        self.cpu.start()
        self.heartbeat.beat(force=True, state="ready")  # the first write: never throttled
        self.log("worker_ready", backend=self.settings.backend, pid=os.getpid())
        idle_since = time.monotonic()
        flights: deque[InFlight] = deque()  # batches the compute process has, not stored
        while not self.stopping.is_set() and not self._orphaned():
            try:
                ahead = LOOK_AHEAD if self._looks_ahead() else 0
                deliveries = self.backend.fetch(
                    self.settings.name, 0.0 if flights else self.FETCH_WAIT_S,
                    self.batch.size, window=self.batch.size * (1 + ahead))
                if not deliveries:
                    if flights:  # none more for now: store what is computing
                        self._finish(flights.popleft(), also_held=held_by(flights))
                        continue
                    self.heartbeat.beat(state="idle", current_chunk=None)
                    if (self.settings.idle_exit_s
                            and time.monotonic() - idle_since > self.settings.idle_exit_s):
                        break
                    continue
                if self._orphaned():  # its run is gone: these may be a new run's tasks,
                    break  # left unacked for the new run's workers (RabbitMQ requeues now)
                flights.append(self._begin(deliveries))  # it computes while ...
                if flights[-1].batch is None:  # none admitted (our own recomputations)
                    ahead = 0
                while len(flights) > ahead:  # ... the batches before are stored (slow
                    current = flights.popleft()  # chunks, --max-chunks: one at a time)
                    self._finish(current, also_held=held_by(flights))
                    if current.held and current.bounced == len(current.held):  # handed
                        self.stopping.wait(self.BOUNCE_PAUSE_S)  # back: let another take them
                idle_since = time.monotonic()
            except BrokerUnavailable as exc:
                self.log("broker_unavailable", level="warning", error=str(exc))
                if not self._connect_with_backoff():
                    break
            if self.settings.max_chunks and self.chunks_done >= self.settings.max_chunks:
                break
        while flights:  # a stop lets the chunks in hand finish and be stored
            with contextlib.suppress(BrokerUnavailable):  # else they are redelivered
                self._finish(flights.popleft(), also_held=held_by(flights))
        self.heartbeat._last = 0.0  # the final state is always written
        self.heartbeat.beat(force=True, state="stopped", current_chunk=None)
        self.log("worker_stopped", chunks_done=self.chunks_done)
        if isinstance(self.backend, ForgetsConsumers):
            try:
                self.backend.leave(self.settings.name)
            except BrokerUnavailable:
                pass  # the broker is gone; its consumer record is moot
        self.backend.close()
        return 0

    def _orphaned(self) -> bool:
        """The process that started us is gone: nobody will ever stop us, so stop now."""
        if self.settings.exit_with_parent and os.getppid() != self._parent:
            self.log("orphaned", level="warning", parent=self._parent)
            return True
        return False

    BOUNCE_PAUSE_S = 0.01  # after handing back only our own recomputations: the others
    # fetch about once a batch (~20 ms); fetching at once got them back, 20 round trips in a row
    FETCH_WAIT_S = 0.1  # how long one fetch waits for work (so also: how soon a stop is
    # seen: the run's end waits for it; an idle fetch is a round trip or two, 10 a second)
    RECONNECT_EVERY_S = (0.03, 0.09)  # jittered: reconnect within ~0.1 s of the broker

    def _connect_with_backoff(self) -> bool:
        """Retry until connected (True) or told to stop (False), a few dozen times a second:
        a broker that is down refuses at once, so fast retries cost nothing and no backoff
        step delays the restart."""
        logged = 0.0
        childproc.connected()  # a compute process started from now on is never a fork
        while True:
            try:
                self.backend.reconnect()
                self._reconnected_at = time.monotonic()
                return True
            except BrokerUnavailable as exc:
                if self.stopping.is_set() or self._orphaned():
                    return False
                self.heartbeat.beat(force=True, state="reconnecting")
                if time.monotonic() - logged >= 1.0:  # one line a second, not twenty
                    logged = time.monotonic()
                    self.log("reconnect_wait", level="warning", error=str(exc))
                self.stopping.wait(random.uniform(*self.RECONNECT_EVERY_S))

    # -- chunks --------------------------------------------------------------
    def _looks_ahead(self) -> bool:
        """Fast chunks: the next batch is taken while this one computes, so the compute process
        never waits for the broker (~20 ms of work more in hand); slow ones: one at a time."""
        return self.batch.fast and not self.settings.max_chunks

    def _begin(self, deliveries: list[Delivery]) -> InFlight:
        """Admit the batch's tasks and hand them to the compute process."""
        handing = len(self._handing_back)
        todo = [(d, part) for d in deliveries if (t := self._admit(d)) is not None
                for part in t.parts()]  # a bundle: a result per chunk, an ack for all
        batch = (self.supervisor.submit([t for _d, t in todo], fetch=self.runs.fetch_function)
                 if todo else None)
        return InFlight(todo, deliveries, batch, len(self._handing_back) - handing)

    def _finish(self, flight: InFlight, also_held: list[Delivery] | None = None) -> None:
        """Collect a batch, store its results, ack its tasks (``also_held``: leases kept too)."""
        done = self._compute(flight, flight.held + (also_held or [])) if flight.todo else []
        handed, self._handing_back = self._handing_back, []  # recomputations of our own
        self._store(done, handed)  # results (for other workers), handed back with the store
        self.chunks_done += len(done)
        self.heartbeat.beat(state="idle", chunks_done=self.chunks_done, current_chunk=None,
                            running=None, **self._report())

    def _admit(self, delivery: Delivery) -> Task | None:
        """The task to compute, or None when it was rejected, settled or handed back."""
        try:
            task = Task.decode(delivery.body)
        except MessageError as exc:
            return self._reject(delivery, str(exc))
        if task.run_id != self.settings.run_id:  # issue 20: whose task is it?
            current = self.runs.is_current(task.run_id)
            if self.settings.run_id and current:
                return self._leave_for_its_run(delivery, task)
            if self.settings.run_id or current is False:
                return self._reject(delivery, f"run_id {task.run_id!r} is not this worker's "
                                              f"run {self.settings.run_id or '(the current)'}")
        if delivery.redelivered and self._stored_late(task):
            self.backend.discard(delivery)  # its result was stored after an outage
            self.log("chunk_already_stored", chunk=task.chunk_id, verify=bool(task.verify_of))
            return None
        if task.verify_of == self.settings.name and task.bounces < MAX_BOUNCES:
            # a recomputation of our own result proves nothing: hand it to another worker
            self._handing_back.append((delivery, task.bounced()))
            return None
        return task

    def _compute(self, flight: InFlight,
                 held: list[Delivery]) -> list[tuple[Delivery, Result]]:
        """The chunks' results; whatever the user's function does, it fails only its point."""
        todo = flight.todo
        self.heartbeat.beat(force=True, state="busy", current_chunk=todo[0][1].chunk_id,
                            chunk_started_at=time.time())
        try:
            assert flight.batch is not None
            outcomes = self.supervisor.collect(flight.batch,
                                               keepalive=lambda: self._keepalive(held))
        except ComputeBroken as exc:
            for delivery, tasks in by_delivery(todo):
                self._reject(delivery, str(exc), tasks=tasks)
            return []
        done, refused, took = [], {}, {}
        for (delivery, task), outcome in zip(todo, outcomes, strict=True):
            if outcome.load_error is not None:
                refused.setdefault(id(delivery), outcome.load_error)
                continue
            seconds, chunks = took.get(id(delivery), (0.0, 0))  # a bundle: one message
            took[id(delivery)] = (seconds + outcome.finished_at - outcome.started_at,
                                  chunks + 1)
            self.cpu.compute_s += outcome.compute_cpu_s
            for failure in outcome.failures:
                self.log("point_failed", level="warning", chunk=task.chunk_id,
                         param_id=task.start + failure.offset, error=failure.error,
                         attempts=failure.attempts)
            done.append((delivery, Result(
                run_id=task.run_id, chunk_id=task.chunk_id, start=task.start,
                count=task.count, worker=self.settings.name, attempt=task.attempt,
                started_at=outcome.started_at, finished_at=outcome.finished_at,
                values=outcome.values, redelivered=delivery.redelivered,
                verify=bool(task.verify_of), failures=outcome.failures,
                point_limit_s=self.supervisor.limit_of(task) if task.point_timeout_s < 0
                else 0.0, compute_sha256=function_sha256(task.compute))))
        for seconds, chunks in took.values():
            self.batch.observe(seconds, chunks)  # the batch sizer counts messages
        if refused:  # a task (or a bundle) is dead-lettered whole, its results stored with it
            for delivery, tasks in by_delivery(todo):
                if id(delivery) in refused:
                    self._reject(delivery, refused[id(delivery)], tasks=tasks,
                                 results=[r for d, r in done if d is delivery])
            done = [(d, r) for d, r in done if id(d) not in refused]
        return done

    def _peak_rss_mib(self) -> float:
        """The larger of this process's peak and its compute processes' (one is the broker
        side, the other the user's function: their peaks need not coincide)."""
        own = peak_rss_mib()
        supervisor = getattr(self, "supervisor", None)  # the first beat may come before it
        return max(own, supervisor.peak_rss_mib()) if supervisor is not None else own

    def _report(self) -> dict[str, Any]:
        """CPU and compute-process counters for the heartbeat (the worker table, summary)."""
        return {**self.cpu.snapshot(self.supervisor.cpu_s), **self.supervisor.counters.to_dict()}

    def _leave_for_its_run(self, delivery: Delivery, task: Task) -> None:
        self._handing_back.append((delivery, task))
        self.log("run_over", level="warning", task_run=task.run_id)
        self.stopping.set()
        return None

    ANNOUNCE_WAIT_S = 0.5  # right after an outage: how long a handed-back task waits to hear
    ANNOUNCE_WINDOW_S = 5.0  # that its holder, reconnecting too, stored it (they come within
    # ~0.1 s of each other); later, or with no outage, a redelivery means its holder died

    def _stored_late(self, task: Task) -> bool:
        """Did the worker that held this handed-back task (this one, or another) store its
        result after an outage?"""
        if not isinstance(self.backend, AnnouncesLateResults):
            return False
        after_outage = time.monotonic() - self._reconnected_at < self.ANNOUNCE_WINDOW_S
        wait = self.ANNOUNCE_WAIT_S if after_outage else 0.0
        return all(self.backend.stored_elsewhere(  # a bundle: every chunk of it
            stored_key(part.run_id, part.chunk_id, bool(part.verify_of)), wait)
            for part in task.parts())

    def _keepalive(self, held: list[Delivery]) -> None:
        """A broker hiccup during compute must not kill the chunk: the store step reconnects.
        A point running for over a minute shows in the heartbeat (worker table, monitor)."""
        try:
            self.backend.keepalive(self.settings.name, held)
        except BrokerUnavailable as exc:
            self.log("keepalive_failed", level="warning", error=str(exc))
        running = self.supervisor.running
        if running is not None:
            self.heartbeat.beat(current_chunk=running.chunk_id,
                                running=running.to_dict() if running.seconds > SLOW_POINT_S
                                else None)
        else:
            self.heartbeat.beat()

    def _store(self, done: list[tuple[Delivery, Result]],
               handed: list[tuple[Delivery, Task]] | None = None) -> None:
        """Hand back ``handed`` and store, in one round trip where the broker can; reconnect
        as needed (a hand-back is not tried again: a lost connection gives its tasks back
        by itself, or their lease runs out); a result that cannot be stored is recomputed."""
        if self._orphaned():  # nobody collects its run's results now, and a new run may
            if handed:  # own the queues: storing them there would be another run's foreign
                self.backend.hand_back(handed)  # results (the tasks go back, though)
            if done:
                self.log("store_skipped", chunks=[r.chunk_id for _d, r in done],
                         reason="the run is gone")
            return
        if not done and not handed:
            return
        chunks = [r.chunk_id for _d, r in done]
        for attempt in range(1, 4):
            try:  # late ones are announced where handed back
                self.backend.settle_batch(done, (handed or []) if attempt == 1 else [])
                if done:
                    self.log("chunks_done", chunks=chunks,
                             redelivered=[r.chunk_id for d, r in done if d.redelivered],
                             seconds=round(sum(r.finished_at - r.started_at
                                               for _d, r in done), 4))
                return
            except BrokerUnavailable as exc:
                self.log("store_failed", level="warning", chunks=chunks, try_=attempt,
                         error=str(exc))
                if not self._connect_with_backoff():
                    break
        self.log("store_gave_up", level="error", chunks=chunks)

    def _reject(self, delivery: Delivery, reason: str, tasks: list[Task] | None = None,
                results: list[Result] | None = None) -> None:
        """Dead-letter at once; valid tasks of this run (a bundle's chunks) also report their
        chunks as failed, except those in ``results`` (computed: stored with it).

        Returns None so callers can ``return self._reject(...)`` from _admit()."""
        stored = list(results or [])
        ours = [t for t in tasks or [] if t.run_id == self.settings.run_id or (
            not self.settings.run_id and t.run_id in self.runs)]
        now, computed = time.time(), {r.chunk_id for r in stored}
        stored += [Result(run_id=t.run_id, chunk_id=t.chunk_id, start=t.start, count=t.count,
                          worker=self.settings.name, attempt=t.attempt, started_at=now,
                          finished_at=now, error=reason, verify=bool(t.verify_of))
                   for t in ours if t.chunk_id not in computed]
        attempts = tasks[0].attempt if tasks else 1
        self.backend.dead_letter(delivery, reason, attempts, stored)
        self.log("dead_lettered", level="warning", reason=reason,
                 chunk=[t.chunk_id for t in tasks] if tasks and len(tasks) > 1
                 else tasks[0].chunk_id if tasks else None)
        return None


def function_sha256(ref: str) -> str:
    """The fingerprint a result carries: its function's, when it was shipped by value."""
    return ref.removeprefix("sha256:") if ref.startswith("sha256:") else ""

