"""Each backend's publish / fetch / ack / retry / DLQ / stats against the real broker."""

import time

import pytest

from ttg_lib.backends import make_backend
from ttg_lib.messages import Result, Task


def task(chunk_id: int, run_id: str = "r1", **kw) -> Task:
    return Task(run_id=run_id, chunk_id=chunk_id, start=chunk_id * 5, count=5, work_ms=0,
                compute="ttg_lib.compute:placeholder", **kw)


def result_for(t: Task, worker: str = "w") -> Result:
    return Result(run_id=t.run_id, chunk_id=t.chunk_id, start=t.start, count=t.count,
                  worker=worker, attempt=t.attempt, started_at=time.time(),
                  finished_at=time.time(), values=[1] * t.count)


def fetch(backend, consumer="c1", timeout=5.0):
    """Poll until a delivery arrives: the broker pushes asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = backend.fetch(consumer, 0.2)
        if deliveries:
            assert len(deliveries) == 1
            return deliveries[0]
    return None


def complete(backend, delivery, worker="w"):
    backend.complete([(delivery, result_for(Task.decode(delivery.body), worker))])


def read_all_results(backend, expected: int, timeout: float = 5.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got += backend.read_results(0.2)
    return got


def wait_stats(backend, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = backend.stats()
        if predicate(stats):
            return stats
        time.sleep(0.05)  # broker counters have no change notification
    return backend.stats()


def test_publish_fetch_complete_and_stats(backend):
    assert backend.publish_tasks(task(i) for i in range(3)) == 3
    stats = wait_stats(backend, lambda s: s.tasks.messages == 3)
    assert stats.tasks.messages == 3
    for _ in range(3):
        d = fetch(backend)
        assert d is not None and not d.redelivered
        complete(backend, d)
    assert fetch(backend, timeout=0.5) is None
    results = read_all_results(backend, 3)
    assert sorted(r.chunk_id for r in results) == [0, 1, 2]
    stats = wait_stats(backend, lambda s: s.tasks.messages == 0 and s.results.messages >= 0)
    assert stats.tasks.messages == 0
    assert stats.retry.messages == 0 and stats.dlq.messages == 0
    assert [q.name for q in stats.rows()] == list(backend.queue_names[1:3]) + [
        backend.queue_names[0], backend.queue_names[3]]


def test_retry_comes_back_after_its_delay(backend):
    backend.publish_tasks([task(7)])
    d = fetch(backend)
    t = Task.decode(d.body)
    backend.retry(d, t.next_attempt(), delay_s=0.3)
    stats = wait_stats(backend, lambda s: s.retry.ready == 1, timeout=2)
    assert stats.retry.ready == 1  # waiting out its delay (messages: unknown without the API)
    again = fetch(backend, timeout=5)
    assert again is not None
    assert Task.decode(again.body).attempt == 2
    complete(backend, again)


def test_dead_letter_keeps_reason_and_reports_failure(backend):
    backend.publish_tasks([task(3)])
    d = fetch(backend)
    t = Task.decode(d.body)
    failure = result_for(t)
    failure.values, failure.error = [], "boom"
    backend.dead_letter(d, "failed after 4 attempts: boom", 4, failure)
    records = backend.read_dead_letters()
    assert len(records) == 1
    assert records[0]["reason"] == "failed after 4 attempts: boom"
    assert records[0]["attempts"] == 4
    assert Task.decode(records[0]["body"]).chunk_id == 3
    assert backend.read_dead_letters() == records  # browsing does not consume
    got = read_all_results(backend, 1)
    assert got[0].error == "boom"
    assert wait_stats(backend, lambda s: s.dlq.messages == 1).dlq.messages == 1


def test_unacked_task_of_a_vanished_consumer_is_redelivered(backend_name, broker_url, backend):
    backend.publish_tasks([task(1)])
    doomed = make_backend(backend_name, broker_url, lease_s=0.6, worker=True)
    doomed.connect()
    d = fetch(doomed, consumer="doomed")
    assert d is not None
    doomed.close()  # like a SIGKILL: no ack, the connection just goes
    started = time.monotonic()
    again = fetch(backend, consumer="survivor", timeout=5)
    assert again is not None and again.redelivered
    assert Task.decode(again.body).chunk_id == 1
    assert time.monotonic() - started < 3
    complete(backend, again)


def test_lease_is_kept_while_alive(backend_name, broker_url, backend):
    """A slow but alive worker keeps its chunk: keepalive renews the lease."""
    backend.publish_tasks([task(2)])
    slow = make_backend(backend_name, broker_url, lease_s=0.6, worker=True)
    slow.connect()
    d = fetch(slow, consumer="slow")
    deadline = time.monotonic() + 2.0  # > 3 leases
    while time.monotonic() < deadline:
        slow.keepalive("slow", [d])
        assert backend.fetch("thief", 0.1) == []
    complete(slow, d, worker="slow")
    slow.close()


def test_batches_complete_in_one_call(backend):
    backend.publish_tasks(task(i) for i in range(5))
    got, deadline = [], time.monotonic() + 5
    while len(got) < 5 and time.monotonic() < deadline:
        got += backend.fetch("batcher", 0.2, max_count=5 - len(got))
    assert len(got) == 5
    backend.complete([(d, result_for(Task.decode(d.body))) for d in got])
    assert sorted(r.chunk_id for r in read_all_results(backend, 5)) == list(range(5))
    assert wait_stats(backend, lambda s: s.tasks.messages == 0).tasks.messages == 0


def test_purge_removes_only_ttg_objects(backend):
    backend.publish_tasks([task(0)])
    removed = backend.purge()
    assert removed and all("ttg" in item for item in removed)
    assert backend.purge(dry_run=True) == []


def test_run_lock_keeps_two_runs_apart(backend_name, broker_url, backend):
    from conftest import TEST_LOCK

    from ttg_lib.backends import RunLocked

    other = make_backend(backend_name, broker_url)
    other.connect()
    try:
        with pytest.raises(RunLocked, match="in use by"):
            other.acquire_run("run-b")
        backend.release_run(TEST_LOCK)
        other.acquire_run("run-b")
        with pytest.raises(RunLocked):
            backend.acquire_run(TEST_LOCK)
        other.release_run("run-b")
        backend.acquire_run(TEST_LOCK)
    finally:
        other.close()
