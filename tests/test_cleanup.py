"""`ttg cleanup` removes every TTG object and nothing else (decoys stay untouched).

The CLI runs with HOME pointed at a temporary directory and no KUBECONFIG, so `--all` can
never reach the Kubernetes context of whoever runs the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
import redis
from conftest import RABBITMQ_URL, REDIS_URL, _require

from ttg_lib.backends import open_producer
from ttg_lib.cluster.local import LocalCluster
from ttg_lib.messages import Task
from ttg_lib.procs import Ledger, ProcessEntry, start_ticks

DECOY_KEYS = {"decoy:key": b"keep me", "ttg:user-owned": b"not a TTG key name"}
DECOY_QUEUE = "decoy.orders"


def _cli(*args: str, out: Path) -> subprocess.CompletedProcess:
    home = out / "home"  # inside the test's own output dir; cleanup reads only runs/
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "ttg_lib.cli", "cleanup", *args,
                           "--output-dir", str(out)], capture_output=True, text=True,
                          timeout=60, env=env)


def _sleeper(*marker: str) -> subprocess.Popen:
    """A process not started by TTG whose command line carries ``marker``."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", *marker])


def _decoy_ledger(out: Path) -> tuple[list[subprocess.Popen], list[Path], subprocess.Popen, Path]:
    """Ledger lines cleanup must not act on, and one broker it must remove with its data.

    Decoys: a pid whose command line lacks the marker (forged); a pid whose marker matches
    but whose start time does not (a reused pid); broker entries in both forms, naming real
    directories. Returns (decoy processes, decoy directories, our broker, its directory)."""
    procs, dirs = [], []
    ledger = Ledger(out / "runs" / "forged" / "processes.jsonl")
    stranger = _sleeper()
    ledger.record(ProcessEntry("worker", "forged", stranger.pid, start_ticks(stranger.pid),
                               "ttg_lib.worker", "forged"))
    reused = _sleeper("ttg_lib.worker")
    ledger.record(ProcessEntry("worker", "reused", reused.pid, start_ticks(reused.pid) - 1,
                               "ttg_lib.worker", "forged"))
    procs += [stranger, reused]
    for name, wrong_ticks in (("foreign-broker", False), ("reused-broker", True)):
        data = out.parent / name
        (data / "keep").mkdir(parents=True)
        (data / "keep" / "file").write_text("user data")
        proc = _sleeper() if not wrong_ticks else _sleeper(str(data))
        ledger.record(ProcessEntry("broker", name, proc.pid,
                                   start_ticks(proc.pid) - wrong_ticks, str(data), "forged"))
        procs.append(proc)
        dirs.append(data)
    ours_dir = out.parent / "our-broker-data"
    (ours_dir / "db").mkdir(parents=True)
    ours = _sleeper(str(ours_dir))
    Ledger(out / "runs" / "ours" / "processes.jsonl").record(ProcessEntry(
        "broker", "redis", ours.pid, start_ticks(ours.pid), str(ours_dir), "ours"))
    return procs, dirs, ours, ours_dir


def _rabbit_channel():
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    return connection, connection.channel()


@pytest.mark.slow
def test_cleanup_all_removes_only_ttg_objects(tmp_path):
    _require(REDIS_URL)
    _require(RABBITMQ_URL)
    out = tmp_path / "outputs"
    # decoys: user keys, a user queue holding messages, a process TTG did not start
    r = redis.Redis.from_url(REDIS_URL)
    for key, value in DECOY_KEYS.items():
        r.set(key, value)
    connection, channel = _rabbit_channel()
    channel.queue_declare(DECOY_QUEUE, durable=False, auto_delete=False)
    for i in range(3):
        channel.basic_publish("", DECOY_QUEUE, f"order {i}".encode())
    decoys, decoy_dirs, our_broker, our_dir = _decoy_ledger(out)
    # TTG objects: queues with tasks on both brokers, and live worker processes
    for name, url in (("redis", REDIS_URL), ("rabbitmq", RABBITMQ_URL)):
        with open_producer(name, url) as b:
            b.declare()
            b.publish_tasks([Task("leftover", 0, 0, 1, 0, "ttg_lib.compute:placeholder")])
    cluster = LocalCluster(backend="redis", broker_url=REDIS_URL, run_id="leftover",
                           record_dir=out / "runs" / "leftover")
    cluster.start_workers(2)
    cluster.wait_ready(2, 30)
    pids = [int(w.ident) for w in cluster.workers()]
    try:
        dry = _cli("--all", "--dry-run", out=out)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.count("would remove: worker process") == 2
        assert dry.stdout.count("would remove: broker process") == 1
        assert "would remove: rabbitmq queue ttg.tasks" in dry.stdout
        assert "would remove: redis key ttg:tasks" in dry.stdout
        assert all(_alive(pid) for pid in pids), "--dry-run must not stop anything"
        assert r.exists("ttg:tasks") and channel.queue_declare("ttg.tasks", passive=True)

        real = _cli("--all", out=out)
        assert real.returncode == 0, real.stderr
        assert real.stdout.count("removed: worker process") == 2
        assert real.stdout.count("removed: broker process redis") == 1
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # another process's exit has no event for us
        assert not any(_alive(pid) for pid in pids)
        assert our_broker.wait(10) is not None and not our_dir.exists()
        assert not r.exists("ttg:tasks", "ttg:results", "ttg:tasks:dlq")
        for key, value in DECOY_KEYS.items():
            assert r.get(key) == value
        assert channel.queue_declare(DECOY_QUEUE, passive=True).method.message_count == 3
        for decoy in decoys:
            assert decoy.poll() is None, f"a process TTG did not start was signalled: {decoy.args}"
        for data in decoy_dirs:
            assert (data / "keep" / "file").read_text() == "user data"
        assert "forged" not in real.stdout and "reused" not in real.stdout
        assert "kubernetes" not in real.stdout.lower()  # HOME has no kube config
        again = _cli("--all", out=out)
        assert "nothing of TTG's to clean up" in again.stdout
    finally:
        cluster.stop()
        for proc in (*decoys, our_broker):
            proc.kill()
            proc.wait()
        for key in DECOY_KEYS:
            r.delete(key)
        channel.queue_delete(DECOY_QUEUE)
        connection.close()
        r.close()


def test_cleanup_refuses_to_purge_a_live_run_unless_forced(tmp_path, backend):
    """While a run holds the broker (the fixture holds its lock), its queues stay;
    --force removes them anyway."""
    backend.publish_tasks([Task("live", 0, 0, 1, 0, "ttg_lib.compute:placeholder")])
    present = backend.purge(dry_run=True)
    assert any(backend.queue_names.tasks in item for item in present)
    result = _cli("--queues", "--backend", backend.name, out=tmp_path)
    assert result.returncode == 0
    assert "a TTG run is live" in result.stdout and "removed:" not in result.stdout
    assert backend.purge(dry_run=True) == present, "a live run's queues were touched"
    assert backend.stats().tasks.ready == 1  # still there (the total may be unknown)

    forced = _cli("--queues", "--backend", backend.name, "--force", out=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "a TTG run is live" not in forced.stdout
    assert all(f"removed: {item}" in forced.stdout for item in present)
    assert backend.purge(dry_run=True) == []


def test_cleanup_needs_a_scope(tmp_path):
    result = _cli(out=tmp_path)
    assert result.returncode == 2
    assert "say what to clean" in result.stderr


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
