"""The one interface every broker implements.

The worker loop, retry policy, verification and monitoring are written once
against this interface; a backend only moves bytes and reports queue depths.
Both backends expose the same four queues (tasks, retry, dlq, results) so
charts, tables and tests never ask which broker they look at.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ..messages import Result, Task


class BrokerUnavailable(ConnectionError):
    """The broker did not answer; callers reconnect with backoff."""


class RunLocked(RuntimeError):
    """Another TTG run holds this broker; two runs never share queues."""


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


class Backend(abc.ABC):
    """A broker connection for one process (orchestrator, worker or monitor)."""

    name: str = ""
    queue_names: tuple[str, str, str, str] = ("", "", "", "")  # tasks, retry, dlq, results

    def __init__(self, url: str, *, lease_s: float = 2.0):
        self.url = url
        self.lease_s = lease_s

    # -- lifecycle ---------------------------------------------------------
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

    # -- orchestrator side -------------------------------------------------
    @abc.abstractmethod
    def declare(self) -> None:
        """Create the TTG queues (idempotent)."""

    @abc.abstractmethod
    def acquire_run(self, run_id: str, owner: str = "") -> None:
        """Take the broker for this run or raise RunLocked naming the holder. ``owner``: an
        opaque record of who holds it (runlock.LockOwner), returned by lock_owner()."""

    def lock_owner(self) -> str | None:
        """The owner record of the run holding the broker ("" when held by an owner that
        cannot be read), None when no run holds it."""
        return None

    def take_over_run(self, stale_owner: str, owner: str) -> bool:
        """Replace a lock still held under ``stale_owner`` (a process known to be gone) by
        ``owner``, atomically; False when it changed meanwhile or the broker frees a dead
        holder's lock by itself (RabbitMQ: exclusive queue)."""
        return False

    @abc.abstractmethod
    def renew_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def release_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        """Publish durably (confirmed) and return how many went out."""

    @abc.abstractmethod
    def read_results(self, timeout: float) -> list[Result | bytes]:
        """New result messages, waiting up to ``timeout``; undecodable ones as raw bytes."""

    def stored_chunks(self) -> int | None:
        """How many chunks' results the broker still holds, where it can say (Redis: its
        dedup index). Fewer than were read means it restarted without its data. None where
        results leave the queue as they are read (RabbitMQ)."""
        return None

    def reset_results_cursor(self) -> None:
        """Read the results queue from its start again (after the broker lost its data)."""

    def release_results(self) -> None:
        """Stop reading results and leave them in the results queue as the run's output."""

    @abc.abstractmethod
    def read_dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-lettered message with its reason (read-only where the broker allows)."""

    @abc.abstractmethod
    def stats(self) -> QueueStats: ...

    def duplicate_count(self) -> int:
        """Redeliveries the broker itself discarded (results keyed by chunk id)."""
        return 0

    @abc.abstractmethod
    def purge(self, dry_run: bool = False) -> list[str]:
        """Empty or delete only the TTG objects this backend creates; return what went."""

    def workers(self) -> list[dict[str, Any]]:
        """Workers the broker knows about (consumer names, idle times) for the monitor."""
        return []

    # -- worker side -------------------------------------------------------
    @abc.abstractmethod
    def fetch(self, consumer: str, timeout: float, max_count: int = 1) -> list[Delivery]:
        """Up to ``max_count`` tasks, waiting up to ``timeout`` for the first one."""

    @abc.abstractmethod
    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        """Renew the leases on ``deliveries`` and keep the connection's heartbeats flowing."""

    @abc.abstractmethod
    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        """Store the results, then ack their tasks, in one round trip: at-least-once, never
        lost (a crash in between means a redelivery, and results are keyed by chunk id)."""

    @abc.abstractmethod
    def retry(self, delivery: Delivery, task: Task, delay_s: float) -> None:
        """Park ``task`` (already at its next attempt) for ``delay_s``, then ack the original."""

    @abc.abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    failure: Result | None = None) -> None:
        """Move the message to the DLQ with its reason; report ``failure`` as the chunk's end."""

    def leave(self, consumer: str) -> None:
        """A worker stopping cleanly unregisters itself, so consumer counts drop at once."""

    def release_pending_of(self, consumer: str) -> int:
        """Orchestrator side: ``consumer`` is known dead (its process or pod ended), so make
        the tasks it held available to other workers now, as if its lease had run out;
        returns how many. Default 0: the broker requeues them itself when the dead
        consumer's connection drops (RabbitMQ)."""
        return 0

    def __enter__(self) -> Backend:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dead_letter_record(body: bytes, reason: str, attempts: int, at: float) -> dict[str, Any]:
    """The DLQ entry both backends store, so reports read one shape."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return {"reason": reason, "attempts": attempts, "dead_lettered_at": at, "body": text}
