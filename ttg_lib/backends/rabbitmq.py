"""RabbitMQ backend (pika, AMQP 0-9-1).

Queues (durable, created and deleted only by TTG), named as in the milestone:

``ttg.tasks``        tasks; manual ack and a prefetch of the worker's batch size, so a
                     dead worker's chunks are requeued the moment its connection drops
``ttg.tasks.retry``  tasks waiting out their retry delay (per-message TTL), then
                     dead-lettered by the broker back to ``ttg.tasks``
``ttg.tasks.dlq``    messages that cannot succeed, with their reason in the headers
``ttg.results``      chunk results; the orchestrator dedups them by chunk id
``ttg.run-lock``     the run lock: an exclusive queue, gone with its connection
``ttg.stored``       a fanout exchange: results a worker stored after a reconnect, announced
                     to every worker's ``ttg.stored.<worker>`` queue (durable, so it hears
                     announcements made while it reconnects; deleted when its worker stops,
                     or by the broker after 10 idle minutes; purge deletes the exchange)

Messages are persistent. The orchestrator publishes tasks in transactions, a worker
commits a batch's results and acks in one transaction, other publishes are confirmed.
pika's blocking connection is single-threaded, so the worker computes a slow chunk on
another thread and calls :meth:`keepalive` meanwhile: heartbeats keep flowing during
long chunks (pika issues 418 and 1104).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlparse

import pika
import pika.exceptions

from ..messages import Result, Task, decode_results, encode_results
from . import base, tls
from .base import ConsumerInfo, Delivery, QueueStat, QueueStats, dead_letter_record, text
from .rabbitmq_blobs import RabbitBlobs  # functions shipped by value (issue 20)
from .registry import BackendSpec, KubernetesWorkload, ManagementPort, QueueNames

K8S_USER = "ttg"


def _k8s_secret(password: str, host: str, port: int) -> dict[str, str]:
    """The StatefulSet creates its user from RABBITMQ_DEFAULT_USER/PASS on first boot."""
    return {"TTG_RABBITMQ_URL": f"amqp://{K8S_USER}:{password}@{host}:{port}/%2F",
            "RABBITMQ_DEFAULT_USER": K8S_USER, "RABBITMQ_DEFAULT_PASS": password}


SPEC = BackendSpec(
    name="rabbitmq", title="RabbitMQ", module=__name__, client_package="pika",
    recovery="Requeue on disconnect", queues=QueueNames.joined("."),
    url_env="TTG_RABBITMQ_URL", default_url="amqp://guest:guest@127.0.0.1:5672/%2F",
    url_schemes=("amqp", "amqps"), default_port=5672,
    private_broker="ttg_lib.backends.private:start_rabbitmq",
    kubernetes=KubernetesWorkload(
        "StatefulSet", "ttg-rabbitmq", "rabbitmq", port=5672, node_port=30672,
        secret_key="TTG_RABBITMQ_URL", secret_entries=_k8s_secret,
        management=ManagementPort(15672, 31672, "TTG_RABBITMQ_MANAGEMENT_URL")))
TASKS, RETRY, DLQ, RESULTS = SPEC.queues.as_tuple()
RUN_LOCK = "ttg.run-lock"
TTG_QUEUES = (TASKS, RETRY, DLQ, RESULTS)
STORED = "ttg.stored"
STORED_QUEUE_ARGS = {"x-expires": 600_000, "x-max-length": 10_000}
PUBLISH_BATCH = 500
NO_MANAGEMENT_HINT = ("messages and unacked are unknown without RabbitMQ's management API: "
                      "rabbitmq-plugins enable rabbitmq_management")
NOT_SAMPLED_HINT = ("unknown: the management API has no statistics for that queue yet (the "
                    "broker samples every ~5 s)")
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                  content_type="application/json")

_BROKEN = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError,
           pika.exceptions.StreamLostError, ConnectionError, OSError)


def _locked(exc: BaseException) -> bool:
    """RESOURCE_LOCKED (405) on the run lock is the caller's to handle, not an outage."""
    return isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code == 405


_errors = base.translate_errors(*_BROKEN, passthrough=_locked)


class RabbitConnection(base.Connection):
    spec = SPEC
    transactional = False  # workers: results and acks commit atomically (see Consumer)

    def __init__(self, url: str, *, lease_s: float = 2.0, heartbeat_s: int = 30):
        super().__init__(url, lease_s=lease_s)
        self.heartbeat_s = heartbeat_s  # a frozen peer's connection drops after ~2 of these
        self.connection: pika.BlockingConnection | None = None
        self.channel: Any = None
        self._inbox: list[tuple[Any, Any, bytes]] = []
        self._consuming: str | None = None
        self._generation = 0

    @_errors
    def connect(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat_s
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        params.socket_timeout = 3
        if self.url.startswith("amqps:"):  # verified against TTG_TLS_CA, else the system's
            params.ssl_options = pika.SSLOptions(tls.context(), params.host)
        self.connection = pika.BlockingConnection(params)
        self.channel = self._new_channel()
        self._inbox.clear()
        self._consuming = None
        self._generation += 1

    def _new_channel(self) -> Any:
        """Workers: transactions (results + acks durable together in one commit); everyone
        else: publisher confirms."""
        channel = self.conn.channel()
        if self.transactional:
            channel.tx_select()
        else:
            channel.confirm_delivery()
        return channel

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*_BROKEN):
                connection.close()

    @property
    def conn(self) -> pika.BlockingConnection:
        if self.connection is None or not self.connection.is_open:
            raise base.BrokerUnavailable(f"RabbitMQ at {self.display_url}: not connected")
        return self.connection

    @property
    def ch(self) -> Any:
        if self.channel is None or not self.channel.is_open:
            raise base.BrokerUnavailable(f"RabbitMQ at {self.display_url}: not connected")
        return self.channel

    def server_version(self) -> str:
        if self.connection is None:
            return "unknown"
        props = self.connection._impl.server_properties or {}  # pika exposes no public getter
        version = props.get("version", b"unknown")
        return version.decode() if isinstance(version, bytes) else str(version)

    def _on_message(self, _channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._inbox.append((method, props, body))

    def _publish(self, queue: str, body: bytes, props: pika.BasicProperties) -> None:
        """Confirmed publish, or part of the open transaction on a worker's channel."""
        self.ch.basic_publish("", queue, body, props, mandatory=not self.transactional)


class RabbitInspector(RabbitConnection, base.Inspector, base.ListsConsumers):
    @_errors
    def stats(self) -> QueueStats:
        """Ready and consumers from AMQP (live); unacked from the management API (the
        broker's statistics sample, the management UI's figure, refreshed every ~5 s),
        unknown without it: then messages is unknown too, and ``hint`` says why."""
        unacked = self._management_unacked()
        stats = {}
        for role, queue in zip(("tasks", "retry", "dlq", "results"), TTG_QUEUES, strict=True):
            try:
                ok = self.ch.queue_declare(queue, passive=True).method
                ready, consumers = ok.message_count, ok.consumer_count
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:
                    raise
                self.channel = self._new_channel()
                ready, consumers = 0, 0
            extra = unacked.get(queue)
            total = None if extra is None else ready + extra
            stats[role] = QueueStat(queue, total, ready, extra, consumers)
        hint = NO_MANAGEMENT_HINT if not unacked else (
            NOT_SAMPLED_HINT if any(q.unacked is None for q in stats.values()) else "")
        return QueueStats(**stats, hint=hint)

    def consumers(self) -> list[ConsumerInfo]:
        """The task queue's consumers by worker name, with their unacked tasks, from the
        management API's statistics (the broker samples them every ~5 s); none without it."""
        vhost = _vhost(self.url)
        consumers = management_get(self.url, f"/api/consumers/{vhost}", timeout=0.5)
        channels = management_get(self.url, f"/api/vhosts/{vhost}/channels", timeout=0.5)
        if not isinstance(consumers, list) or not isinstance(channels, list):
            return []
        by_channel = {c.get("name"): c for c in channels if isinstance(c, dict)}
        workers: dict[str, ConsumerInfo] = {}
        for consumer in consumers:
            if (consumer.get("queue") or {}).get("name") != TASKS:
                continue
            channel = by_channel.get((consumer.get("channel_details") or {}).get("name"), {})
            name = _worker_of(str(consumer.get("consumer_tag", "")))
            held = int(channel.get("messages_unacknowledged") or 0)
            seen = workers.get(name)
            workers[name] = ConsumerInfo(name, held + (seen.pending if seen else 0),
                                         _idle_ms(channel.get("idle_since")))
        return sorted(workers.values(), key=lambda c: c.name)

    def _management_unacked(self) -> dict[str, int | None]:
        """Unacked counts come only from the management API; None where it is off."""
        queues = management_get(self.url, f"/api/queues/{_vhost(self.url)}", timeout=0.5)
        if not isinstance(queues, list):
            return {}
        return {q["name"]: q.get("messages_unacknowledged") for q in queues
                if q.get("name") in TTG_QUEUES}

    @_errors
    def read_dead_letters(self) -> list[dict[str, Any]]:
        """Browse the DLQ: every message is read, then put back unchanged."""
        channel = self.conn.channel()
        records, tags = [], []
        try:
            while True:
                method, props, body = channel.basic_get(DLQ, auto_ack=False)
                if method is None:
                    break
                tags.append(method.delivery_tag)
                headers = (props.headers or {}) if props else {}
                records.append(dead_letter_record(
                    body, text(headers.get("x-ttg-reason", "unknown")),
                    int(headers.get("x-ttg-attempts", 0)),
                    int(headers.get("x-ttg-dead-lettered-ms", 0)) / 1000))
        finally:
            if tags:
                channel.basic_nack(tags[-1], multiple=True, requeue=True)
            channel.close()
        return records


class RabbitProducer(RabbitInspector, base.Producer, base.HoldsResults, RabbitBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self._lock_channel: Any = None
        self._results_tag: int | None = None

    def connect(self) -> None:
        super().connect()
        self._results_tag = None

    @_errors
    def declare(self) -> None:
        self.ch.queue_declare(TASKS, durable=True)
        self.ch.queue_declare(RETRY, durable=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": TASKS})
        self.ch.queue_declare(DLQ, durable=True)
        self.ch.queue_declare(RESULTS, durable=True)

    @_errors
    def acquire_run(self, run_id: str, owner: str = "") -> None:
        """An exclusive queue is the lock: the broker drops it when this connection dies, so
        a dead holder never blocks the broker. Its arguments carry the owner record."""
        if self._lock_channel is not None and self._lock_channel.is_open:
            return  # held by this connection already
        channel = self.conn.channel()
        try:
            channel.queue_declare(RUN_LOCK, exclusive=True, auto_delete=True,
                                  arguments={"x-ttg-run": run_id, "x-ttg-owner": owner or run_id})
        except pika.exceptions.ChannelClosedByBroker as exc:
            if not _locked(exc):
                raise
            raise base.RunLocked(f"RabbitMQ at {self.display_url} is in use by another TTG "
                                 f"run (queue {RUN_LOCK} is held by a live connection); wait "
                                 f"for it with ttg run --wait") from None
        self._lock_channel = channel

    @_errors
    def lock_owner(self) -> str | None:
        """None when the lock queue is absent; its owner record from the management API, or
        "" when the API is off (AMQP cannot read another connection's queue arguments)."""
        channel = self.conn.channel()
        try:
            channel.queue_declare(RUN_LOCK, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            if not _locked(exc):
                raise
        else:
            channel.close()
        info = management_get(self.url, f"/api/queues/{_vhost(self.url)}/{RUN_LOCK}",
                              timeout=0.5)
        arguments = info.get("arguments", {}) if isinstance(info, dict) else {}
        return str(arguments.get("x-ttg-owner", ""))

    @_errors
    def release_run(self, run_id: str) -> None:
        if self._lock_channel is not None and self._lock_channel.is_open:
            self._lock_channel.queue_delete(RUN_LOCK)
            self._lock_channel.close()
        self._lock_channel = None

    @_errors
    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        """Publish in transactions of PUBLISH_BATCH: one durable commit per batch instead of
        one confirm round trip per message (10,000 tasks: ~0.1 s instead of seconds)."""
        channel = self.conn.channel()
        channel.tx_select()
        sent = 0
        try:
            for task in tasks:
                channel.basic_publish("", TASKS, task.encode(), PERSISTENT)
                sent += 1
                if sent % PUBLISH_BATCH == 0:
                    channel.tx_commit()
            channel.tx_commit()
        finally:
            if channel.is_open:
                channel.close()
        return sent

    @_errors
    def read_results(self, timeout: float) -> list[Result | bytes]:
        if self._results_tag is None:
            self.ch.basic_qos(prefetch_count=0)  # results are small; never stall workers
            self._consuming = RESULTS
            self.ch.basic_consume(RESULTS, self._on_message)
            self._results_tag = 0
        if not self._inbox:
            self.conn.process_data_events(time_limit=timeout)
        out: list[Result | bytes] = []
        for method, _props, body in self._inbox:
            self._results_tag = method.delivery_tag
            out.extend(decode_results(body))
        self._inbox.clear()
        return out

    @_errors
    def settle_results(self) -> None:
        """Ack every result read so far (one multiple-ack): the broker drops them."""
        if self._results_tag:
            self.ch.basic_ack(self._results_tag, multiple=True)
            self._results_tag = 0

    @_errors
    def release_results(self) -> None:
        """Hand every read result back to the queue: it stays there as the run's output,
        as in the milestone document (``ttg.results`` holds one message per chunk)."""
        if self._consuming == RESULTS:  # cancel first, or the broker redelivers them to us
            for tag in list(self.ch.consumer_tags):
                self.ch.basic_cancel(tag)
            self._consuming = None
        if self._results_tag:
            self.ch.basic_nack(self._results_tag, multiple=True, requeue=True)
        self._results_tag = None
        self._inbox.clear()

    @_errors
    def purge(self, dry_run: bool = False) -> list[str]:
        if not dry_run and self._consuming == RESULTS:
            # a deleted queue takes our consumer with it: read_results subscribes again
            for tag in list(self.ch.consumer_tags):
                self.ch.basic_cancel(tag)
            self._consuming, self._results_tag = None, None
            self._inbox.clear()
        gone = []
        for queue in TTG_QUEUES:
            channel = self.conn.channel()
            try:
                count = channel.queue_declare(queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                continue  # absent: nothing of ours to remove
            if not dry_run:
                channel.queue_delete(queue)
            channel.close()
            gone.append(f"rabbitmq queue {queue} ({count} messages)")
        gone += self.drop_blobs(dry_run)
        channel = self.conn.channel()
        try:
            channel.exchange_declare(STORED, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return gone  # absent: no worker has subscribed since the last purge
        if not dry_run:
            channel.exchange_delete(STORED)
        channel.close()
        return [*gone, f"rabbitmq exchange {STORED} (announcements; it holds no messages)"]


class RabbitConsumer(RabbitConnection, base.Consumer, base.AnnouncesLateResults,
                     base.ForgetsConsumers, RabbitBlobs):
    transactional = True

    def __init__(self, url: str, *, lease_s: float = 2.0):
        # fast failure detection: a frozen worker's connection drops after ~2 heartbeats
        super().__init__(url, lease_s=lease_s, heartbeat_s=max(1, round(lease_s / 2)))
        self.prefetch = 1
        self._task_tag: str | None = None
        self._hearing = 0  # the connection generation whose announcements we consume
        self._announced: set[str] = set()

    @_errors
    def fetch(self, consumer: str, timeout: float, max_count: int = 1) -> list[Delivery]:
        if self._consuming != TASKS or max_count != self.prefetch:
            try:
                self._subscribe_tasks(consumer, max_count)
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

    def _subscribe_tasks(self, consumer: str, prefetch: int) -> None:
        """(Re)start the task consumer with a new prefetch: RabbitMQ applies a consumer's
        limit only to consumers started after it. Unacked deliveries stay ours."""
        if self._consuming == TASKS and self._task_tag is not None:
            self.ch.basic_cancel(self._task_tag)  # pika requeues undispatched deliveries
            self._commit()  # in a transaction that reject waits for the commit
        self._hear_announcements(consumer)
        self.ch.basic_qos(prefetch_count=prefetch)
        self.ch.add_on_cancel_callback(self._cancelled)
        self._task_tag = self.ch.basic_consume(TASKS, self._on_message,
                                               consumer_tag=f"{consumer}.{time.time()}")
        self._consuming, self.prefetch = TASKS, prefetch

    def _hear_announcements(self, consumer: str) -> None:
        """Bind this worker's durable announcement queue once per connection."""
        if self._hearing == self._generation:
            return
        queue = f"{STORED}.{consumer}"
        self.ch.exchange_declare(STORED, "fanout", durable=True)
        self.ch.queue_declare(queue, durable=True, arguments=STORED_QUEUE_ARGS)
        self.ch.queue_bind(queue, STORED)
        self.ch.basic_consume(queue, self._on_announcement, auto_ack=True)
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

    @_errors
    def stored_elsewhere(self, key: str, wait_s: float = 0.0) -> bool:
        deadline = time.monotonic() + wait_s
        self.conn.process_data_events(time_limit=0)
        while key not in self._announced:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.conn.process_data_events(time_limit=min(left, 0.02))
        return True

    @_errors
    def discard(self, delivery: Delivery) -> None:
        self._ack(delivery)
        self._commit()

    @_errors
    def leave(self, consumer: str) -> None:
        """A worker that stops cleanly takes its announcement queue with it."""
        self.ch.queue_delete(f"{STORED}.{consumer}")
        self._hearing = 0

    @_errors
    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        self.conn.process_data_events(time_limit=0)

    @_errors
    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        """The batch's results travel as one message (pika costs ~0.1 ms per message)."""
        if done:
            self._publish(RESULTS, encode_results([r for _d, r in done]), PERSISTENT)
            self._ack_upto([delivery for delivery, _result in done])
            self._announce_late([r for d, r in done if d.handle[0] != self._generation])
        self._commit()

    def _announce_late(self, results: list[Result]) -> None:
        """Results whose tasks came over an older connection: the broker has handed those
        tasks back, maybe to another worker; tell every worker they are stored (in the same
        transaction as the results, so no announcement precedes its result)."""
        if results:
            keys = [base.stored_key(r.run_id, r.chunk_id, r.verify) for r in results]
            self.ch.exchange_declare(STORED, "fanout", durable=True)
            self.ch.basic_publish(STORED, "", json.dumps(keys).encode())

    @_errors
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

    @_errors
    def hand_back(self, items: list[tuple[Delivery, Task]]) -> None:
        for delivery, task in items:
            self._publish(TASKS, task.encode(), PERSISTENT)
            self._ack(delivery)
        self._commit()  # one transaction for the lot

    @_errors
    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    failure: Result | None = None) -> None:
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={"x-ttg-reason": reason[:4000], "x-ttg-attempts": attempts,
                     "x-ttg-dead-lettered-ms": int(time.time() * 1000)})
        self._publish(DLQ, delivery.body, props)
        if failure is not None:
            self._publish(RESULTS, failure.encode(), PERSISTENT)
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


Inspector, Producer, Consumer = RabbitInspector, RabbitProducer, RabbitConsumer


_TAG = re.compile(r"^(.*)\.\d+\.\d+$")  # a worker's consumer tag: <worker>.<time.time()>


def _worker_of(consumer_tag: str) -> str:
    match = _TAG.match(consumer_tag)
    return match.group(1) if match else consumer_tag


def _idle_ms(idle_since: Any) -> int:
    """Milliseconds since the channel's last activity (0 when active or unknown)."""
    if not isinstance(idle_since, str):
        return 0
    try:
        since = datetime.fromisoformat(idle_since)
    except ValueError:
        return 0
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return max(0, int((datetime.now(timezone.utc) - since).total_seconds() * 1000))


def _vhost(url: str) -> str:
    """The URL's vhost, quoted for a management API path ('/' is %2F)."""
    path = urlparse(url).path
    return quote(unquote(path[1:]) or "/", safe="") if path not in ("", "/") else "%2F"


def management_get(url: str, path: str, timeout: float = 2.0) -> Any:
    """GET from the management API of the broker at ``url`` (its credentials); None when the
    plugin is off or unreachable. TTG_RABBITMQ_MANAGEMENT_URL overrides host and port."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    base_url = os.environ.get("TTG_RABBITMQ_MANAGEMENT_URL", f"http://{host}:15672").rstrip("/")
    token = b64encode(f"{parsed.username or 'guest'}:{parsed.password or 'guest'}".encode())
    request = urllib.request.Request(f"{base_url}{path}",
                                     headers={"Authorization": f"Basic {token.decode()}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
