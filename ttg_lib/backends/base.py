"""The broker contract, split by who uses it (as dramatiq splits broker and consumer).

* :class:`Inspector` - read-only views (queue depths, dead letters): the monitor;
* :class:`Producer` - the orchestrator's side (declare, run lock, publish tasks, read
  results, purge), also cleanup's;
* :class:`Consumer` - a worker's side (fetch, keep leases, complete, retry, dead-letter).

Every method here is one that every broker really implements. What only some brokers can
do is a *capability*: a small interface of its own below (:class:`ExpiringLock`,
:class:`ResultsIndex`, ...), which a caller checks with ``isinstance`` and which is never a
silent no-op. The worker loop, retry policy, verification and monitoring are written once
against these interfaces; a backend only moves bytes and reports queue depths.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeVar

from ..errors import BrokerUnavailable, RunLocked
from ..messages import Result, Task
from ..urls import redact_url
from .registry import BackendSpec, QueueNames

__all__ = ["BrokerUnavailable", "RunLocked"]  # re-exported: callers catch them from here


@dataclass(frozen=True)
class QueueStat:
    """One queue as the broker reports it; None where the broker cannot say (RabbitMQ
    without its management API knows ready and consumers only), never a guess."""

    name: str
    messages: int | None
    ready: int
    unacked: int | None
    consumers: int


@dataclass(frozen=True)
class QueueStats:
    """The four TTG queues at one instant, in the milestone document's terms."""

    tasks: QueueStat
    retry: QueueStat
    dlq: QueueStat
    results: QueueStat
    hint: str = ""  # why some figures are unknown and how to get them

    def rows(self) -> list[QueueStat]:
        return [self.retry, self.dlq, self.tasks, self.results]

    def to_dict(self) -> dict[str, Any]:
        return {role: asdict(getattr(self, role)) for role in ("tasks", "retry", "dlq", "results")}


@dataclass
class Delivery:
    """A task message handed to one worker; ``handle`` is the backend's own receipt."""

    body: bytes
    handle: Any
    redelivered: bool = False


@dataclass(frozen=True)
class ConsumerInfo:
    """A worker as the broker sees it (Redis: a stream-group consumer; RabbitMQ: the task
    queue's consumers whose tags name the worker)."""

    name: str
    pending: int
    idle_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pending": self.pending, "idle": self.idle_ms}


class Connection(abc.ABC):
    """One broker connection for one process; subclasses add a role."""

    spec: ClassVar[BackendSpec]

    def __init__(self, url: str, *, lease_s: float = 2.0):
        self.url = url
        self.lease_s = lease_s
        self.display_url = redact_url(url)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def queue_names(self) -> QueueNames:
        return self.spec.queues

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection; raise BrokerUnavailable if nobody answers."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def reconnect(self) -> None:
        try:
            self.close()
        except Exception:  # the old connection is already broken; only the new one matters
            pass
        self.connect()

    @abc.abstractmethod
    def server_version(self) -> str: ...

    def __enter__(self) -> Connection:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Inspector(Connection):
    """Read-only views: what the monitor and the run's samples show."""

    @abc.abstractmethod
    def stats(self) -> QueueStats: ...

    @abc.abstractmethod
    def read_dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-lettered message with its reason; reading consumes nothing."""


class Producer(Inspector):
    """The orchestrator's side of one run (and cleanup's)."""

    @abc.abstractmethod
    def declare(self) -> None:
        """Create the TTG queues (idempotent)."""

    @abc.abstractmethod
    def acquire_run(self, run_id: str, owner: str = "") -> None:
        """Take the broker for this run or raise RunLocked naming the holder. ``owner``: an
        opaque record of who holds it (:class:`ttg_lib.runlock.LockOwner`)."""

    @abc.abstractmethod
    def lock_owner(self) -> str | None:
        """The owner record of the run holding the broker ("" when held by an owner that
        cannot be read), None when no run holds it."""

    @abc.abstractmethod
    def release_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        """Publish durably and return how many went out."""

    @abc.abstractmethod
    def read_results(self, timeout: float) -> list[Result | bytes]:
        """New result messages, waiting up to ``timeout``; undecodable ones as raw bytes."""

    @abc.abstractmethod
    def settle_results(self) -> None:
        """Every result read so far is durably stored elsewhere (results.parquet): the broker
        may drop its copies, so its memory is bounded by the work in flight, not the run."""

    @abc.abstractmethod
    def purge(self, dry_run: bool = False) -> list[str]:
        """Empty or delete only the TTG objects this backend creates; return what went."""

    # -- neutral verbs: each default is what a broker does by itself ---------------------
    def keep_run(self, run_id: str) -> None:
        """Keep the run lock alive. Default: nothing to do, the lock dies with the
        connection (RabbitMQ's exclusive queue); an expiring lock is renewed (Redis)."""

    def free(self, consumer: str) -> int:
        """``consumer`` is known dead (its process or pod ended): make the tasks it held
        available now, as if its lease had run out; returns how many. Default 0: the broker
        requeues a dead connection's tasks itself (RabbitMQ)."""
        return 0

    def final_counts(self) -> FinalCounts:
        """At the end of a run (every client gone): queue stats, dead letters, and the
        duplicate results the broker dropped itself (default: none; Redis' index drops and
        counts them)."""
        return FinalCounts(self.stats(), self.read_dead_letters(), 0)


@dataclass(frozen=True)
class FinalCounts:
    stats: QueueStats
    dead_letters: list[dict[str, Any]]
    duplicates_dropped: int


class Consumer(Connection):
    """A worker's side: at-least-once delivery with leases."""

    @abc.abstractmethod
    def fetch(self, consumer: str, timeout: float, max_count: int = 1,
              window: int = 0) -> list[Delivery]:
        """Up to ``max_count`` tasks, waiting up to ``timeout`` for the first one.
        ``window``: how many unacked tasks this consumer may hold at once, those it has
        already included (0: ``max_count``); a broker that pushes tasks (RabbitMQ's
        prefetch) needs it to hand over a batch while the one before is still held."""

    @abc.abstractmethod
    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        """Renew the leases on ``deliveries`` and keep the connection's heartbeats flowing."""

    @abc.abstractmethod
    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        """Store the results, then ack their tasks, in one round trip: at-least-once, never
        lost (a crash in between means a redelivery, and results are keyed by chunk id)."""

    @abc.abstractmethod
    def retry(self, delivery: Delivery, task: Task, delay_s: float) -> None:
        """Park ``task`` (already at its next attempt) for ``delay_s``, then ack the original;
        ``delay_s`` 0 puts it straight back on the tasks queue (a hand-over, no wait)."""

    @abc.abstractmethod
    def hand_back(self, items: list[tuple[Delivery, Task]]) -> None:
        """Put these tasks back on the tasks queue for other workers and ack the originals,
        in one round trip (a worker's recomputations of its own results)."""

    def settle_batch(self, done: list[tuple[Delivery, Result]],
                     handed: list[tuple[Delivery, Task]]) -> None:
        """A batch's end: hand ``handed`` back (:meth:`hand_back`), then store ``done``
        (:meth:`complete`). Default: a round trip each; a broker that commits both at once
        (RabbitMQ: one transaction) overrides it."""
        if handed:
            self.hand_back(handed)
        if done:
            self.complete(done)

    @abc.abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    results: Sequence[Result] = ()) -> None:
        """Move the message to the DLQ with its reason and store ``results`` (its chunk's
        failure; a bundle's, one per chunk), in one round trip; a chunk stored already is a
        duplicate, dropped where the broker keeps an index."""


# -- capabilities: what only some brokers can do ---------------------------------------
class ExpiringLock(abc.ABC):
    """The run lock lapses unless renewed (Redis: :meth:`Producer.keep_run`), so it can
    outlive a crashed holder, whom a new run takes over from; a lock that dies with its
    connection (RabbitMQ's exclusive queue) needs none of this."""

    @abc.abstractmethod
    def take_over_run(self, stale_owner: str, owner: str) -> bool:
        """Replace a lock still held under ``stale_owner`` (a process known to be gone) by
        ``owner``, atomically; False when it changed meanwhile."""

    @abc.abstractmethod
    def lock_holder(self) -> str | None: ...

    @abc.abstractmethod
    def drop_lock(self, dry_run: bool = False) -> list[str]:
        """Remove the lock whoever holds it (cleanup of a run that is gone)."""



class ResultsIndex(abc.ABC):
    """The broker counts the chunks whose results it holds, so a restart that lost its data
    is noticed (Redis without persistence), and results can be read again from the start."""

    @abc.abstractmethod
    def stored_chunks(self) -> int: ...

    @abc.abstractmethod
    def rewind_results(self) -> None: ...



class ListsConsumers(abc.ABC):
    """The broker names its consumers with pending work and idle time (Redis' group; RabbitMQ
    through its management API, whose figures are a sample a few seconds old)."""

    @abc.abstractmethod
    def consumers(self) -> list[ConsumerInfo]: ...


class ForgetsConsumers(abc.ABC):
    """A worker stopping cleanly unregisters, so consumer counts drop at once (Redis)."""

    @abc.abstractmethod
    def leave(self, consumer: str) -> None: ...



class AnnouncesLateResults(abc.ABC):
    """Where a dropped connection hands a worker's tasks back to the queue (RabbitMQ: a broker
    restart), the worker may finish a chunk during the outage and store its result after it
    reconnects, while the handed-back task reaches another worker. Such late stores are
    announced to every worker (inside :meth:`Consumer.complete`), so the worker that receives
    the task settles it instead of computing it a second time."""

    @abc.abstractmethod
    def stored_elsewhere(self, key: str, wait_s: float = 0.0) -> bool:
        """True once a worker announced ``key`` (a :func:`stored_key`) as stored late;
        waits up to ``wait_s`` for the announcement."""

    @abc.abstractmethod
    def discard(self, delivery: Delivery) -> None:
        """Ack a task whose result another worker stored: nothing is published."""


PUBLISH_BATCH = 500  # tasks sent (and made durable) together
FIRST_BATCH = 16  # the first send's: workers start on it while the rest is sent
BATCH_GROWTH = 4  # each send then this many times the last, up to PUBLISH_BATCH


def publish_batches(tasks: Iterable[Task], size: int = PUBLISH_BATCH,
                    first: int = FIRST_BATCH) -> Iterator[list[Task]]:
    """``tasks`` in the lists a producer sends in one round trip (a transaction, a
    pipeline): a small one first, so the workers start while the rest is encoded and sent.
    With 500 from the start, 10,000 fine chunks' first tasks reached the workers only after
    500 bundles were sent (40-90 ms). The sends then grow fourfold (16, 64, 256, 500): each
    is queued before the workers finish the one before, where 16 then 500 left them
    waiting ~20-30 ms for the 500 (a 10^6-point run of 0.4 s, issue 18's cost line)."""
    batch: list[Task] = []
    limit = first
    for task in tasks:
        batch.append(task)
        if len(batch) >= limit:
            yield batch
            batch, limit = [], min(size, limit * BATCH_GROWTH)
    if batch:
        yield batch


def stored_key(run_id: str, chunk_id: int, verify: bool) -> str:
    """A result's name across runs, as late-store announcements carry it."""
    return f"{run_id}/{'v' if verify else ''}{chunk_id}"


def result_key(result: Result) -> str:
    """What a broker dedups results by: the chunk, and apart from it its recomputation."""
    return f"v{result.chunk_id}" if result.verify else str(result.chunk_id)


def dead_letter_record(body: bytes, reason: str, attempts: int, at: float) -> dict[str, Any]:
    """The DLQ entry every backend stores, so reports read one shape."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return {"reason": reason, "attempts": attempts, "dead_lettered_at": at, "body": text}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(*failures: type[BaseException],
                     passthrough: Callable[[BaseException], bool] = lambda exc: False
                     ) -> Callable[[F], F]:
    """Turn a client library's connection failures into the neutral BrokerUnavailable, so
    callers reconnect without knowing which broker they talk to. ``passthrough`` lets an
    error the caller handles itself (RabbitMQ's RESOURCE_LOCKED) through unchanged."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Connection, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except failures as exc:
                if passthrough(exc):
                    raise
                raise BrokerUnavailable(f"{self.spec.title} at {self.display_url} is "
                                        f"unavailable: {exc!r}") from exc

        return wrapper  # type: ignore[return-value]

    return decorate
