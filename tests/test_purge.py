"""Purge removes TTG's own objects by name, and not one look-alike (decoys) on the real
brokers."""

from __future__ import annotations

from ttg_lib.backends import open_consumer
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


# Where workers declare objects of their own when they subscribe (RabbitMQ's exchange for
# late-store announcements), purge removes those too.
BY_WORKERS = {"redis": set(),
              "rabbitmq": {"rabbitmq exchange ttg.stored (announcements; it holds no messages)"}}


def test_purge_removes_only_ttg_objects(backend_name, broker_url, backend):
    backend.publish_tasks([task(0)])
    _make_decoys(backend_name, broker_url)
    if BY_WORKERS[backend_name]:
        with open_consumer(backend_name, broker_url) as worker:
            worker.fetch("purge-test-worker", 0.1)  # subscribes (its task goes back on close)
            worker.leave("purge-test-worker")  # its own queue goes with it
    expected = PURGED[backend_name] | BY_WORKERS[backend_name]
    try:
        assert set(backend.purge(dry_run=True)) == expected
        assert set(backend.purge()) == expected
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
