"""Flow control: a run publishes its tasks a window at a time, so the broker holds the work
in flight and not the run (at 10^9 points, unread results took 2 GB of Redis)."""

from __future__ import annotations

import pytest

from ttg_lib import window as window_module
from ttg_lib.messages import Task
from ttg_lib.window import TaskWindow, window_chunks


def task(chunk_id: int) -> Task:
    return Task(run_id="r", chunk_id=chunk_id, start=chunk_id * 10, count=10, work_ms=0.0,
                compute="ttg_lib.compute:placeholder")


class Reads:
    """The run's count of chunks read, moved by hand."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        return self.n


def test_a_window_publishes_its_limit_then_waits_for_a_quarter_of_it_back():
    reads = Reads()
    w = TaskWindow((task(c) for c in range(100)), limit=20, finished=reads)
    first = w.due()
    assert [t.chunk_id for t in first] == list(range(20))
    w.sent(first)
    assert w.due() == []  # nothing read: nothing more
    reads.n = 4
    assert w.due() == []  # 4 back: under a quarter of the window
    reads.n = 5
    refill = w.due()
    assert [t.chunk_id for t in refill] == list(range(20, 25))
    w.sent(refill)
    assert w.in_flight == 20


def test_a_run_smaller_than_its_window_publishes_everything_at_once():
    w = TaskWindow((task(c) for c in range(30)), limit=1000, finished=Reads())
    first = w.due()
    assert len(first) == 30 and w.exhausted
    w.sent(first)
    assert w.due() == []


def test_tasks_the_broker_refused_go_out_first_next_time():
    reads = Reads()
    w = TaskWindow((task(c) for c in range(10)), limit=4, finished=reads)
    w.sent(w.due())
    reads.n = 4
    refused = w.due()
    w.put_back(refused)  # the broker went down
    again = w.due()
    assert [t.chunk_id for t in again] == [t.chunk_id for t in refused] == [4, 5, 6, 7]


def test_a_restart_counts_from_the_reads_at_that_moment():
    reads = Reads()
    w = TaskWindow((task(c) for c in range(10)), limit=4, finished=reads)
    w.sent(w.due())
    reads.n = 2
    w.restart([task(2), task(3), task(4)])  # the broker lost its data: what is unfinished
    again = w.due()
    assert [t.chunk_id for t in again] == [2, 3, 4] and w.exhausted


def test_recomputations_take_no_credit_so_many_of_them_never_stall_the_window():
    """A broker that lost its data near the end: the window starts over with 50
    recomputations (their answers finish no chunk) and one chunk, through a window of 4."""
    reads = Reads()
    w = TaskWindow([], limit=4, finished=reads)
    checks = [task(c).verification("w-1") for c in range(50)]
    w.restart(checks + [task(60)])
    out = w.due()
    assert len(out) == 51 and w.exhausted
    w.sent(out)
    assert w.in_flight == 1


def test_the_window_is_points_with_a_floor_per_worker():
    assert window_chunks(chunk_size=10_000, workers=3) == window_module.WINDOW_POINTS // 10_000
    assert window_chunks(chunk_size=10**8, workers=5) == 5 * window_module.WINDOW_PER_WORKER


@pytest.mark.slow
def test_a_run_larger_than_its_window_completes_with_the_broker_holding_only_the_window(
        make_config, backend_name, broker_url, monkeypatch):
    """2,000 chunks through a 100-chunk window on the real broker: every point once, and the
    broker never held more than the window's tasks (sampled at every publication)."""
    from ttg_lib.results.reading import load_results
    from ttg_lib.run import Run, execute
    from ttg_lib.session import BrokerSession

    monkeypatch.setattr(window_module, "WINDOW_POINTS", 1_000)
    held: list[int] = []
    publish = BrokerSession.publish

    def watched(session: BrokerSession, tasks: list[Task]) -> bool:
        ok = publish(session, tasks)
        stats = session.producer.stats()
        held.append(stats.tasks.ready + (stats.tasks.unacked or 0))  # messages: <= chunks
        return ok

    monkeypatch.setattr(BrokerSession, "publish", watched)
    cfg = make_config(backend=backend_name, total_params=20_000, chunk_size=10, work_ms=0.0,
                      workers=2, verify="none")
    run = Run(cfg, say=lambda _line: None)
    summary = execute(cfg, run=run)
    assert summary["state"] == "done" and summary["lost_params"] == 0, summary
    assert run.session is not None and run.session.window is not None
    assert run.session.window.exhausted and run.session.window.published == 2_000
    assert len(held) > 10  # it refilled as results came back, many times
    assert max(held) <= 100 + 1, held  # never more than the window (the one just published)
    table = load_results(cfg.record_dir, columns=["param_id"])
    assert table["param_id"].tolist() == list(range(20_000))


def test_chunks_held_for_the_reuse_verdict_never_come_out_of_the_window_later():
    """The window reads the run's tasks lazily; chunks held back while reused points are
    checked are asked for by the verdict itself, so reading on after the verdict must not
    publish them a second time."""
    from types import SimpleNamespace

    from ttg_lib.ledger import Ledger

    class Plan:
        final = False

        def touches(self, chunk_id: int) -> bool:
            return chunk_id in (2, 3)

        def verification_tasks(self, task_of, chunks_total):
            return [task(100)]

    plan = Plan()
    ledger = SimpleNamespace(reuse=plan, task=task, config=SimpleNamespace(chunks_total=6),
                             collector=SimpleNamespace(chunk_state=bytearray(6)))
    tasks = Ledger._reused_tasks(ledger)
    assert [next(tasks).chunk_id, next(tasks).chunk_id] == [100, 0]
    plan.final = True  # the verdict is in: it asked for chunks 2 and 3 itself
    assert [t.chunk_id for t in tasks] == [1, 4, 5]
