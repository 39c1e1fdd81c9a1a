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
from collections.abc import Iterable
from typing import Any

import pika
import pika.exceptions

from ..messages import Result, Task, decode_results
from . import base, tls
from .base import ConsumerInfo, QueueStat, QueueStats, dead_letter_record, text
from .rabbitmq_blobs import RabbitBlobs  # functions shipped by value (issue 20)
from .rabbitmq_management import idle_ms, management_get, vhost_path, worker_of
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
    consumer_module="ttg_lib.backends.rabbitmq_consumer",
    kubernetes=KubernetesWorkload(
        "StatefulSet", "ttg-rabbitmq", "rabbitmq", port=5672, node_port=30672,
        secret_key="TTG_RABBITMQ_URL", secret_entries=_k8s_secret,
        management=ManagementPort(15672, 31672, "TTG_RABBITMQ_MANAGEMENT_URL")))
TASKS, RETRY, DLQ, RESULTS = SPEC.queues.as_tuple()
RUN_LOCK = "ttg.run-lock"
TTG_QUEUES = (TASKS, RETRY, DLQ, RESULTS)
STORED = "ttg.stored"
STORED_QUEUE_ARGS = {"x-expires": 600_000, "x-max-length": 10_000}
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


amqp_errors = base.translate_errors(*_BROKEN, passthrough=_locked)


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

    @amqp_errors
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
    @amqp_errors
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
        vhost = vhost_path(self.url)
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
            name = worker_of(str(consumer.get("consumer_tag", "")))
            held = int(channel.get("messages_unacknowledged") or 0)
            seen = workers.get(name)
            workers[name] = ConsumerInfo(name, held + (seen.pending if seen else 0),
                                         idle_ms(channel.get("idle_since")))
        return sorted(workers.values(), key=lambda c: c.name)

    def _management_unacked(self) -> dict[str, int | None]:
        """Unacked counts come only from the management API; None where it is off."""
        queues = management_get(self.url, f"/api/queues/{vhost_path(self.url)}", timeout=0.5)
        if not isinstance(queues, list):
            return {}
        return {q["name"]: q.get("messages_unacknowledged") for q in queues
                if q.get("name") in TTG_QUEUES}

    @amqp_errors
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


class RabbitProducer(RabbitInspector, base.Producer, RabbitBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self._lock_channel: Any = None
        self._results_tag: int | None = None
        self._tx_channel: Any = None  # tasks are published in transactions on this one

    def connect(self) -> None:
        super().connect()
        self._results_tag = None
        self._tx_channel = None

    @amqp_errors
    def declare(self) -> None:
        self.ch.queue_declare(TASKS, durable=True)
        self.ch.queue_declare(RETRY, durable=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": TASKS})
        self.ch.queue_declare(DLQ, durable=True)
        self.ch.queue_declare(RESULTS, durable=True)

    @amqp_errors
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

    @amqp_errors
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
        info = management_get(self.url, f"/api/queues/{vhost_path(self.url)}/{RUN_LOCK}",
                              timeout=0.5)
        arguments = info.get("arguments", {}) if isinstance(info, dict) else {}
        return str(arguments.get("x-ttg-owner", ""))

    @amqp_errors
    def release_run(self, run_id: str) -> None:
        if self._lock_channel is not None and self._lock_channel.is_open:
            self._lock_channel.queue_delete(RUN_LOCK)
            self._lock_channel.close()
        self._lock_channel = None

    @amqp_errors
    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        """Publish in transactions (:func:`base.publish_batches`): one durable commit per
        batch instead of one confirm round trip per message (10,000 tasks: ~0.1 s instead
        of seconds). The channel stays open: a run publishes recomputations many times a
        second, and a new channel each time cost three more round trips."""
        if self._tx_channel is None or not self._tx_channel.is_open:
            self._tx_channel = self.conn.channel()
            self._tx_channel.tx_select()
        channel, sent = self._tx_channel, 0
        try:
            for batch in base.publish_batches(tasks):
                for task in batch:
                    channel.basic_publish("", TASKS, task.encode(), PERSISTENT)
                channel.tx_commit()
                sent += len(batch)
        except BaseException:
            if channel.is_open:  # an uncommitted half: rolled back with the channel
                channel.close()
            raise
        return sent

    @amqp_errors
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

    @amqp_errors
    def settle_results(self) -> None:
        """Ack every result read so far (one multiple-ack): the broker drops them."""
        if self._results_tag:
            self.ch.basic_ack(self._results_tag, multiple=True)
            self._results_tag = 0

    def final_counts(self) -> base.FinalCounts:
        """Read results are held unacked: handed back first, they stay in the queue as the
        run's output (the milestone document's ``ttg.results``), and the stats count them."""
        self.release_results()
        return super().final_counts()

    @amqp_errors
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

    @amqp_errors
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


Inspector, Producer = RabbitInspector, RabbitProducer  # Consumer: rabbitmq_consumer.py
