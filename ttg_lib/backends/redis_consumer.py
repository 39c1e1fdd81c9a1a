"""Redis Streams, the worker's side: tasks by XREADGROUP with leases (a pending entry idle
past its lease is claimed by another worker), results stored and tasks acked in one Lua
call (``lua/complete.lua``: the results index drops a duplicate), retries and dead letters
by script. The orchestrator's side, the key names and the connection are in
:mod:`ttg_lib.backends.redis_streams`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ..messages import Result, Task, encode_results
from . import base
from .base import Delivery, dead_letter_record, result_key, text
from .redis_blobs import RedisBlobs
from .redis_streams import (
    DLQ,
    GROUP,
    INDEX,
    RESULTS,
    RETRY,
    STATS,
    TASKS,
    RedisConnection,
    block_ms,
    group_lost,
    redis_errors,
)


class RedisConsumer(RedisConnection, base.Consumer, base.ForgetsConsumers, RedisBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self._last_sweep = 0.0
        self._idle = True

    @redis_errors
    def leave(self, consumer: str) -> None:
        """Deleting a consumer drops its pending entries, so only one that holds none goes."""
        mine = [c for c in self._consumers() if c.name == consumer]
        if mine and mine[0].pending == 0:
            self.r.xgroup_delconsumer(TASKS, GROUP, consumer)

    @redis_errors
    def fetch(self, consumer: str, timeout: float, max_count: int = 1,
              window: int = 0) -> list[Delivery]:
        with group_lost(self.declare):  # the orchestrator refills the tasks
            return self._fetch(consumer, timeout, max_count)
        return []

    def _fetch(self, consumer: str, timeout: float, max_count: int) -> list[Delivery]:
        now = time.monotonic()
        if now - self._last_sweep >= min(0.5, self.lease_s / 4):
            self._last_sweep = now
            self._scripts["promote"](keys=[RETRY, TASKS])
            stale = self._claim_stale(consumer)
            if stale is not None:
                return [stale]
        if self._idle:  # issue 20: a blocked XREADGROUP creates no consumer (Redis < 7.2),
            # yet a run waiting for workers to join counts them: a waiting worker is one
            self.r.xgroup_createconsumer(TASKS, GROUP, consumer)
        reply = self.r.xreadgroup(GROUP, consumer, {TASKS: ">"}, count=max_count,
                                  block=block_ms(timeout))
        out = [Delivery(body=_task_body(fields), handle=entry_id)
               for _stream, entries in reply or [] for entry_id, fields in entries]
        if timeout > 0 or out:  # a look-ahead (timeout 0) that finds nothing is not idleness:
            self._idle = not out  # resetting the sweep then cost a promote and an XAUTOCLAIM
            if not out:  # every batch of a fast run (issue 18's cost line)
                self._last_sweep = 0.0  # idle: look for stale work again on the next call
        return out

    def _claim_stale(self, consumer: str) -> Delivery | None:
        cursor = "0-0"
        min_idle = int(self.lease_s * 1000)
        for _ in range(100):  # XAUTOCLAIM scans at most 10 x COUNT entries per call
            reply = self.r.xautoclaim(TASKS, GROUP, consumer, min_idle, cursor, count=1)
            cursor, entries = text(reply[0]), reply[1]
            for entry in entries:
                if entry and entry[1] is not None:
                    return Delivery(body=_task_body(entry[1]), handle=entry[0], redelivered=True)
            if cursor == "0-0":
                return None
        return None

    @redis_errors
    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        if deliveries:
            with group_lost():  # nothing left to keep: storing the result still counts
                self.r.xclaim(TASKS, GROUP, consumer, 0, [d.handle for d in deliveries],
                              justid=True)

    @redis_errors
    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        if not done:
            return
        args: list[Any] = [GROUP, encode_results([result for _d, result in done])]
        for delivery, result in done:
            args += [delivery.handle, result_key(result)]
        self._scripts["complete"](keys=[TASKS, RESULTS, INDEX, STATS], args=args)

    @redis_errors
    def retry(self, delivery: Delivery, task: Task, delay_s: float) -> None:
        self._scripts["retry"](keys=[TASKS, RETRY],
                               args=[GROUP, delivery.handle, int(delay_s * 1000), task.encode()])

    @redis_errors
    def hand_back(self, items: list[tuple[Delivery, Task]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for delivery, task in items:  # a retry due at once: straight back to the stream
            self._scripts["retry"](keys=[TASKS, RETRY],
                                   args=[GROUP, delivery.handle, 0, task.encode()], client=pipe)
        pipe.execute()

    @redis_errors
    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    results: Sequence[Result] = ()) -> None:
        record = dead_letter_record(delivery.body, reason, attempts, time.time())
        self._scripts["dead_letter"](
            keys=[TASKS, RESULTS, INDEX, STATS, DLQ],
            args=[GROUP, delivery.handle, json.dumps(record),
                  encode_results(results) if results else b"",
                  *(result_key(r) for r in results)])


def _task_body(fields: dict[bytes, bytes]) -> bytes:
    """The task JSON, or the whole entry re-encoded so a malformed one can be dead-lettered."""
    if b"t" in fields:
        return fields[b"t"]
    return json.dumps({text(k): text(v) for k, v in fields.items()}).encode()


Consumer = RedisConsumer
