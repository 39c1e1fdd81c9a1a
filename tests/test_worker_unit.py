"""The worker loop, batch sizing, the retry policy and the heartbeat, on the in-memory
backend: no broker, no process."""

from __future__ import annotations

import json
import threading
import time

import pytest
from inthread import memory_broker, thread_worker

from ttg_lib.backends import open_consumer
from ttg_lib.messages import Task
from ttg_lib.worker import LOOK_AHEAD, BatchSizer, Heartbeat, Worker, WorkerSettings, retry_delay

RUN = "unit-run"


def task(chunk_id: int, compute: str = "ttg_lib.compute:placeholder", **kw) -> Task:
    return Task(run_id=RUN, chunk_id=chunk_id, start=chunk_id * 4, count=4, work_ms=0,
                compute=compute, **kw)


@pytest.fixture
def memory():
    yield from memory_broker("unit")


def start_worker(url: str, name: str = "u1", **settings) -> tuple[Worker, threading.Thread]:
    return thread_worker(url, RUN, name, **settings)


def poll(until, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)  # worker threads give no completion event


def stop(*workers: tuple[Worker, threading.Thread]) -> None:
    for worker, _thread in workers:
        worker.stopping.set()
    for _worker, thread in workers:
        thread.join(5)
        assert not thread.is_alive(), "the worker did not stop when asked"


def run_worker(url: str, until, timeout: float = 5.0, name: str = "u1", **settings) -> Worker:
    """A worker thread until ``until()`` holds (polled), then stopped."""
    started = start_worker(url, name, **settings)
    poll(until, timeout)
    stop(started)
    assert until(), "the worker did not finish in time"
    return started[0]


def results(producer, timeout: float = 0.05):
    return producer.read_results(timeout)


def test_worker_computes_every_chunk_and_reports_itself(memory):
    url, producer = memory
    producer.publish_tasks(task(i) for i in range(10))
    got: list = []
    worker = run_worker(url, lambda: got.extend(results(producer)) or len(got) >= 10)
    assert sorted(r.chunk_id for r in got) == list(range(10))
    assert all(r.worker == "u1" and r.error is None for r in got)
    from ttg_lib.compute import placeholder
    assert list(got[0].values) == [placeholder(p, 0) for p in range(got[0].start,
                                                                     got[0].start + 4)]
    assert worker.chunks_done == 10


@pytest.mark.parametrize("work_ms, chunks, ahead", [(0, 200, LOOK_AHEAD + 1), (2, 30, 1)])
def test_fast_chunks_are_handed_over_before_the_batch_before_is_stored(memory, work_ms,
                                                                       chunks, ahead):
    """Fast chunks: the compute process gets the next batch while the worker stores the one
    before (LOOK_AHEAD + 1 batches in hand at most); slow ones: one batch at a time."""
    from dataclasses import replace

    url, producer = memory
    producer.publish_tasks(replace(task(i), work_ms=work_ms) for i in range(chunks))
    worker, _thread = start_worker(url)
    outstanding, most = [0], [0]
    submit, collect = worker.supervisor.submit, worker.supervisor.collect

    def counted_submit(*args, **kwargs):
        outstanding[0] += 1
        most[0] = max(most[0], outstanding[0])
        return submit(*args, **kwargs)

    def counted_collect(*args, **kwargs):
        outstanding[0] -= 1
        return collect(*args, **kwargs)

    worker.supervisor.submit, worker.supervisor.collect = counted_submit, counted_collect
    got: list = []
    poll(lambda: got.extend(results(producer)) or len(got) >= chunks, 30)
    stop((worker, _thread))
    assert sorted(r.chunk_id for r in got) == list(range(chunks)) and worker.chunks_done == chunks
    assert most[0] == ahead


def test_max_chunks_stops_before_taking_another_batch(memory):
    from dataclasses import replace

    url, producer = memory
    producer.publish_tasks(replace(task(i), work_ms=6) for i in range(10))  # one at a time
    worker, thread = start_worker(url, max_chunks=2)
    thread.join(20)
    assert not thread.is_alive() and worker.chunks_done == 2


def test_a_failing_point_is_retried_with_backoff_then_fails_alone(memory):
    url, producer = memory
    producer.publish_tasks([task(3, compute="ttg_lib.compute:failing", max_retries=2,
                                 retry_delay_s=0.05)])  # params 12..15: 13 fails
    got: list = []
    started = time.monotonic()
    run_worker(url, lambda: got.extend(results(producer)) or got)
    (result,) = got
    assert result.error is None  # the chunk is stored: its other points have their values
    (failure,) = result.failures
    assert (failure.offset, failure.attempts) == (1, 3)
    assert failure.error == "RuntimeError: param 13 is configured to fail"
    assert "configured to fail" in failure.trace and "Traceback" in failure.trace
    from ttg_lib.compute import placeholder
    assert list(result.values) == [placeholder(12, 0), None, placeholder(14, 0),
                                   placeholder(15, 0)]
    assert time.monotonic() - started >= 0.05 + 0.1  # waited out both delays
    assert producer.read_dead_letters() == []


@pytest.mark.parametrize("body,reason", [
    (b"\xff not json", "not JSON"),
    (b'{"run_id": "x"}', "missing field"),
])  # another run's task is left for its run: tests/test_anywhere.py
def test_a_malformed_message_is_dead_lettered_at_once(memory, body, reason):
    url, producer = memory
    producer.b.ready.append((999, body, False))  # a raw message, as a broker would hold it
    run_worker(url, lambda: producer.read_dead_letters())
    dead = producer.read_dead_letters()
    assert len(dead) == 1 and reason in dead[0]["reason"] and dead[0]["attempts"] == 1


def test_a_broker_outage_is_ridden_out(memory):
    url, producer = memory
    producer.publish_tasks(task(i) for i in range(3))
    producer.b.down = True
    threading.Timer(0.3, lambda: setattr(producer.b, "down", False)).start()
    got: list = []

    def collect():
        if not producer.b.down:
            got.extend(results(producer))
        return len(got) >= 3

    run_worker(url, collect)
    assert sorted(r.chunk_id for r in got) == [0, 1, 2]


def test_after_a_broker_restart_no_chunk_is_computed_twice(memory):
    """Both workers are mid-chunk when the broker restarts and hands their tasks back. Each
    finishes its chunk during the outage and stores it on reconnecting; whichever worker
    then receives a handed-back task settles it, its own or the other's, without computing
    it again: two chunks, two computations, no duplicate result."""
    url, producer = memory
    producer.publish_tasks(Task(run_id=RUN, chunk_id=i, start=i * 4, count=4, work_ms=60,
                                compute="ttg_lib.compute:placeholder") for i in range(2))
    workers = [start_worker(url, "a"), start_worker(url, "b")]
    poll(lambda: len(producer.b.pending) == 2, 5)
    producer.b.restart()  # both chunks ~0-60 ms into their 240 ms
    threading.Timer(0.4, lambda: setattr(producer.b, "down", False)).start()
    got: list = []

    def settled() -> bool:
        if not producer.b.down:
            got.extend(results(producer))
        return len(got) == 2 and not producer.b.ready and not producer.b.pending

    poll(settled, 5)
    stop(*workers)
    assert settled(), "the handed-back tasks were not settled"
    assert sorted(r.chunk_id for r in got) == [0, 1] and producer.b.duplicates == 0
    assert [w.chunks_done for w, _t in workers] == [1, 1]  # nobody computed a chunk twice


def test_retry_policy_is_exponential_and_ends():
    t = task(0, max_retries=3, retry_delay_s=0.5)
    assert [retry_delay(t, 1), retry_delay(t, 2), retry_delay(t, 3)] == [0.5, 1.0, 2.0]
    assert retry_delay(t, 4) is None


def test_batch_sizer_takes_one_slow_chunk_and_many_fast_ones():
    sizer = BatchSizer()
    assert sizer.size == 1 and not sizer.fast
    for _ in range(20):
        sizer.observe(0.5)
    assert sizer.size == 1  # a killed worker holds one slow chunk
    for _ in range(40):
        sizer.observe(0.0001)
    assert sizer.fast and sizer.size == BatchSizer.MAX
    for _ in range(40):
        sizer.observe(0.004)
    assert sizer.size in (4, 8)  # about TARGET_S of work per batch, a power of two
    assert sizer.size & (sizer.size - 1) == 0
    for _ in range(40):
        sizer.observe(0.0001, chunks=16)  # bundles of 16 fast chunks: 256 chunks a batch
    assert sizer.size * 16 == BatchSizer.MAX_CHUNKS


def test_heartbeat_is_throttled_but_forced_beats_and_the_final_state_are_written(tmp_path):
    path = tmp_path / "hb.json"
    hb = Heartbeat(str(path), "w9")
    hb.beat(force=True, state="busy", current_chunk=4)
    assert json.loads(path.read_text())["current_chunk"] == 4
    hb.beat(state="idle", current_chunk=None)  # within EVERY_S: not written
    assert json.loads(path.read_text())["state"] == "busy"
    hb._last = 0.0
    hb.beat(state="stopped")
    beat = json.loads(path.read_text())
    assert beat["state"] == "stopped" and beat["name"] == "w9" and beat["last_heartbeat"] > 0


def test_a_recomputation_is_handed_back_by_its_producer_and_done_by_another(memory):
    url, producer = memory
    producer.publish_tasks([task(1).verification("u1")])
    got: list = []
    worker = run_worker(url, lambda: got.extend(results(producer)) or got)  # u1 alone
    assert [(r.worker, r.verify) for r in got] == [("u1", True)]  # after every hand-back
    assert worker.chunks_done == 1

    producer.publish_tasks([task(2).verification("u1")])
    got = []
    run_worker(url, lambda: got.extend(results(producer)) or got, name="u2")
    assert [(r.chunk_id, r.worker, r.verify) for r in got] == [(2, "u2", True)]


def test_a_bundle_gives_a_result_per_chunk_and_settles_its_one_message(memory):
    url, producer = memory
    producer.publish_tasks([Task.bundle([task(i) for i in range(4)]), task(4)])
    got: list = []
    worker = run_worker(url, lambda: got.extend(results(producer)) or len(got) >= 5)
    assert sorted(r.chunk_id for r in got) == [0, 1, 2, 3, 4]
    from ttg_lib.compute import placeholder
    assert all(list(r.values) == [placeholder(p, 0) for p in range(r.start, r.start + 4)]
               for r in got)
    assert worker.chunks_done == 5 and not producer.b.pending and not producer.b.ready
    assert producer.read_dead_letters() == [] and producer.b.duplicates == 0


def test_a_bundle_whose_function_does_not_load_is_dead_lettered_whole(memory):
    url, producer = memory
    bundle = Task.bundle([task(i, compute="no_such_module_here:fn") for i in range(3)])
    producer.publish_tasks([bundle])
    got: list = []
    run_worker(url, lambda: got.extend(results(producer)) or len(got) >= 3)
    assert sorted(r.chunk_id for r in got) == [0, 1, 2]
    assert all(r.error and "no_such_module_here" in r.error for r in got)
    dead = producer.read_dead_letters()
    assert len(dead) == 1 and Task.decode(dead[0]["body"]) == bundle  # the message, once
    assert not producer.b.pending and not producer.b.ready


def test_a_bundled_recomputation_is_handed_back_whole_and_done_by_another(memory):
    url, producer = memory
    bundle = Task.bundle([task(1).verification("u1"), task(2).verification("u1")])
    producer.publish_tasks([bundle])
    worker = Worker(WorkerSettings(backend="memory", url=url, run_id=RUN, name="u1",
                                   lease_s=0.5), open_consumer("memory", url, lease_s=0.5))
    handed: list = []
    hand_back = worker.backend.hand_back
    worker.backend.hand_back = lambda items: handed.append(items) or hand_back(items)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    poll(lambda: handed, 5)
    stop((worker, thread))
    assert handed and all(len(items) == 1 and items[0][1].chunks == 2 for items in handed)
    got = results(producer)  # u1 computes what bounced MAX_BOUNCES times: then it is alone
    run_worker(url, lambda: got.extend(results(producer)) or len(got) >= 2, name="u2")
    assert sorted((r.chunk_id, r.verify) for r in got) == [(1, True), (2, True)]


def test_batch_size_holds_steady_over_bundles_of_mixed_sizes():
    """Tasks in bundles of 16, recomputations in bundles of 64: the size must not flip with
    each message (on RabbitMQ every change is a re-subscribe that requeues its prefetch)."""
    sizer = BatchSizer()
    sizes = []
    for i in range(200):
        sizer.observe(0.0005, chunks=64 if i % 4 == 0 else 16)
        sizes.append(sizer.size)
    assert len(set(sizes[20:])) == 1
    assert sizes[-1] * 16 <= BatchSizer.MAX_CHUNKS
