"""The orchestrator's hold on the broker for one run.

Connect and take the run lock; ride out an outage (reconnect, take the lock again, and
when the broker came back without its data, publish every unfinished chunk again); publish
the run's tasks a window at a time (:class:`ttg_lib.window.TaskWindow`); keep an expiring
lock renewed; at the end, read what the broker holds (queue depths, dead letters,
duplicates it dropped) and let go. :class:`ttg_lib.run.Run` drives it and never asks which
broker it is: what only some brokers can do is a capability checked here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .backends import BrokerUnavailable, Producer, QueueStats, ResultsIndex, StoresBlobs
from .backends.blobs import CURRENT_RUN, point_limit_key
from .errors import RunError
from .messages import Result, Task
from .runlock import LockOwner, acquire, broker_progress
from .window import TaskWindow

if TYPE_CHECKING:
    from .ledger import Ledger

RENEW_EVERY_S = 3.0  # an expiring lock lives 15 s: renewed five times before it lapses
RETRY_PAUSE_S = 0.05  # refused at once while down: retry soon, resume within ~0.1 s


class BrokerSession:
    def __init__(self, producer: Producer, owner: LockOwner, clock: Callable[[], float],
                 ledger: Ledger):
        self.producer = producer
        self.owner = owner
        self.run_id = owner.run_id
        self.clock = clock  # the run's elapsed seconds, for the outage record
        self.ledger = ledger  # what to publish again after data loss; what workers learned
        self._limit_shared = False
        self.window: TaskWindow | None = None  # the run's own tasks, published as results come
        self.outages: list[dict[str, Any]] = []
        self._down_since: float | None = None
        self._next_renew = 0.0
        self._blobs: dict[str, bytes] = {}  # stored again if the broker loses its data

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def open(self, *, wait: bool = False, say: Callable[[str], None] = print) -> None:
        """Connect and take the broker for this run (taking over a dead holder's lock, or
        waiting for a live one when ``wait``). Nothing is emptied yet: a resumed run reads
        what the broker still holds first, then calls :meth:`clear`."""
        try:
            self.producer.connect()
        except BrokerUnavailable as exc:
            raise RunError(str(exc)) from None
        acquire(self.producer, self.owner, wait=wait, say=say,
                progress=lambda: broker_progress(self.producer))

    def clear(self) -> None:
        """Start from empty TTG queues (the lock is ours)."""
        self.producer.purge()
        self.producer.declare()
        if isinstance(self.producer, StoresBlobs):  # workers that join ask which run is on
            self.store_blob(CURRENT_RUN, self.run_id.encode())

    def store_blob(self, key: str, data: bytes) -> None:
        """Store the run's function shipped by value on the broker (after the purge)."""
        if not isinstance(self.producer, StoresBlobs):
            raise RunError(f"{self.producer.spec.title} cannot carry a function by value: pass "
                           f"an importable 'module:function'")
        self._blobs[key] = data
        self.producer.put_blob(key, data)

    # -- during the run ----------------------------------------------------------------
    def read(self, timeout: float) -> list[Result | bytes]:
        """New results; [] while the broker is down (the outage is recorded, not raised)."""
        try:
            results = self.producer.read_results(timeout)
        except BrokerUnavailable as exc:
            self.went_down(exc)
            return []
        if self.down:
            self._came_back()
        return results

    def stats(self) -> QueueStats | None:
        """Queue depths, or None while the broker is down."""
        if self.down:
            return None
        try:
            return self.producer.stats()
        except BrokerUnavailable as exc:
            self.went_down(exc)
            return None

    def publish(self, tasks: list[Task]) -> bool:
        """Publish more tasks mid-run (recomputations); False when the broker is down."""
        try:
            self.producer.publish_tasks(tasks)
            return True
        except BrokerUnavailable as exc:
            self.went_down(exc)
            return False

    def start_publishing(self, window: TaskWindow) -> None:
        """Publish the window's first tasks (a broker that refuses them fails the start)."""
        self.window = window
        first = window.due()
        self.producer.publish_tasks(first)
        window.sent(first)

    def top_up(self) -> None:
        """Publish what the results read since have made room for (nothing while down)."""
        if self.window is None or self.down:
            return
        tasks = self.window.due()
        if not tasks:
            return
        if self.publish(tasks):
            self.window.sent(tasks)
        else:
            self.window.put_back(tasks)

    def share_point_limit(self) -> None:
        """--point-timeout auto: the first limit a worker learned from its own points goes on
        the broker once, for the workers that have finished none yet (a first chunk that hangs
        would otherwise never meet a limit)."""
        limit = self.ledger.failures.point_limit_s
        if self._limit_shared or not limit or self.down or not isinstance(self.producer,
                                                                          StoresBlobs):
            return
        try:
            self.store_blob(point_limit_key(self.run_id), repr(limit).encode())
            self._limit_shared = True
        except BrokerUnavailable as exc:
            self.went_down(exc)

    def settle(self) -> None:
        """Every result read is on disk: let the broker drop its copies (best effort: what
        stays is read again only by a resume, which skips what is on disk)."""
        if self.down:
            return
        try:
            self.producer.settle_results()
        except BrokerUnavailable as exc:
            self.went_down(exc)

    def keep_lock(self) -> None:
        """Keep the run's lease on the broker: every RENEW_EVERY_S (an expiring lock lives
        15 s; a lock tied to the connection needs nothing, which the broker's verb says)."""
        now = time.monotonic()
        if self.down or now < self._next_renew:
            return
        self._next_renew = now + RENEW_EVERY_S
        try:
            self.producer.keep_run(self.run_id)
        except BrokerUnavailable as exc:
            self.went_down(exc)

    def free_dead(self, names: Iterable[str]) -> dict[str, int]:
        """Workers the cluster saw end held tasks the broker frees only when their lease runs
        out: hand them to the other workers now, where the broker can (the lease stays the
        fallback for what nobody saw die). Returns the tasks freed per worker."""
        if self.down:
            return {}
        freed = {}
        for name in names:
            try:
                freed[name] = self.producer.free(name)
            except BrokerUnavailable as exc:
                self.went_down(exc)
                break  # the lease frees them
        return {name: count for name, count in freed.items() if count}

    def went_down(self, exc: BaseException) -> None:
        """Record the outage (once) and try to reconnect; the next step tries again."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.outages.append({"start_s": round(self.clock(), 3), "end_s": None,
                                 "error": str(exc)})
        try:
            self.producer.reconnect()
            self.producer.declare()
            self.producer.acquire_run(self.run_id, self.owner.encode())
        except BrokerUnavailable:
            time.sleep(RETRY_PAUSE_S)

    def _came_back(self) -> None:
        self.outages[-1]["end_s"] = round(self.clock(), 3)
        self._down_since = None
        self._republish_if_data_lost()

    def _republish_if_data_lost(self) -> None:
        """A broker that came back without its data (no persistence) lost our tasks: publish
        every unfinished chunk again (through the window: it starts over with them). Results
        are keyed by chunk id, so this is safe."""
        if not isinstance(self.producer, ResultsIndex):
            return
        stored = self.producer.stored_chunks()
        if stored >= self.ledger.collector.completed:
            return
        missing = list(self.ledger.unfinished())
        checks = sum(task.chunks for task in missing if task.verify_of)
        self.outages[-1]["republished_chunks"] = sum(t.chunks for t in missing) - checks
        self.outages[-1]["republished_checks"] = checks  # recomputations asked for again
        self.outages[-1]["broker_kept_chunks"] = stored
        self.producer.rewind_results()
        for key, data in self._blobs.items():  # the function, before the tasks that need it
            self.producer.put_blob(key, data)  # type: ignore[attr-defined]
        if self.window is None:  # not publishing yet (a resume reading what is left): the
            return  # queues are cleared next, and then every unfinished chunk goes out
        self.window.restart(missing)
        self.top_up()

    # -- at the end --------------------------------------------------------------------
    def final_state(self) -> tuple[QueueStats | None, list[dict[str, Any]], int]:
        """Queue stats, dead letters and the duplicates the broker dropped, once the run has
        read the late results; reconnecting as needed (None, [], 0 if it never comes)."""
        for _ in range(50):
            try:
                if self.down:
                    self.went_down(RuntimeError("reconnecting for final stats"))
                counts = self.producer.final_counts()
                return settled(counts.stats), counts.dead_letters, counts.duplicates_dropped
            except BrokerUnavailable as exc:
                self.went_down(exc)
        return None, [], 0

    def close(self) -> None:
        """Let the broker go: release the lock (an expiring one lapses anyway) and close."""
        try:
            self.producer.release_run(self.run_id)
        except Exception:  # best effort: the broker may be gone; the lock goes with it
            pass
        self.producer.close()


def settled(stats: QueueStats) -> QueueStats:
    """At the end every TTG client has let go (workers stopped, results released), so nothing
    is unacked: a queue's messages are its ready ones. A broker that cannot count unacked
    messages (RabbitMQ without its management API) is then exact too."""
    rows = {role: replace(q, messages=q.ready, unacked=0) if q.messages is None else q
            for role, q in (("tasks", stats.tasks), ("retry", stats.retry), ("dlq", stats.dlq),
                            ("results", stats.results))}
    return QueueStats(**rows)
