"""Workers that join a run from other hosts (``ttg worker`` pointed at the run's broker).

The run starts none of them, so it knows them only as the broker does: the consumers on its
tasks queue. :class:`JoinedWorkers` waits, before any task is published, until the number
the run expects have joined (a progress line now and then), and afterwards counts them as the
run's live workers, so a run of joined workers alone is not taken for a stalled one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .backends import BrokerUnavailable, ListsConsumers, Producer, QueueStats
from .errors import RunError
from .urls import redact_url

POLL_S = 0.25
SAY_EVERY_S = 5.0


class JoinedWorkers:
    def __init__(self, producer: Producer, expect: int, hint: str = ""):
        self.producer = producer
        self.expect = expect
        self.hint = hint  # the command that joins a worker, for the waiting line

    def count(self) -> int:
        """Workers on the tasks queue right now (0 while the broker does not answer): its
        consumers, and where the broker lists them, every one listed (Redis counts a
        waiting consumer as idle, not live; the run's purge left only those that joined)."""
        try:
            joined = self.producer.stats().tasks.consumers
            if isinstance(self.producer, ListsConsumers):
                joined = max(joined, len(self.producer.consumers()))
            return joined
        except BrokerUnavailable:
            return 0

    def wait(self, timeout_s: float, say: Callable[[str], None],
             tick: Callable[[], None] = lambda: None) -> int:
        """Block until ``expect`` workers joined; ``tick`` keeps the run's lock meanwhile.
        Raises RunError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        next_say, joined = 0.0, -1
        while True:
            now_joined = self.count()
            if now_joined >= self.expect:
                say(f"{now_joined} worker(s) joined; publishing the tasks")
                return now_joined
            now = time.monotonic()
            if now >= deadline:
                raise RunError(f"only {now_joined} of {self.expect} workers joined within "
                               f"{timeout_s:.0f} s; {self.hint}")
            if now >= next_say or now_joined != joined:
                next_say, joined = now + SAY_EVERY_S, now_joined
                say(f"waiting for workers: {now_joined} of {self.expect} joined. {self.hint}")
            tick()
            time.sleep(POLL_S)  # consumers join in other processes: nothing to wait on here

    def live(self, stats: QueueStats | None) -> int:
        """Joined workers in the last queue sample (without samples: as many as expected)."""
        return stats.tasks.consumers if stats is not None else self.expect


def join_hint(config: Any) -> str:
    """The command a host runs to join this run (the URL as this host reaches the broker)."""
    return (f"Start them on any host with: ttg worker --backend {config.backend} --url "
            f"{redact_url(config.broker_url)} (README: Several machines)")
