"""RabbitMQ blobs: one durable stream queue, ``ttg.blobs``, a message per key (see
:mod:`.blobs`).

A stream is read without consuming it, so any number of workers read the same message at
once (a classic queue read with basic_get hides the message from everyone else while one
reader holds it unacked). Each read opens its own channel, reads from the first offset until
the key's message, and closes the channel.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pika
import pika.exceptions

from ..errors import RunError
from . import base
from .blobs import StoresBlobs

BLOBS = "ttg.blobs"
STREAM = {"x-queue-type": "stream"}
READ_IDLE_S = 1.0  # a stream delivers what it holds at once: this long without a message ends
_KEY = "ttg-blob"

_errors = base.translate_errors(pika.exceptions.AMQPConnectionError,
                                pika.exceptions.StreamLostError, ConnectionError, OSError)


class RabbitBlobs(StoresBlobs):
    conn: Any  # the connection (RabbitConnection)

    @_errors
    def put_blob(self, key: str, data: bytes) -> None:
        with self._channel() as channel:
            channel.confirm_delivery()
            try:
                channel.queue_declare(BLOBS, durable=True, arguments=STREAM)
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise RunError(f"RabbitMQ refused the stream queue {BLOBS} ({exc.reply_text}): "
                               f"a function shipped by value needs RabbitMQ >= 3.9 with "
                               f"streams; or pass an installed 'module:function'") from None
            channel.basic_publish("", BLOBS, data, pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent, headers={_KEY: key}))

    @_errors
    def get_blob(self, key: str) -> bytes | None:
        with self._channel() as channel:
            try:
                channel.queue_declare(BLOBS, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                return None  # no run has stored a blob since the last purge
            channel.basic_qos(prefetch_count=4)
            try:
                for method, props, body in channel.consume(
                        BLOBS, arguments={"x-stream-offset": "first"},
                        inactivity_timeout=READ_IDLE_S):
                    if method is None:
                        return None
                    channel.basic_ack(method.delivery_tag)
                    if (props.headers or {}).get(_KEY) == key:
                        return body
            except pika.exceptions.ChannelClosedByBroker:
                return None  # a new run's purge deleted the stream under us
            finally:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    channel.cancel()
        return None

    @_errors
    def drop_blobs(self, dry_run: bool = False) -> list[str]:
        with self._channel() as channel:
            try:
                channel.queue_declare(BLOBS, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                return []
            if not dry_run:
                channel.queue_delete(BLOBS)
        return [f"rabbitmq queue {BLOBS} (functions shipped by value)"]

    @contextlib.contextmanager
    def _channel(self) -> Any:
        channel = self.conn.channel()
        try:
            yield channel
        finally:
            if channel.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    channel.close()
