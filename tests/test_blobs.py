"""The blob capability (a run's function shipped by value), on every backend: memory, Redis
and RabbitMQ, through the contract suite's broker fixture."""

from __future__ import annotations

import hashlib
import os
import threading

from test_contract import Broker, broker  # noqa: F401 - the fixture, shared

from ttg_lib.backends import StoresBlobs


def test_a_blob_is_stored_once_and_read_by_every_worker(broker: Broker):  # noqa: F811
    p = broker.producer
    assert isinstance(p, StoresBlobs)
    data = os.urandom(3 << 20)  # several MiB: more than one frame on every broker
    key = hashlib.sha256(data).hexdigest()
    assert p.get_blob(key) is None
    p.put_blob(key, data)
    consumers = [broker.consumer() for _ in range(3)]
    got: list[bytes | None] = [None] * len(consumers)

    def read(i: int) -> None:
        got[i] = consumers[i].get_blob(key)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(consumers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == [data] * len(consumers)  # read at once by all, consumed by none
    assert consumers[0].get_blob("0" * 64) is None  # type: ignore[attr-defined]
    assert p.get_blob(key) == data


def test_purge_takes_the_blobs_with_the_queues(broker: Broker):  # noqa: F811
    p = broker.producer
    p.put_blob("k1", b"payload")
    assert any("function" in line or "blob" in line for line in p.purge(dry_run=True))
    assert p.get_blob("k1") == b"payload"  # a dry run removes nothing
    p.purge()
    assert p.get_blob("k1") is None
    assert p.drop_blobs() == []
