"""RabbitMQ, the worker's side: tasks by prefetch with manual acks (a lease is the open
delivery: a dropped connection requeues it), results stored and tasks acked in one
transaction, late results announced on the ``ttg.stored`` exchange (see
:class:`ttg_lib.backends.base.AnnouncesLateResults`). The orchestrator's side, the queue
names and the connection are in :mod:`ttg_lib.backends.rabbitmq`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions

from ..messages import Result, Task, encode_results
from . import base
from .base import Delivery
from .rabbitmq import (
    DLQ,
    PERSISTENT,
    RESULTS,
    RETRY,
    STORED,
    STORED_QUEUE_ARGS,
    TASKS,
    RabbitConnection,
    amqp_errors,
)
from .rabbitmq_blobs import RabbitBlobs


class RabbitConsumer(RabbitConnection, base.Consumer, base.AnnouncesLateResults,
                     base.ForgetsConsumers, RabbitBlobs):
    transactional = True

    def __init__(self, url: str, *, lease_s: float = 2.0):
        # fast failure detection: a frozen worker's connection drops after ~2 heartbeats
        super().__init__(url, lease_s=lease_s, heartbeat_s=max(1, round(lease_s / 2)))
        self.prefetch = 1
        self._task_tag: str | None = None
        self._hearing = 0  # the connection generation whose announcements we consume
        self._hear_channel: Any = None  # theirs: the tasks' channel limit would hold them
        self._announced: set[str] = set()

    @amqp_errors
    def fetch(self, consumer: str, timeout: float, max_count: int = 1,
              window: int = 0) -> list[Delivery]:
        window = max(window, max_count)
        if self._consuming == TASKS and self._hearing != self._generation:
            self._hear_announcements(consumer)  # their consumer was cancelled: again
        gives_back = window < self.prefetch and window <= self.GIVE_BACK_AT
        if self._consuming == TASKS and window > self.prefetch:
            self._set_window(window)  # grown in place; never shrunk in place: the channel's
            # limit counts the deliveries the caller still holds, so a smaller one could
            # leave it none to fetch (a batch asked for its last 2 of 5 holding 3 got none)
        elif self._consuming != TASKS or gives_back:
            try:
                self._subscribe_tasks(consumer, window)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                return self._no_queue_yet(timeout)
        if not self._inbox:
            self.conn.process_data_events(time_limit=timeout)
        if 0 < len(self._inbox) < max_count:
            self.conn.process_data_events(time_limit=0)  # take what the socket already holds
        taken, self._inbox = self._inbox[:max_count], self._inbox[max_count:]
        return [Delivery(body=body, handle=(self._generation, method.delivery_tag, props),
                         redelivered=bool(method.redelivered)) for method, props, body in taken]

    def _no_queue_yet(self, timeout: float) -> list[Delivery]:
        """A worker started before the orchestrator declared the queues is idle, not broken:
        wait out the fetch (no reconnect storm), then try again."""
        self.channel = self._new_channel()
        self._consuming = None
        self._hearing = 0
        self.conn.sleep(timeout)
        return []

    GIVE_BACK_AT = 2  # a window this small (slow chunks) re-subscribes: see _subscribe_tasks

    def _set_window(self, prefetch: int) -> None:
        """A new window in one round trip: the channel's limit (``global_qos``) applies to
        its running consumer at once. A re-subscribe costs four round trips, and requeues
        the deliveries pika holds undispatched, to be delivered again: a fast run's window
        changes five or six times (it grows from 1, and shrinks as bundles grow)."""
        self.ch.basic_qos(prefetch_count=prefetch, global_qos=True)
        self.prefetch = prefetch

    def _subscribe_tasks(self, consumer: str, prefetch: int) -> None:
        """(Re)start the task consumer with a new prefetch: when subscribing, and when the
        window falls to GIVE_BACK_AT or less (slow chunks), so the deliveries pika holds
        undispatched go back to the queue for other workers (fair shares; what a killed
        worker holds). Unacked deliveries stay ours. The limit is the channel's
        (``global_qos``): announcements are auto-acked, so it counts tasks only."""
        if self._consuming == TASKS and self._task_tag is not None:
            self.ch.basic_cancel(self._task_tag)  # pika requeues undispatched deliveries
            self._commit()  # in a transaction that reject waits for the commit
        self._hear_announcements(consumer)
        self.ch.basic_qos(prefetch_count=prefetch, global_qos=True)
        self.ch.add_on_cancel_callback(self._cancelled)
        self._task_tag = self.ch.basic_consume(TASKS, self._on_message,
                                               consumer_tag=f"{consumer}.{time.time()}")
        self._consuming, self.prefetch = TASKS, prefetch

    def _hear_announcements(self, consumer: str) -> None:
        """Bind this worker's durable announcement queue once per connection, on a channel
        of its own: RabbitMQ holds back even auto-acked deliveries on a channel whose
        limit (``global_qos``) its unacked tasks have reached."""
        if self._hearing == self._generation:
            return
        if self._hear_channel is not None and self._hear_channel.is_open:
            self._hear_channel.close()  # a consumer of the same queue is replaced, not added
        channel = self._hear_channel = self.conn.channel()
        queue = f"{STORED}.{consumer}"
        channel.exchange_declare(STORED, "fanout", durable=True)
        channel.queue_declare(queue, durable=True, arguments=STORED_QUEUE_ARGS)
        channel.queue_bind(queue, STORED)
        channel.add_on_cancel_callback(self._cancelled)
        channel.basic_consume(queue, self._on_announcement, auto_ack=True)
        self._hearing = self._generation

    def _on_announcement(self, _channel: Any, _method: Any, _props: Any, body: bytes) -> None:
        try:
            keys = json.loads(body)
        except ValueError:
            return  # not ours to understand: an announcement is only ever a hint
        if not isinstance(keys, list):
            return
        if len(self._announced) > 100_000:
            self._announced.clear()
        self._announced.update(str(k) for k in keys)

    def _cancelled(self, frame: Any) -> None:
        """The broker cancelled a consumer (its queue was deleted, e.g. by a new run's
        purge): subscribe again at the next fetch."""
        if frame.method.consumer_tag == self._task_tag:
            self._consuming = None
        else:
            self._hearing = 0

    @amqp_errors
    def stored_elsewhere(self, key: str, wait_s: float = 0.0) -> bool:
        deadline = time.monotonic() + wait_s
        self.conn.process_data_events(time_limit=0)
        while key not in self._announced:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.conn.process_data_events(time_limit=min(left, 0.02))
        return True

    @amqp_errors
    def discard(self, delivery: Delivery) -> None:
        self._ack(delivery)
        self._commit()

    @amqp_errors
    def leave(self, consumer: str) -> None:
        """A worker that stops cleanly takes its announcement queue with it."""
        self.ch.queue_delete(f"{STORED}.{consumer}")
        self._hearing = 0

    @amqp_errors
    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        self.conn.process_data_events(time_limit=0)

    @amqp_errors
    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        """The batch's results travel as one message (pika costs ~0.1 ms per message)."""
        if done:
            self._publish(RESULTS, encode_results([r for _d, r in done]), PERSISTENT)
            self._ack_upto([delivery for delivery, _result in done])
            self._announce_late([r for d, r in done if d.handle[0] != self._generation])
        self._commit()

    @amqp_errors
    def settle_batch(self, done: list[tuple[Delivery, Result]],
                     handed: list[tuple[Delivery, Task]]) -> None:
        """Hand-backs and results in one transaction: one commit (a round trip and a disk
        sync on the broker) a batch, not two. The hand-backs' own acks come first, so the
        results' multiple ack never names a tag twice."""
        for delivery, task in handed:
            self._publish(TASKS, task.encode(), PERSISTENT)
            self._ack(delivery)
        self.complete(done)  # commits, with nothing done too

    def _announce_late(self, results: list[Result]) -> None:
        """Results whose tasks came over an older connection: the broker has handed those
        tasks back, maybe to another worker; tell every worker they are stored (in the same
        transaction as the results, so no announcement precedes its result)."""
        if results:
            keys = [base.stored_key(r.run_id, r.chunk_id, r.verify) for r in results]
            self.ch.exchange_declare(STORED, "fanout", durable=True)
            self.ch.basic_publish(STORED, "", json.dumps(keys).encode())

    @amqp_errors
    def retry(self, delivery: Delivery, task: Task, delay_s: float) -> None:
        """Through the retry queue's TTL; a task due at once goes straight to the tasks."""
        if delay_s <= 0:
            self._publish(TASKS, task.encode(), PERSISTENT)
        else:
            props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                         content_type="application/json",
                                         expiration=str(max(1, int(delay_s * 1000))))
            self._publish(RETRY, task.encode(), props)
        self._ack(delivery)
        self._commit()

    @amqp_errors
    def hand_back(self, items: list[tuple[Delivery, Task]]) -> None:
        for delivery, task in items:
            self._publish(TASKS, task.encode(), PERSISTENT)
            self._ack(delivery)
        self._commit()  # one transaction for the lot

    @amqp_errors
    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    results: Sequence[Result] = ()) -> None:
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={"x-ttg-reason": reason[:4000], "x-ttg-attempts": attempts,
                     "x-ttg-dead-lettered-ms": int(time.time() * 1000)})
        self._publish(DLQ, delivery.body, props)
        if results:
            self._publish(RESULTS, encode_results(results), PERSISTENT)
        self._ack(delivery)
        self._commit()

    def _commit(self) -> None:
        """One round trip makes the batch's publishes and acks durable together."""
        self.ch.tx_commit()

    def _ack_upto(self, deliveries: list[Delivery]) -> None:
        """One ack frame for a batch (``multiple``): every delivery of this channel up to the
        batch's last is settled by now (a worker holds one batch; retries and dead letters
        ack their own), and the unfetched ones in the inbox all come later."""
        tags = [tag for generation, tag, _props in (d.handle for d in deliveries)
                if generation == self._generation]  # older ones the broker has requeued
        if tags:
            self.ch.basic_ack(max(tags), multiple=True)

    def _ack(self, delivery: Delivery) -> None:
        generation, tag, _props = delivery.handle
        if generation == self._generation:  # after a reconnect the broker has requeued it
            self.ch.basic_ack(tag)


Consumer = RabbitConsumer
