"""The broker contract, one suite run against every backend: memory, Redis and RabbitMQ.

The in-memory backend runs in the unit layer; the real brokers (marked slow) prove that the
contract is what they do, so the memory backend's semantics are the brokers' own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import TEST_LOCK, URLS, _require, hold_run_lock

from ttg_lib.backends import (
    AnnouncesLateResults,
    Consumer,
    ExpiringLock,
    ListsConsumers,
    Producer,
    ResultsIndex,
    RunLocked,
    open_consumer,
    open_inspector,
    open_producer,
    stored_key,
)
from ttg_lib.messages import Result, Task

LEASE_S = 0.6


def task(chunk_id: int, run_id: str = "r1", **kw) -> Task:
    return Task(run_id=run_id, chunk_id=chunk_id, start=chunk_id * 5, count=5, work_ms=0,
                compute="ttg_lib.compute:placeholder", **kw)


def result_for(t: Task, worker: str = "w") -> Result:
    return Result(run_id=t.run_id, chunk_id=t.chunk_id, start=t.start, count=t.count,
                  worker=worker, attempt=t.attempt, started_at=time.time(),
                  finished_at=time.time(), values=[1] * t.count)


@dataclass
class Broker:
    """One backend under test: the orchestrator's producer, and workers' consumers."""

    name: str
    url: str
    producer: Producer
    consumers: list[Consumer] = field(default_factory=list)

    @property
    def absent_s(self) -> float:
        """How long to wait before a message that has not come is taken to be absent: a
        network broker pushes it asynchronously; memory hands it over within the call."""
        return 0.2 if self.name == "memory" else 2.0

    @property
    def expired_s(self) -> float:
        """How long until a lease nobody keeps has surely expired and its task is back:
        memory checks its leases at every fetch; a network broker sweeps on its own time."""
        return LEASE_S + 0.2 if self.name == "memory" else 3 * LEASE_S + 0.5

    def consumer(self) -> Consumer:
        c = open_consumer(self.name, self.url, lease_s=LEASE_S)
        c.connect()
        self.consumers.append(c)
        return c


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.slow),
                        pytest.param("rabbitmq", marks=pytest.mark.slow)])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    name = request.param
    if name == "memory":
        url = f"memory://contract-{uuid.uuid4().hex}"
    else:
        url = URLS[name]
        _require(url)
    producer = open_producer(name, url, lease_s=LEASE_S)
    producer.connect()
    hold_run_lock(producer, TEST_LOCK)
    producer.purge()
    producer.declare()
    b = Broker(name, url, producer)
    yield b
    for c in b.consumers:
        c.close()
    producer.reconnect()
    producer.purge()
    producer.release_run(TEST_LOCK)
    producer.close()


def fetch(consumer: Consumer, name: str = "c1", timeout: float = 5.0):
    """Poll until a delivery arrives: a broker pushes asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = consumer.fetch(name, 0.2)
        if deliveries:
            assert len(deliveries) == 1
            return deliveries[0]
    return None


def complete(consumer: Consumer, delivery, worker: str = "w") -> None:
    consumer.complete([(delivery, result_for(Task.decode(delivery.body), worker))])


def read_all_results(producer: Producer, expected: int, timeout: float = 5.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got += producer.read_results(0.2)
    return got


def count(q) -> int:
    """A queue's messages; its ready ones where the broker cannot count the rest (RabbitMQ
    without its management API: the queues here hold nothing unacked when counted)."""
    return q.messages if q.messages is not None else q.ready


def wait_stats(producer: Producer, predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = producer.stats()
        if predicate(stats):
            return stats
        time.sleep(0.05)  # broker counters have no change notification
    return producer.stats()


def test_publish_fetch_complete_and_stats(broker: Broker):
    p, c = broker.producer, broker.consumer()
    assert p.publish_tasks(task(i) for i in range(3)) == 3
    assert count(wait_stats(p, lambda s: count(s.tasks) == 3).tasks) == 3
    for _ in range(3):
        d = fetch(c)
        assert d is not None and not d.redelivered
        complete(c, d)
    assert fetch(c, timeout=0.5) is None
    assert sorted(r.chunk_id for r in read_all_results(p, 3)) == [0, 1, 2]
    stats = wait_stats(p, lambda s: count(s.tasks) == 0)
    assert (count(stats.tasks), count(stats.retry), count(stats.dlq)) == (0, 0, 0)
    names = p.queue_names
    assert [q.name for q in stats.rows()] == [names.retry, names.dlq, names.tasks,
                                              names.results]


def test_inspector_sees_what_the_producer_sees(broker: Broker):
    broker.producer.publish_tasks(task(i) for i in range(2))
    with open_inspector(broker.name, broker.url) as inspector:
        stats = wait_stats(inspector, lambda s: count(s.tasks) == 2)
        assert count(stats.tasks) == 2 and inspector.read_dead_letters() == []


def test_retry_comes_back_after_its_delay(broker: Broker):
    c = broker.consumer()
    broker.producer.publish_tasks([task(7)])
    d = fetch(c)
    parked = time.monotonic()
    c.retry(d, Task.decode(d.body).next_attempt(), delay_s=1.0)
    assert count(wait_stats(broker.producer, lambda s: count(s.retry) == 1, timeout=2).retry) == 1
    again = fetch(c, timeout=5)
    assert again is not None and Task.decode(again.body).attempt == 2
    waited = time.monotonic() - parked
    assert waited >= 1.0, f"retried after {waited:.3f} s, before its 1 s delay"
    complete(c, again)


def test_dead_letter_keeps_reason_and_reports_failure(broker: Broker):
    p, c = broker.producer, broker.consumer()
    p.publish_tasks([task(3)])
    d = fetch(c)
    failure = result_for(Task.decode(d.body))
    failure.values, failure.error = [], "boom"
    c.dead_letter(d, "failed after 4 attempts: boom", 4, [failure])
    records = p.read_dead_letters()
    assert [(r["reason"], r["attempts"]) for r in records] == [
        ("failed after 4 attempts: boom", 4)]
    assert Task.decode(records[0]["body"]).chunk_id == 3
    assert p.read_dead_letters() == records  # browsing does not consume
    assert [r.error for r in read_all_results(p, 1)] == ["boom"]
    assert count(wait_stats(p, lambda s: count(s.dlq) == 1).dlq) == 1


def test_unacked_task_of_a_vanished_consumer_is_redelivered(broker: Broker):
    broker.producer.publish_tasks([task(1)])
    doomed, survivor = broker.consumer(), broker.consumer()
    assert fetch(doomed, "doomed") is not None
    doomed.close()  # like a SIGKILL: no ack, the connection just goes
    started = time.monotonic()
    again = fetch(survivor, "survivor", timeout=5)
    assert again is not None and again.redelivered
    assert Task.decode(again.body).chunk_id == 1
    assert time.monotonic() - started < 3 * LEASE_S + 1
    complete(survivor, again)


def test_lease_is_kept_while_alive(broker: Broker):
    """A slow but alive worker keeps its chunk: keepalive renews the lease."""
    broker.producer.publish_tasks([task(2)])
    slow, thief = broker.consumer(), broker.consumer()
    d = fetch(slow, "slow")
    deadline = time.monotonic() + broker.expired_s  # unkept, the lease would be over by then
    while time.monotonic() < deadline:
        slow.keepalive("slow", [d])
        assert thief.fetch("thief", 0.1) == []
    complete(slow, d, worker="slow")
    assert [r.worker for r in read_all_results(broker.producer, 1)] == ["slow"]


def test_batches_complete_in_one_call(broker: Broker):
    p, c = broker.producer, broker.consumer()
    p.publish_tasks(task(i) for i in range(5))
    got, deadline = [], time.monotonic() + 5
    while len(got) < 5 and time.monotonic() < deadline:
        got += c.fetch("batcher", 0.2, max_count=5 - len(got))
    assert len(got) == 5
    c.complete([(d, result_for(Task.decode(d.body))) for d in got])
    assert sorted(r.chunk_id for r in read_all_results(p, 5)) == list(range(5))
    assert count(wait_stats(p, lambda s: count(s.tasks) == 0).tasks) == 0


def test_a_duplicate_result_is_stored_at_most_once_per_chunk(broker: Broker):
    """At-least-once: the same chunk completed twice reaches the results at most twice and
    the producer can tell them apart by chunk id."""
    p, c = broker.producer, broker.consumer()
    p.publish_tasks([task(4), task(4)])
    for _ in range(2):
        complete(c, fetch(c))
    results = read_all_results(p, 2, timeout=broker.absent_s / 2)
    assert {r.chunk_id for r in results} == {4}


def test_purge_removes_only_ttg_objects(broker: Broker):
    broker.producer.publish_tasks([task(0)])
    removed = broker.producer.purge()
    assert any(broker.producer.queue_names.tasks in item for item in removed)
    assert broker.producer.purge(dry_run=True) == []
    broker.producer.declare()
    assert count(wait_stats(broker.producer, lambda s: count(s.tasks) == 0).tasks) == 0


def test_run_lock_keeps_two_runs_apart(broker: Broker):
    other = open_producer(broker.name, broker.url)
    other.connect()
    try:
        with pytest.raises(RunLocked, match="in use by"):
            other.acquire_run("run-b")
        broker.producer.release_run(TEST_LOCK)
        other.acquire_run("run-b")
        with pytest.raises(RunLocked):
            broker.producer.acquire_run(TEST_LOCK)
        other.release_run("run-b")
        broker.producer.acquire_run(TEST_LOCK)
    finally:
        other.close()


# -- capabilities: each one tested where a backend claims it -----------------------------
def test_capabilities_do_what_they_claim(broker: Broker):
    p, c = broker.producer, broker.consumer()
    p.publish_tasks(task(i) for i in range(2))
    for _ in range(2):
        complete(c, fetch(c))
    assert len(read_all_results(p, 2)) == 2
    if isinstance(p, ResultsIndex):
        assert p.stored_chunks() == 2
        p.rewind_results()
        assert len(read_all_results(p, 2)) == 2  # read again from the start
    p.keep_run(TEST_LOCK)  # a neutral verb: renews an expiring lock, else nothing
    if isinstance(p, ExpiringLock):
        assert p.lock_holder() == TEST_LOCK
        assert any(TEST_LOCK in item for item in p.drop_lock(dry_run=True))
        assert p.lock_holder() == TEST_LOCK  # a dry run drops nothing


def test_final_counts_keep_the_runs_output_and_count_what_the_broker_dropped(broker: Broker):
    """final_counts(): results read and not settled stay in the results queue as the run's
    output (RabbitMQ hands its unacked ones back first), and a duplicate the broker dropped
    itself (Redis' index, memory) is counted, so every delivery is accounted for."""
    p = broker.producer
    first, second = broker.consumer(), broker.consumer()
    p.publish_tasks([task(0), task(1)])
    for _ in range(2):
        complete(first, fetch(first, "first"))
    p.publish_tasks([task(0)])  # computed again by another worker: a duplicate result
    complete(second, fetch(second, "second"), worker="second")
    read = read_all_results(p, 3, timeout=broker.absent_s)
    counts = p.final_counts()
    assert len(read) + counts.duplicates_dropped == 3, (len(read), counts.duplicates_dropped)
    assert counts.dead_letters == []
    assert count(wait_stats(p, lambda s: count(s.results) >= 2).results) >= 2


@pytest.mark.capability
def test_listed_consumers_name_the_worker_holding_a_task(broker: Broker):
    """ListsConsumers (Redis' group; RabbitMQ's management API, a sample ~5 s old): who
    holds work, as Kubernetes' kill needs it to pick a busy pod."""
    p = broker.producer
    if not isinstance(p, ListsConsumers):
        pytest.skip(f"{broker.name} does not claim ListsConsumers (a broker inside this "
                    f"process has no consumers to list)")
    holder, idle = broker.consumer(), broker.consumer()
    p.publish_tasks([task(1)])
    held = fetch(holder, "holder")
    assert idle.fetch("idle", 0.2) == []
    deadline = time.monotonic() + 15
    while True:
        rows = {c.name: c.pending for c in p.consumers()}
        if rows.get("holder") == 1:
            break
        assert time.monotonic() < deadline, f"the broker lists {rows}"
        holder.keepalive("holder", [held])
        idle.keepalive("idle", [])
        time.sleep(0.2)  # the management API's sample has no change notification
    assert rows.get("idle", 0) == 0  # listed with nothing, or not listed
    complete(holder, held)


def test_a_worker_started_before_the_queues_exist_idles_without_spinning(broker: Broker):
    broker.producer.purge()  # as before a run: no TTG queue on the broker
    early = broker.consumer()
    calls, deadline = 0, time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert early.fetch("early", 0.3) == []
        calls += 1
    assert calls <= 8, f"{calls} fetches in 1 s: the worker spins instead of waiting"
    broker.producer.declare()


def test_settled_results_leave_the_broker_and_unread_ones_stay(broker: Broker):
    """Broker memory is bounded by the work in flight: results on disk are dropped."""
    p, c = broker.producer, broker.consumer()
    p.publish_tasks(task(i) for i in range(3))
    for _ in range(2):
        complete(c, fetch(c))
    assert len(read_all_results(p, 2)) == 2
    p.settle_results()
    assert count(wait_stats(p, lambda s: count(s.results) == 0).results) == 0
    complete(c, fetch(c))  # arrives after the settle: still delivered, once
    assert [r.chunk_id for r in read_all_results(p, 1)] == [2]


def test_results_are_still_read_after_a_purge(broker: Broker):
    """A resumed run reads what is left, empties the queues, and goes on reading."""
    p, c = broker.producer, broker.consumer()
    p.publish_tasks([task(0)])
    complete(c, fetch(c))
    assert len(read_all_results(p, 1)) == 1
    p.purge()
    p.declare()
    p.publish_tasks([task(1)])
    complete(c, fetch(c))
    assert [r.chunk_id for r in read_all_results(p, 1)] == [1]


def test_a_task_retried_without_delay_is_back_at_once(broker: Broker):
    """A worker hands a task to another (a recomputation of its own result): no retry wait."""
    c, other = broker.consumer(), broker.consumer()
    broker.producer.publish_tasks([task(5)])
    d = fetch(c)
    handed = time.monotonic()
    c.retry(d, Task.decode(d.body), delay_s=0)
    c.close()  # it takes no more work: a broker may have pushed the task back to it already
    again = fetch(other, "other", timeout=2)
    assert again is not None and Task.decode(again.body).chunk_id == 5
    assert time.monotonic() - handed < 0.6, "a hand-over must not wait for a retry sweep"
    complete(other, again)


def test_a_dead_consumers_task_is_handed_on_now_where_the_broker_can(broker: Broker):
    """free(consumer): a consumer known dead has its entries moved at once, long before a
    30 s lease would free them (Redis); elsewhere free() frees 0, and the dropped connection
    requeues them."""
    p = broker.producer
    slow = open_consumer(broker.name, broker.url, lease_s=30.0)
    alive = open_consumer(broker.name, broker.url, lease_s=30.0)
    slow.connect()
    alive.connect()
    broker.consumers += [slow, alive]
    p.publish_tasks([task(0)])
    assert fetch(slow, "dead") is not None
    freed = p.free("dead")
    assert freed in (0, 1)
    if freed:
        if isinstance(p, ListsConsumers):
            assert "dead" not in [c.name for c in p.consumers()]
    else:
        slow.close()  # the dead consumer's connection drops
    again = fetch(alive, "alive", timeout=3.0)
    assert again is not None and again.redelivered


def test_a_result_stored_after_a_reconnect_is_not_computed_again(broker: Broker):
    """A broker restart drops a worker's connection while it computes. Redis keeps the task
    pending under the worker's name, so the late store settles it. RabbitMQ (and memory)
    hand the task to another worker: the late store announces it, and that worker settles the
    task instead of computing it a second time; a result stored on time is not announced."""
    p = broker.producer
    holder, other = broker.consumer(), broker.consumer()
    p.publish_tasks([task(4), task(5)])
    held = fetch(holder, "holder")
    on_time = fetch(other, "other")
    holder.reconnect()  # the broker came back: a new connection, the old delivery is stale
    late = result_for(Task.decode(held.body), "holder")
    key = stored_key(late.run_id, late.chunk_id, late.verify)
    if not isinstance(other, AnnouncesLateResults):
        holder.complete([(held, late)])
        complete(other, on_time)
        assert fetch(other, "other", timeout=broker.expired_s) is None  # settled, not leased
    else:
        complete(other, on_time)
        on_time_key = stored_key("r1", Task.decode(on_time.body).chunk_id, False)
        again = fetch(other, "other", timeout=3.0)
        assert again is not None and again.redelivered
        assert Task.decode(again.body).chunk_id == 4
        assert not other.stored_elsewhere(key)  # not yet stored
        holder.complete([(held, late)])  # announced with the result, in one round trip
        assert other.stored_elsewhere(key, wait_s=3.0)
        other.discard(again)
        assert not other.stored_elsewhere(on_time_key, wait_s=0.3)
        assert fetch(holder, "holder", timeout=broker.expired_s) is None  # settled for good
    assert sorted(r.chunk_id for r in read_all_results(p, 2)) == [4, 5]


def test_the_lock_names_its_owner_and_an_expiring_one_can_be_taken_over(broker: Broker):
    from ttg_lib.runlock import LockOwner

    dead = LockOwner("dead-run", "this-host", 123, 456).encode()
    new = LockOwner("new-run", "this-host", 789, 1011).encode()
    holder = open_producer(broker.name, broker.url)
    other = open_producer(broker.name, broker.url)
    holder.connect()
    other.connect()
    try:
        broker.producer.release_run(TEST_LOCK)
        assert other.lock_owner() is None
        holder.acquire_run("dead-run", dead)
        with pytest.raises(RunLocked, match="in use by"):
            other.acquire_run("new-run", new)
        assert other.lock_owner() in (dead, "")  # "": a broker that cannot read it back
        if isinstance(other, ExpiringLock):
            assert not other.take_over_run(new, new)  # not the owner on record: refused
            assert other.take_over_run(dead, new) and other.lock_owner() == new
            holder.keep_run("dead-run")  # the old owner can no longer touch it
            holder.release_run("dead-run")
            assert other.lock_owner() == new
            other.release_run("new-run")
        else:  # a lock tied to its holder's connection: it goes with it
            holder.close()
            deadline = time.monotonic() + 5
            while other.lock_owner() is not None and time.monotonic() < deadline:
                time.sleep(0.05)  # the broker drops the lock on its own schedule
        assert other.lock_owner() is None
    finally:
        holder.close()
        other.close()
        broker.producer.acquire_run(TEST_LOCK)


def test_a_window_hands_over_the_next_batch_while_one_is_held(broker: Broker):
    """A worker computing a batch takes the next one (RabbitMQ: a prefetch of the window,
    not of the batch, else nothing more comes until the held batch is acked)."""
    p, c = broker.producer, broker.consumer()
    p.publish_tasks(task(i) for i in range(4))
    held, ahead, deadline = [], [], time.monotonic() + 5
    while len(held) < 2 and time.monotonic() < deadline:
        held += c.fetch("ahead", 0.2, max_count=2 - len(held), window=4)
    while len(ahead) < 2 and time.monotonic() < deadline:
        ahead += c.fetch("ahead", 0.2, max_count=2 - len(ahead), window=4)
    assert len(held) == 2 and len(ahead) == 2
    c.complete([(d, result_for(Task.decode(d.body))) for d in held + ahead])
    assert sorted(r.chunk_id for r in read_all_results(p, 4)) == list(range(4))


def test_tasks_are_sent_in_a_small_first_batch_then_growing_ones():
    from ttg_lib.backends.base import publish_batches

    tasks = [Task(run_id="r1", chunk_id=c, start=c, count=1, work_ms=0.0, compute="m:f")
             for c in range(1_100)]
    sizes = [len(b) for b in publish_batches(tasks, size=500, first=16)]
    assert sizes == [16, 64, 256, 500, 264]
    assert [t for b in publish_batches(tasks) for t in b] == tasks
    assert list(publish_batches([])) == []
