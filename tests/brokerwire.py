"""Put raw bytes on a TTG queue, bypassing the backends' encoders: how tests forge messages.

Tests know each broker's wire on purpose (queue names, the Redis stream field); the library
outside ``ttg_lib/backends/`` never does.
"""

from __future__ import annotations

from collections.abc import Iterable

from ttg_lib.backends import get_spec

ROLES = ("tasks", "retry", "dlq", "results")
REDIS_FIELD = {"tasks": "t", "results": "r"}  # the stream entry field each role's body is in


def queue_name(backend_name: str, url: str, role: str) -> str:
    return get_spec(backend_name).queues.by_role()[role]


def publish_raw(backend_name: str, url: str, role: str, bodies: Iterable[bytes]) -> None:
    """Each body as one message on the queue of ``role`` ("tasks" or "results")."""
    name = queue_name(backend_name, url, role)
    if backend_name == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            for body in bodies:
                client.xadd(name, {REDIS_FIELD[role]: body})
        finally:
            client.close()
    else:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            for body in bodies:
                channel.basic_publish("", name, body)
        finally:
            connection.close()
