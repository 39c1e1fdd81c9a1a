"""Purge removes TTG's own objects by name, and not one look-alike (decoys) on the real
brokers."""

from __future__ import annotations

from ttg_lib.messages import Task


def task(chunk_id: int) -> Task:
    return Task(run_id="r1", chunk_id=chunk_id, start=chunk_id * 5, count=5, work_ms=0,
                compute="ttg_lib.compute:placeholder")


# What purge names after declare + publish: exactly TTG's own objects, by name.
PURGED = {"redis": {"redis key ttg:tasks"},
          "rabbitmq": {"rabbitmq queue ttg.tasks (1 messages)",
                       "rabbitmq queue ttg.tasks.retry (0 messages)",
                       "rabbitmq queue ttg.tasks.dlq (0 messages)",
                       "rabbitmq queue ttg.results (0 messages)"}}
DECOYS = ("ttg-user.orders", "ttg:user-owned", "decoy.ttg.tasks")  # look like TTG's, are not


def test_purge_removes_only_ttg_objects(backend_name, broker_url, backend):
    backend.publish_tasks([task(0)])
    _make_decoys(backend_name, broker_url)
    try:
        assert set(backend.purge(dry_run=True)) == PURGED[backend_name]
        assert set(backend.purge()) == PURGED[backend_name]
        assert backend.purge(dry_run=True) == []
        assert _decoys_left(backend_name, broker_url) == len(DECOYS)
    finally:
        _drop_decoys(backend_name, broker_url)


def _make_decoys(backend_name: str, url: str) -> None:
    if backend_name == "redis":
        import redis

        with redis.Redis.from_url(url) as client:
            for name in DECOYS:
                client.xadd(name, {"t": b"user data"})
    else:
        import pika

        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            for name in DECOYS:
                channel.queue_declare(name)
                channel.basic_publish("", name, b"user data")


def _decoys_left(backend_name: str, url: str) -> int:
    if backend_name == "redis":
        import redis

        with redis.Redis.from_url(url) as client:
            return sum(client.xlen(name) == 1 for name in DECOYS)
    import pika

    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        return sum(channel.queue_declare(name, passive=True).method.message_count == 1
                   for name in DECOYS)


def _drop_decoys(backend_name: str, url: str) -> None:
    if backend_name == "redis":
        import redis

        with redis.Redis.from_url(url) as client:
            client.delete(*DECOYS)
    else:
        import pika

        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            for name in DECOYS:
                channel.queue_delete(name)
