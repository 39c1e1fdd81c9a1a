"""The worker: pull a chunk, compute it, store the result, ack; forever.

Backend-agnostic: everything broker-specific sits behind :class:`Backend`.
The chunk is computed on a helper thread while the main thread keeps the
lease and the broker connection alive, so a slow chunk is never mistaken for
a dead worker. SIGTERM lets the current chunk finish and be stored, then the
worker exits 0 (unless TTG_KILL_ON_SIGTERM=1: see :meth:`Worker.install_signal_handlers`).
A broker outage is ridden out by retrying the connection every ~60 ms (refused connections
cost nothing), so work resumes as soon as the broker answers; results computed during the
outage are stored then. A broker that hands such tasks back (RabbitMQ) announces those late
stores, and whichever worker receives a handed-back task settles it instead of computing it
again (:class:`AnnouncesLateResults`).
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import compute
from .backends import (
    DEFAULT_BACKEND,
    REGISTRY,
    AnnouncesLateResults,
    BrokerUnavailable,
    Consumer,
    Delivery,
    ForgetsConsumers,
    StoresBlobs,
    open_consumer,
    stored_key,
)
from .backends.blobs import CURRENT_RUN
from .cluster import hardkill
from .errors import ConfigError
from .logs import EventLog
from .messages import MessageError, Result, Task
from .procs import peak_rss_mib

MAX_BOUNCES = 20  # a recomputation its own producer keeps getting: one worker left; do it


@dataclass
class WorkerSettings:
    backend: str
    url: str
    run_id: str
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_s: float = 2.0
    heartbeat_file: str | None = None
    max_chunks: int = 0  # 0 = until stopped; used by tests
    idle_exit_s: float = 0.0  # 0 = never exit when idle
    exit_with_parent: bool = False  # local cluster: an orphaned worker stops by itself
    kill_on_sigterm: bool = False  # Kubernetes: SIGTERM ends the process at once (exit 137)

    @property
    def renew_every(self) -> float:
        return max(0.05, self.lease_s / 5)

    @classmethod
    def from_env(cls, **overrides: Any) -> WorkerSettings:
        backend = overrides.get("backend") or os.environ.get("TTG_BACKEND", DEFAULT_BACKEND)
        values: dict[str, Any] = {
            "backend": backend,
            "url": REGISTRY[backend].url() if backend in REGISTRY else "",
            "run_id": os.environ.get("TTG_RUN_ID", ""),
            "lease_s": _env_seconds("TTG_LEASE_S", 2.0),
            "heartbeat_file": os.environ.get("TTG_HEARTBEAT_FILE") or None,
            "exit_with_parent": os.environ.get("TTG_EXIT_WITH_PARENT") == "1",
            "kill_on_sigterm": os.environ.get("TTG_KILL_ON_SIGTERM") == "1",
        }
        if os.environ.get("TTG_WORKER_NAME"):
            values["name"] = os.environ["TTG_WORKER_NAME"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(name, raw, "a number of seconds greater than 0")
    return value


class Heartbeat:
    """A small JSON file rewritten atomically: liveness probes and the live worker table."""

    def __init__(self, path: str | None, name: str):
        self.path = Path(path) if path else None
        self.state: dict[str, Any] = {"name": name, "pid": os.getpid(), "state": "starting",
                                      "chunks_done": 0, "current_chunk": None,
                                      "started_at": time.time()}
        self._last = 0.0
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    EVERY_S = 0.25  # writing the file costs ~0.5 ms on overlay filesystems
    FORCED_EVERY_S = 0.1

    def beat(self, force: bool = False, **changes: Any) -> None:
        """Record state; write at most every EVERY_S (a forced beat: every FORCED_EVERY_S,
        so a chunk that takes longer than that is always seen as busy)."""
        self.state.update(changes)
        now = time.time()
        if self.path is None or now - self._last < (self.FORCED_EVERY_S if force
                                                    else self.EVERY_S):
            return
        self._last = now
        self.state["last_heartbeat"] = now
        self.state["peak_rss_mib"] = peak_rss_mib()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


class BatchSizer:
    """How many chunks to take per round trip: one when chunks are slow (fair shares, a
    killed worker holds one), more when they are fast, so the broker is not the bottleneck.
    A batch holds about TARGET_S of work, which bounds the imbalance it can cause."""

    TARGET_S = 0.02
    MAX = 64

    def __init__(self) -> None:
        self.ema_s: float | None = None
        self._size = 1

    def observe(self, seconds: float) -> None:
        self.ema_s = seconds if self.ema_s is None else 0.7 * self.ema_s + 0.3 * seconds

    @property
    def fast(self) -> bool:
        """Chunks this quick need no lease renewal while they run: compute them inline."""
        return self.ema_s is not None and self.ema_s < 0.005

    @property
    def size(self) -> int:
        if self.ema_s is None:
            return 1
        wanted = max(1, min(self.MAX, int(self.TARGET_S / max(self.ema_s, 1e-6))))
        if wanted >= 2 * self._size or wanted * 4 <= self._size:  # hysteresis: a change
            self._size = 1 << (wanted.bit_length() - 1)  # costs RabbitMQ a re-subscribe
        return self._size


class CpuMeter:
    """CPU seconds this worker spent since it was ready, and how much of it went to the
    user's function (``compute_s``, added by the thread that ran it): the rest is TTG's
    overhead, measured."""

    def __init__(self) -> None:
        self._start = 0.0
        self.compute_s = 0.0

    def start(self) -> None:
        self._start = time.process_time()

    def snapshot(self) -> dict[str, float]:
        return {"cpu_s": round(time.process_time() - self._start, 4),
                "compute_cpu_s": round(self.compute_s, 4)}


class Worker:
    def __init__(self, settings: WorkerSettings, backend: Consumer | None = None):
        self.settings = settings
        self.backend = backend or open_consumer(settings.backend, settings.url,
                                                lease_s=settings.lease_s)
        self.log = EventLog(worker=settings.name, run_id=settings.run_id)
        self.heartbeat = Heartbeat(settings.heartbeat_file, settings.name)
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttg-compute")
        self.chunks_done = 0
        self.batch = BatchSizer()
        self._handing_back: list[tuple[Delivery, Task]] = []
        self.cpu = CpuMeter()
        self._parent = os.getppid()
        self._reconnected_at = float("-inf")  # when this worker last came back from an outage
        self._current_runs: set[str] = set()  # runs seen current on the broker (issue 20)

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
        _tighten_timer_slack()
        if not self._connect_with_backoff():
            return 0  # stopped before the broker ever answered
        self._reconnected_at = float("-inf")  # a first connection is no comeback
        self.cpu.start()
        self.heartbeat.beat(force=True, state="ready")  # the first write: never throttled
        self.log("worker_ready", backend=self.settings.backend, pid=os.getpid())
        idle_since = time.monotonic()
        while not self.stopping.is_set() and not self._orphaned():
            try:
                deliveries = self.backend.fetch(self.settings.name, self.FETCH_WAIT_S,
                                                self.batch.size)
                if not deliveries:
                    self.heartbeat.beat(state="idle", current_chunk=None)
                    if (self.settings.idle_exit_s
                            and time.monotonic() - idle_since > self.settings.idle_exit_s):
                        break
                    continue
                if self._orphaned():  # its run is gone: these may be a new run's tasks,
                    break  # left unacked for the new run's workers (RabbitMQ requeues now)
                self.handle_batch(deliveries)
                idle_since = time.monotonic()
            except BrokerUnavailable as exc:
                self.log("broker_unavailable", level="warning", error=str(exc))
                if not self._connect_with_backoff():
                    break
            if self.settings.max_chunks and self.chunks_done >= self.settings.max_chunks:
                break
        self.heartbeat._last = 0.0  # the final state is always written
        self.heartbeat.beat(force=True, state="stopped", current_chunk=None)
        self.log("worker_stopped", chunks_done=self.chunks_done)
        self.pool.shutdown(wait=False)
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

    FETCH_WAIT_S = 0.5  # how long one fetch waits for work (so also: how soon a stop is seen)
    RECONNECT_EVERY_S = (0.03, 0.09)  # jittered: reconnect within ~0.1 s of the broker

    def _connect_with_backoff(self) -> bool:
        """Retry until connected (True) or told to stop (False), a few dozen times a second:
        a broker that is down refuses at once, so fast retries cost nothing and no backoff
        step delays the restart."""
        logged = 0.0
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
    def handle_batch(self, deliveries: list[Delivery]) -> None:
        """Compute each chunk, then store every result and ack every task in one round trip."""
        done: list[tuple[Delivery, Result]] = []
        for index, delivery in enumerate(deliveries):
            result = self.handle(delivery, held=deliveries[index:])
            if result is not None:
                done.append((delivery, result))
        if self._handing_back:  # recomputations of our own results: for other workers
            handed, self._handing_back = self._handing_back, []
            self.backend.hand_back(handed)
        self._store(done)
        self.chunks_done += len(done)
        self.heartbeat.beat(state="idle", chunks_done=self.chunks_done, current_chunk=None,
                            **self.cpu.snapshot())

    def handle(self, delivery: Delivery, held: list[Delivery]) -> Result | None:
        """One chunk; returns its result, or None when it was retried or dead-lettered."""
        try:
            task = Task.decode(delivery.body)
        except MessageError as exc:
            return self._reject(delivery, str(exc))
        if task.run_id != self.settings.run_id:  # issue 20: whose task is it?
            current = self._is_current(task.run_id)
            if self.settings.run_id and current:
                return self._leave_for_its_run(delivery, task)
            if self.settings.run_id or current is False:
                return self._reject(delivery, f"run_id {task.run_id!r} is not this worker's "
                                              f"run {self.settings.run_id or '(the current)'}")
        try:
            fn = compute.resolve(task.compute, self._fetch_function)
        except compute.ComputeImportError as exc:
            return self._reject(delivery, str(exc), task=task)
        if delivery.redelivered and self._stored_late(task):
            self.backend.discard(delivery)  # its result was stored after an outage
            self.log("chunk_already_stored", chunk=task.chunk_id, verify=bool(task.verify_of))
            return None
        if task.verify_of == self.settings.name and task.bounces < MAX_BOUNCES:
            # a recomputation of our own result proves nothing: hand it to another worker
            self._handing_back.append((delivery, task.bounced()))
            return None
        started = time.time()
        self.heartbeat.beat(force=True, state="busy", current_chunk=task.chunk_id,
                            chunk_started_at=started)
        try:
            values = self._compute(held, fn, task)
        except Exception as exc:  # the user's function failed: retry policy decides
            return self._failed(delivery, task, f"{type(exc).__name__}: {exc}", started)
        finished = time.time()
        self.batch.observe(finished - started)
        return Result(run_id=task.run_id, chunk_id=task.chunk_id, start=task.start,
                      count=task.count, worker=self.settings.name, attempt=task.attempt,
                      started_at=started, finished_at=finished, values=values,
                      redelivered=delivery.redelivered, verify=bool(task.verify_of),
                      compute_sha256=function_sha256(task.compute))

    # issue 20 (several machines): a worker joins whichever run is current on the broker (the
    # run id its orchestrator stored there). A worker pinned to a run (--run-id) that receives
    # a task of the current run leaves it for that run's workers, untouched, and stops: its
    # own run is over (a new run empties the queues first). A task of a run that is not
    # current (a stray) is dead-lettered, as before.
    def _is_current(self, run_id: str) -> bool | None:
        """Is ``run_id`` the broker's current run? None: the broker does not say."""
        if run_id in self._current_runs:
            return True
        raw = (self.backend.get_blob(CURRENT_RUN) if isinstance(self.backend, StoresBlobs)
               else None)
        if raw is not None and raw.decode() != run_id:
            return False
        self._current_runs.add(run_id)
        return True if raw is not None else None

    def _leave_for_its_run(self, delivery: Delivery, task: Task) -> None:
        self._handing_back.append((delivery, task))
        self.log("run_over", level="warning", task_run=task.run_id)
        self.stopping.set()
        return None

    def _fetch_function(self, key: str) -> bytes | None:
        """A function shipped by value, from the broker (issue 20)."""
        return self.backend.get_blob(key) if isinstance(self.backend, StoresBlobs) else None

    ANNOUNCE_WAIT_S = 0.5  # right after an outage: how long a handed-back task waits to hear
    ANNOUNCE_WINDOW_S = 5.0  # that its holder, reconnecting too, stored it (they come within
    # ~0.1 s of each other); later, or with no outage, a redelivery means its holder died

    def _stored_late(self, task: Task) -> bool:
        """Did the worker that held this handed-back task (this one, or another) store its
        result after an outage?"""
        if not isinstance(self.backend, AnnouncesLateResults):
            return False
        after_outage = time.monotonic() - self._reconnected_at < self.ANNOUNCE_WINDOW_S
        key = stored_key(task.run_id, task.chunk_id, bool(task.verify_of))
        return self.backend.stored_elsewhere(key, self.ANNOUNCE_WAIT_S if after_outage else 0.0)

    def _compute(self, held: list[Delivery], fn: compute.ComputeFn, task: Task) -> list[Any]:
        """Fast chunks run inline; others on the helper thread while leases are renewed."""
        if self.batch.fast:
            return self._run_chunk(fn, task)
        future = self.pool.submit(self._run_chunk, fn, task)
        while True:
            try:
                return future.result(timeout=self.settings.renew_every)
            except FutureTimeout:
                self._keepalive(held)

    def _run_chunk(self, fn: compute.ComputeFn, task: Task) -> list[Any]:
        """Counts this thread's CPU only: the main thread's keepalives are not compute."""
        started = time.thread_time()
        try:
            return compute.run_chunk(fn, task.start, task.count, task.work_ms, task.space)
        finally:
            self.cpu.compute_s += time.thread_time() - started

    def _keepalive(self, held: list[Delivery]) -> None:
        """A broker hiccup during compute must not kill the chunk: the store step reconnects."""
        try:
            self.backend.keepalive(self.settings.name, held)
        except BrokerUnavailable as exc:
            self.log("keepalive_failed", level="warning", error=str(exc))
        self.heartbeat.beat()

    def _store(self, done: list[tuple[Delivery, Result]]) -> None:
        """Store, reconnecting as needed; a result that cannot be stored is recomputed later."""
        if not done:
            return
        chunks = [r.chunk_id for _d, r in done]
        if self._orphaned():  # nobody collects its run's results now, and a new run may
            self.log("store_skipped", chunks=chunks, reason="the run is gone")  # own the
            return  # queues: storing them there would be another run's foreign results
        for attempt in range(1, 4):
            try:
                self.backend.complete(done)  # late ones are announced where handed back
                self.log("chunks_done", chunks=chunks,
                         redelivered=[r.chunk_id for d, r in done if d.redelivered],
                         seconds=round(sum(r.finished_at - r.started_at for _d, r in done), 4))
                return
            except BrokerUnavailable as exc:
                self.log("store_failed", level="warning", chunks=chunks, try_=attempt,
                         error=str(exc))
                if not self._connect_with_backoff():
                    break
        self.log("store_gave_up", level="error", chunks=chunks)

    def _failed(self, delivery: Delivery, task: Task, error: str, started: float) -> None:
        """Retry with exponential delay, or dead-letter once the retries are used up."""
        self.log("chunk_failed", level="warning", chunk=task.chunk_id, attempt=task.attempt,
                 error=error, trace=traceback.format_exc(limit=3))
        delay = retry_delay(task)
        if delay is not None:
            self.backend.retry(delivery, task.next_attempt(), delay)
            self.log("chunk_retry_scheduled", chunk=task.chunk_id, next_attempt=task.attempt + 1,
                     delay_s=delay)
        else:
            self._reject(delivery, f"failed after {task.attempt} attempts: {error}", task=task,
                         started=started)
        self.heartbeat.beat(state="idle", current_chunk=None)

    def _reject(self, delivery: Delivery, reason: str, task: Task | None = None,
                started: float | None = None) -> None:
        """Dead-letter at once; a valid task of this run also reports its chunk as failed.

        Returns None so callers can ``return self._reject(...)`` from handle()."""
        failure = None
        if task is not None and (task.run_id == self.settings.run_id or (
                not self.settings.run_id and task.run_id in self._current_runs)):
            now = time.time()
            failure = Result(run_id=task.run_id, chunk_id=task.chunk_id, start=task.start,
                             count=task.count, worker=self.settings.name, attempt=task.attempt,
                             started_at=started or now, finished_at=now, error=reason,
                             verify=bool(task.verify_of))
        attempts = task.attempt if task else 1
        self.backend.dead_letter(delivery, reason, attempts, failure)
        self.log("dead_lettered", level="warning", reason=reason,
                 chunk=task.chunk_id if task else None)
        return None


def function_sha256(ref: str) -> str:
    """The fingerprint a result carries: its function's, when it was shipped by value."""
    return ref.removeprefix("sha256:") if ref.startswith("sha256:") else ""


def retry_delay(task: Task) -> float | None:
    """The retry policy: exponential delay (retry_delay_s, then x2 per attempt) while
    retries remain; None once they are used up (the chunk is dead-lettered)."""
    if task.attempt > task.max_retries:
        return None
    return task.retry_delay_s * (2 ** (task.attempt - 1))


def _tighten_timer_slack() -> None:
    """Linux pads every sleep by 50 us of timer slack; 1 us keeps simulated work honest."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
        except (OSError, AttributeError):
            pass


if __name__ == "__main__":
    from ttg_lib.commands.worker import worker

    worker.main(prog_name="python -m ttg_lib.worker")
