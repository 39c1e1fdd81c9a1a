"""In-memory backend: the broker contract inside one process, for unit and contract tests.

Same semantics as the real brokers, so the contract suite runs against all three:
at-least-once delivery with leases (a delivery not kept alive for ``lease_s`` goes to the
next fetch, marked redelivered), a consumer that closes loses its deliveries at once (like
a dropped AMQP connection), retries wait out their delay, dead letters keep their reason,
results are deduplicated by chunk id, results stored over a newer connection than their
task's are announced (like RabbitMQ's), and one run lock. ``memory://NAME`` names a broker
shared by every connection of this process; :func:`broker` reaches it to inject an outage
(``down = True``: every call raises BrokerUnavailable; :meth:`MemoryBroker.restart` also
hands every unacked task back). Worker *processes* cannot share it:
runs use Redis or RabbitMQ.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ..messages import Result, Task, decode_results, encode_results
from . import base
from .base import Delivery, QueueStat, QueueStats, dead_letter_record, result_key
from .blobs import StoresBlobs
from .registry import BackendSpec, QueueNames

SPEC = BackendSpec(name="memory", title="In-memory", module=__name__, client_package=None,
                   url_env="TTG_MEMORY_URL", default_url="memory://default",
                   url_schemes=("memory",), default_port=0, queues=QueueNames.joined("."),
                   recovery="Lease expiry or consumer close")


@dataclass
class MemoryBroker:
    """One broker's state; every method runs under ``cond``."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    ready: deque[tuple[int, bytes, bool]] = field(default_factory=deque)
    pending: dict[int, tuple[int, float, bytes]] = field(default_factory=dict)  # owner, due
    retries: list[tuple[float, int, bytes]] = field(default_factory=list)  # a heap by due
    dlq: list[dict[str, Any]] = field(default_factory=list)
    results: list[bytes] = field(default_factory=list)
    index: set[str] = field(default_factory=set)
    duplicates: int = 0
    lock: str | None = None
    lock_owner: str = ""
    consumers: set[int] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)
    blobs: dict[str, bytes] = field(default_factory=dict)  # functions shipped by value
    down: bool = False
    ids: itertools.count = field(default_factory=itertools.count)

    def release(self, task_id: int, session: int) -> bool:
        """Settle a delivery if ``session`` still holds it (a closed session's deliveries
        went back to the queue, maybe to another consumer)."""
        held = self.pending.get(task_id)
        if held is None or held[0] != session:
            return False
        del self.pending[task_id]
        return True

    def requeue(self, task_id: int) -> None:
        _owner, _due, body = self.pending.pop(task_id)
        self.ready.appendleft((task_id, body, True))
        self.cond.notify_all()

    def restart(self) -> None:
        """A broker restart begins: every call fails until ``down`` is cleared, and every
        unacked task goes back to the queue, as a restarted RabbitMQ hands them back."""
        with self.cond:
            self.down = True
            for task_id in list(self.pending):
                self.requeue(task_id)

    def tick(self, now: float) -> None:
        """Expired leases go back to the queue; retries whose time has come return."""
        for task_id in [t for t, (_o, due, _b) in self.pending.items() if due <= now]:
            self.requeue(task_id)
        while self.retries and self.retries[0][0] <= now:
            _due, task_id, body = heapq.heappop(self.retries)
            self.ready.append((task_id, body, False))


_brokers: dict[str, MemoryBroker] = {}
_sessions = itertools.count(1)  # one per consumer connection, as AMQP channels are
_brokers_lock = threading.Lock()


def broker(url: str = SPEC.default_url) -> MemoryBroker:
    name = urlparse(url).netloc or "default"
    with _brokers_lock:
        return _brokers.setdefault(name, MemoryBroker())


class MemoryConnection(base.Connection):
    spec = SPEC

    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self.b = broker(url)
        self.open = False
        self.severed = False  # a killed process: this connection never comes back

    def _check(self) -> MemoryBroker:
        if self.b.down or not self.open or self.severed:
            raise base.BrokerUnavailable(f"in-memory broker {self.display_url} is unavailable")
        return self.b

    def connect(self) -> None:
        self.open = True
        self._check()

    def close(self) -> None:
        self.open = False

    def server_version(self) -> str:
        return "memory"


class MemoryBlobs(StoresBlobs):
    """Blobs in the broker's dict (see :mod:`.blobs`)."""

    _check: Any  # MemoryConnection's

    def put_blob(self, key: str, data: bytes) -> None:
        b = self._check()
        with b.cond:
            b.blobs[key] = bytes(data)

    def get_blob(self, key: str) -> bytes | None:
        b = self._check()
        with b.cond:
            return b.blobs.get(key)

    def drop_blobs(self, dry_run: bool = False) -> list[str]:
        b = self._check()
        with b.cond:
            gone = [f"memory blobs ({len(b.blobs)})"] if b.blobs else []
            if not dry_run:
                b.blobs.clear()
            return gone


class MemoryInspector(MemoryConnection, base.Inspector):
    def stats(self) -> QueueStats:
        b = self._check()
        with b.cond:
            names, ready, pending = self.spec.queues, len(b.ready), len(b.pending)
            return QueueStats(
                tasks=QueueStat(names.tasks, ready + pending, ready, pending, len(b.consumers)),
                retry=QueueStat(names.retry, len(b.retries), len(b.retries), 0, 0),
                dlq=QueueStat(names.dlq, len(b.dlq), len(b.dlq), 0, 0),
                results=QueueStat(names.results, len(b.results), len(b.results), 0, 0))

    def read_dead_letters(self) -> list[dict[str, Any]]:
        with self._check().cond:
            return [dict(record) for record in self.b.dlq]


class MemoryProducer(MemoryInspector, base.Producer, MemoryBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self.cursor = 0
        self._holds: str | None = None  # the run lock this connection took

    def declare(self) -> None:
        self._check()

    def acquire_run(self, run_id: str, owner: str = "") -> None:
        """The lock dies with the connection that took it, as RabbitMQ's does."""
        with self._check().cond:
            if self.b.lock not in (None, run_id):
                raise base.RunLocked(f"in-memory broker is in use by TTG run {self.b.lock!r}")
            self.b.lock, self.b.lock_owner = run_id, owner or run_id
            self._holds = run_id

    def close(self) -> None:
        with self.b.cond:
            if self._holds is not None and self.b.lock == self._holds:
                self.b.lock = None
            self._holds = None
        super().close()

    def lock_owner(self) -> str | None:
        with self._check().cond:
            return None if self.b.lock is None else self.b.lock_owner

    def release_run(self, run_id: str) -> None:
        with self._check().cond:
            if self.b.lock == run_id:
                self.b.lock = self._holds = None

    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        bodies = [task.encode() for task in tasks]
        with self._check().cond:
            self.b.ready.extend((next(self.b.ids), body, False) for body in bodies)
            self.b.cond.notify_all()
        return len(bodies)

    def read_results(self, timeout: float) -> list[Result | bytes]:
        b = self._check()
        with b.cond:
            b.cond.wait_for(lambda: len(b.results) > self.cursor or b.down, timeout)
            frames, self.cursor = b.results[self.cursor:], len(b.results)
        self._check()
        return [r for frame in frames for r in decode_results(frame)]

    def settle_results(self) -> None:
        with self._check().cond:
            del self.b.results[:self.cursor]
            self.cursor = 0

    def final_counts(self) -> base.FinalCounts:
        """Like Redis' index, this broker drops a duplicate result and counts it."""
        counts = super().final_counts()
        with self._check().cond:
            return base.FinalCounts(counts.stats, counts.dead_letters, self.b.duplicates)

    def purge(self, dry_run: bool = False) -> list[str]:
        b = self._check()
        with b.cond:
            gone = [f"memory queue {n}" for n, items in zip(
                self.spec.queues.by_role().values(),
                (b.ready or b.pending, b.retries, b.dlq, b.results), strict=True) if items]
            if not dry_run:
                for items in (b.ready, b.pending, b.retries, b.dlq, b.results, b.index,
                              b.announced):
                    items.clear()
                b.duplicates = 0
                self.cursor = 0
        return gone + self.drop_blobs(dry_run)


class MemoryConsumer(MemoryConnection, base.Consumer, base.AnnouncesLateResults,
                     MemoryBlobs):
    session = 0

    def connect(self) -> None:
        super().connect()
        with self.b.cond:
            self.session = next(_sessions)
            self.b.consumers.add(id(self))

    def close(self) -> None:
        """Like a dropped connection: whatever this consumer held is redelivered at once."""
        with self.b.cond:
            for task_id in [t for t, (owner, _d, _b) in self.b.pending.items()
                            if owner == self.session]:
                self.b.requeue(task_id)
            self.b.consumers.discard(id(self))
        super().close()

    def sever(self) -> None:
        """What SIGKILL does to a worker's connection: gone, with what it held."""
        self.close()
        self.severed = True

    def fetch(self, consumer: str, timeout: float, max_count: int = 1,
              window: int = 0) -> list[Delivery]:
        b = self._check()
        deadline = time.monotonic() + timeout
        with b.cond:
            while True:
                b.tick(time.monotonic())
                if b.ready or b.down or time.monotonic() >= deadline:
                    break
                b.cond.wait(min(0.05, deadline - time.monotonic()))
            self._check()
            out = []
            while b.ready and len(out) < max_count:
                task_id, body, redelivered = b.ready.popleft()
                b.pending[task_id] = (self.session, time.monotonic() + self.lease_s, body)
                out.append(Delivery(body=body, handle=(task_id, self.session),
                                    redelivered=redelivered))
            return out

    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        with self._check().cond:
            for d in deliveries:
                task_id, session = d.handle
                if self.b.pending.get(task_id, (None,))[0] == session:
                    self.b.pending[task_id] = (session, time.monotonic() + self.lease_s,
                                               self.b.pending[task_id][2])

    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        with self._check().cond:
            fresh = [r for _d, r in done if result_key(r) not in self.b.index]
            self.b.duplicates += len(done) - len(fresh)
            if fresh:
                self.b.index.update(result_key(r) for r in fresh)
                self.b.results.append(encode_results([r for _d, r in done]))
            self.b.announced.update(base.stored_key(r.run_id, r.chunk_id, r.verify)
                                    for d, r in done if d.handle[1] != self.session)
            self._ack(d for d, _r in done)

    def stored_elsewhere(self, key: str, wait_s: float = 0.0) -> bool:
        b = self._check()
        with b.cond:
            return b.cond.wait_for(lambda: key in b.announced, wait_s)

    def discard(self, delivery: Delivery) -> None:
        with self._check().cond:
            self._ack([delivery])

    def retry(self, delivery: Delivery, task: Task, delay_s: float) -> None:
        with self._check().cond:
            if delay_s <= 0:  # due at once: straight back to the tasks
                self.b.ready.append((next(self.b.ids), task.encode(), False))
            else:
                heapq.heappush(self.b.retries,
                               (time.monotonic() + delay_s, next(self.b.ids), task.encode()))
            self._ack([delivery])

    def hand_back(self, items: list[tuple[Delivery, Task]]) -> None:
        with self._check().cond:
            self.b.ready.extend((next(self.b.ids), task.encode(), False) for _d, task in items)
            self._ack(d for d, _t in items)

    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    results: Sequence[Result] = ()) -> None:
        with self._check().cond:
            self.b.dlq.append(dead_letter_record(delivery.body, reason, attempts, time.time()))
            fresh = [r for r in results if result_key(r) not in self.b.index]
            self.b.duplicates += len(results) - len(fresh)
            if fresh:
                self.b.index.update(result_key(r) for r in fresh)
                self.b.results.append(encode_results(fresh))
            self._ack([delivery])

    def _ack(self, deliveries: Iterable[Delivery]) -> None:
        for d in deliveries:
            self.b.release(*d.handle)
        self.b.cond.notify_all()


Inspector, Producer, Consumer = MemoryInspector, MemoryProducer, MemoryConsumer
