"""Faults against the real brokers; every test ends with the full verification."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from brokerwire import publish_raw

from ttg_lib.record import read_jsonl
from ttg_lib.run import Run

pytestmark = pytest.mark.slow  # real brokers and worker processes

# 40 chunks of 5 params x 40 ms = 0.2 s a chunk: long enough to kill mid-chunk, short overall.
SHAPE = {"total_params": 200, "chunk_size": 5, "work_ms": 40.0}
# 300 chunks of 10 ms: workers take two at a time, so a result frame holds several chunks.
FAST = {"total_params": 6_000, "chunk_size": 20, "work_ms": 0.5}


def drive(run: Run, at: float | None = None, action=None, timeout: float = 90.0) -> dict:
    """Step the run; call ``action(run)`` once when the fraction ``at`` is reached."""
    with run:  # an exception stops the workers
        run.start()
        fired = False
        deadline = time.monotonic() + timeout
        while not run.done and time.monotonic() < deadline:
            progress = run.step(0.05)
            if action and not fired and progress.fraction >= (at or 0):
                action(run)
                fired = True
        assert run.done, "run did not finish in time"
        return run.finish()


def assert_verified(summary: dict) -> None:
    assert summary["chunks_completed"] == summary["chunks_total"], summary["problems"]
    assert summary["params_verified"] == summary["total_params"]
    assert summary["lost_params"] == 0 and summary["wrong_results"] == 0
    assert summary["ok"], summary["problems"]


@pytest.mark.parametrize("at", [0.3, 0.9])
def test_one_worker_killed(make_config, backend_name, broker_url, at):
    cfg = make_config(backend=backend_name, **SHAPE, fault_demo=True, kill_at=at,
                      restart="never")
    summary = drive(Run(cfg))
    assert_verified(summary)
    fault = summary["fault"]
    assert fault["killed_worker"] and fault["killed_at_fraction"] >= at
    assert fault["victim_chunk"] is not None, "the fault demo must kill a worker mid-chunk"
    assert fault["recovered_chunk"] == fault["victim_chunk"]  # redone by another worker
    assert fault["recovered_by"] != fault["killed_worker"]
    assert fault["recovered_after_s"] <= 3.0


def test_two_of_three_killed(make_config, backend_name, broker_url):
    cfg = make_config(backend=backend_name, **SHAPE, restart="never")

    def kill_two(run: Run) -> None:
        run.kill_worker_now()
        run.kill_worker_now()

    summary = drive(Run(cfg), at=0.3, action=kill_two)
    assert_verified(summary)
    events = json.loads((cfg.record_dir / "events.json").read_text())["workers"]
    assert sum(e["event"] == "killed" for e in events) == 2


def test_killed_worker_is_replaced(make_config, backend_name, broker_url):
    cfg = make_config(backend=backend_name, **SHAPE, fault_demo=True, restart="always")
    summary = drive(Run(cfg))
    assert_verified(summary)
    assert summary["workers_replaced"] == 1
    workers = json.loads((cfg.record_dir / "workers.json").read_text())
    replacement = [w for w in workers if w["replaces"]]
    assert replacement and replacement[0]["replaces"] == summary["fault"]["killed_worker"]


def test_frozen_worker_loses_its_chunk_within_seconds(make_config, backend_name, broker_url):
    """SIGSTOP: alive to the OS, dead to the run. Its chunk must be back in play in < 3 s
    by its lease alone (the liveness kill is off here; test_faults_round_two covers it)."""
    cfg = make_config(backend=backend_name, **SHAPE, restart="never", liveness_s=0)
    frozen: dict = {}

    def freeze(run: Run) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # wait until someone has just started a chunk
            fresh = [w.to_dict() for w in run.cluster.worker_status() if w.activity == "busy"
                     and time.time() - (w.chunk_started_at or 0) < 0.08]
            if fresh:
                break
            time.sleep(0.01)  # heartbeat files change without notification
        assert fresh, "no worker started a chunk within 5 s"
        frozen.update(fresh[0], at=time.time())
        run.cluster.freeze_worker(fresh[0]["name"])

    summary = drive(Run(cfg), at=0.3, action=freeze)
    assert_verified(summary)
    timeline = [json.loads(line) for line in
                (cfg.record_dir / "chunks.jsonl").read_text().splitlines()]
    taken_over = [c for c in timeline if c["redelivered"] and c["worker"] != frozen["name"]
                  and c["started_at"] >= frozen["at"]]
    redone = [c for c in taken_over if c["chunk_id"] == frozen["current_chunk"]]
    assert redone, "the frozen worker's chunk was never redelivered"
    assert redone[0]["started_at"] - frozen["at"] <= 3.0
    # Woken by the stop, the frozen worker finishes and stores its chunk (on RabbitMQ after
    # reconnecting: the broker dropped its connection): a duplicate, counted once, both brokers.
    assert summary["duplicate_deliveries"] == 1


def test_points_that_always_raise_are_retried_then_fail_alone(make_config, backend_name,
                                                              broker_url):
    cfg = make_config(backend=backend_name, total_params=200, chunk_size=5, work_ms=1.0,
                      compute="ttg_lib.compute:failing", max_retries=2, retry_delay_s=1.0)
    summary = drive(Run(cfg))
    failing = [p for p in range(200) if p % 100 == 13]  # in chunks 2 and 22
    assert summary["chunks_failed"] == 0 and summary["chunks_completed"] == 40
    assert summary["lost_params"] == 0 and summary["dlq_count"] == 0
    assert summary["failed_points"]["count"] == len(failing) and not summary["ok"]
    assert summary["failed_points"]["by_type"]["RuntimeError"]["first_param_ids"] == failing
    events = [e for e in worker_events(cfg) if e["event"] == "point_failed"]
    assert sorted((e["param_id"], e["attempts"]) for e in events) == [(p, 3) for p in failing]
    # each retry waited its delay, doubling: 1 s before attempt 2, 2 s before attempt 3
    timeline = read_jsonl(cfg.record_dir / "chunks.jsonl")
    for chunk in {p // 5 for p in failing}:
        (row,) = [r for r in timeline if r["chunk_id"] == chunk and not r["duplicate"]]
        assert row["finished_at"] - row["started_at"] >= 1.0 + 2.0


def worker_events(cfg) -> list[dict]:
    """Every worker's structured log lines (JSON, one event a line)."""
    return [json.loads(line) for p in sorted((cfg.record_dir / "workers").glob("*.log"))
            for line in p.read_text().splitlines() if line.startswith("{")]


def test_malformed_messages_go_to_dlq_and_block_nothing(make_config, backend_name, broker_url):
    cfg = make_config(backend=backend_name, **SHAPE)

    def inject(run: Run) -> None:
        inject_garbage(backend_name, broker_url)

    summary = drive(Run(cfg), at=0.2, action=inject)
    assert_verified(summary)
    reasons = [d["reason"] for d in json.loads((cfg.record_dir / "dlq.json").read_text())]
    assert len(reasons) == 4, reasons
    assert any("not JSON" in r for r in reasons)
    assert any("missing field" in r for r in reasons)
    assert any("has type" in r for r in reasons)
    assert any("is not this worker's run" in r for r in reasons)
    attempts = [d["attempts"] for d in json.loads((cfg.record_dir / "dlq.json").read_text())]
    assert attempts == [1, 1, 1, 1], "a malformed message is dead-lettered at once, not retried"


def inject_garbage(backend_name: str, url: str) -> None:
    other_run = json.dumps({"run_id": "someone-else", "chunk_id": 0, "start": 0, "count": 1,
                            "work_ms": 0, "compute": "ttg_lib.compute:placeholder",
                            "attempt": 1, "max_retries": 3, "retry_delay_s": 1,
                            "published_at": 0})
    wrong_type = other_run.replace('"chunk_id": 0', '"chunk_id": "zero"')
    bodies = [b"\xff not json", b'{"run_id": "x"}', wrong_type.encode(), other_run.encode()]
    publish_raw(backend_name, url, "tasks", bodies)


@pytest.mark.parametrize("shape", [SHAPE, FAST], ids=["slow-chunks", "batched-chunks"])
@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_broker_restarted_mid_run(make_config, kind, shape):
    """A private broker (AOF on for Redis) is restarted at 30 %; the run still verifies and,
    as nothing was lost, republishes nothing (batched results included)."""
    from ttg_lib.cluster.brokers import start_private

    broker = start_private(kind, aof=True)
    try:
        cfg = make_config(backend=kind, **shape, broker_url=broker.url)
        restarter = threading.Thread(target=broker.restart, kwargs={"down_s": 1.5})
        try:
            summary = drive(Run(cfg), at=0.3, action=lambda run: restarter.start(), timeout=180)
        finally:
            if restarter.is_alive() or restarter.ident:
                restarter.join(120)  # never stop the broker while it is being restarted
    finally:
        broker.stop()
    assert_verified(summary)
    assert summary["broker_outages"], "the outage was not recorded"
    assert summary["broker_outages"][0]["end_s"] is not None
    assert "republished_chunks" not in summary["broker_outages"][0]  # nothing was lost


@pytest.mark.parametrize("window", [None, 30], ids=["tasks-all-out", "window-of-30"])
def test_redis_restarted_without_its_data(make_config, monkeypatch, window):
    """No persistence: the restarted Redis is empty. The run notices (its dedup index holds
    fewer chunks than were read), publishes every unfinished chunk again, and verifies.
    Fast chunks, so results travel in batches (a frame per batch, not per chunk). With a
    window smaller than the run, the window starts over with every unfinished chunk."""
    from ttg_lib import window as window_module
    from ttg_lib.cluster.brokers import start_private

    if window:
        monkeypatch.setattr(window_module, "WINDOW_POINTS", window * FAST["chunk_size"])

    broker = start_private("redis", aof=False)
    try:
        cfg = make_config(backend="redis", **FAST, broker_url=broker.url)
        restarter = threading.Thread(target=broker.restart, kwargs={"down_s": 1.0})
        try:
            summary = drive(Run(cfg), at=0.3, action=lambda run: restarter.start(), timeout=180)
        finally:
            if restarter.ident:
                restarter.join(120)
    finally:
        broker.stop()
    assert_verified(summary)
    (outage,) = summary["broker_outages"]
    # workers reconnect first and may store a chunk or two before the orchestrator looks
    assert outage["end_s"] is not None and outage["broker_kept_chunks"] < 0.3 * 300
    assert 0 < outage["republished_chunks"] < summary["chunks_total"]


def test_sigterm_lets_the_current_chunk_finish(make_config, backend_name, broker_url):
    """Graceful stop: a worker asked to stop mid-chunk stores that chunk itself, then exits
    0. (A worker that dropped it would still let the run verify - another worker would redo
    the chunk - so the test checks who stored it.)"""
    cfg = make_config(backend=backend_name, total_params=40, chunk_size=20, work_ms=50.0,
                      workers=2, restart="never")
    with Run(cfg) as run:
        run.start()
        deadline = time.monotonic() + 10
        busy = []
        while not busy and time.monotonic() < deadline:
            run.step(0.05)
            busy = [w.to_dict() for w in run.cluster.worker_status() if w.activity == "busy"]
        assert busy, "no worker became busy"
        stopped = busy[0]
        proc = run.cluster._procs[stopped["name"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        while not run.done and time.monotonic() < deadline + 20:
            run.step(0.05)
        summary = run.finish()
    assert_verified(summary)
    assert summary["duplicate_deliveries"] == 0
    timeline = [json.loads(line) for line in
                (cfg.record_dir / "chunks.jsonl").read_text().splitlines()]
    (entry,) = [c for c in timeline if c["chunk_id"] == stopped["current_chunk"]]
    assert entry["worker"] == stopped["name"], "the stopped worker did not store its chunk"
    assert not entry["redelivered"] and not entry["duplicate"]


def test_many_fast_chunks_batch_and_all_complete(make_config, backend_name, broker_url):
    """Fast chunks make workers batch (and RabbitMQ re-subscribe with a larger prefetch);
    no delivery may be stranded by that, on either backend."""
    cfg = make_config(backend=backend_name, total_params=20_000, chunk_size=20, work_ms=0.0,
                      timeout_s=60)
    summary = drive(Run(cfg))
    assert_verified(summary)
    batches = [e for e in worker_events(cfg) if e["event"] == "chunks_done"]
    assert max(len(b["chunks"]) for b in batches) > 1, "workers never batched"
