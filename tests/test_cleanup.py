"""`ttg cleanup` removes every TTG object and nothing else (decoys stay untouched)."""

from __future__ import annotations

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
    return subprocess.run([sys.executable, "-m", "ttg_lib.cli", "cleanup", *args,
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=60)


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
    decoy = subprocess.Popen(["sleep", "300"])
    # a forged ledger line naming the decoy's pid: the marker does not match, so no signal
    Ledger(out / "runs" / "forged" / "processes.jsonl").record(ProcessEntry(
        "worker", "forged", decoy.pid, start_ticks(decoy.pid), "ttg_lib.worker", "forged"))
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
        assert "would remove: rabbitmq queue ttg.tasks" in dry.stdout
        assert "would remove: redis key ttg:tasks" in dry.stdout
        assert all(_alive(pid) for pid in pids), "--dry-run must not stop anything"
        assert r.exists("ttg:tasks") and channel.queue_declare("ttg.tasks", passive=True)

        real = _cli("--all", out=out)
        assert real.returncode == 0, real.stderr
        assert real.stdout.count("removed: worker process") == 2
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # another process's exit has no event for us
        assert not any(_alive(pid) for pid in pids)
        assert not r.exists("ttg:tasks", "ttg:results", "ttg:tasks:dlq")
        for key, value in DECOY_KEYS.items():
            assert r.get(key) == value
        assert channel.queue_declare(DECOY_QUEUE, passive=True).method.message_count == 3
        assert decoy.poll() is None, "a process TTG did not start was signalled"
        assert "forged" not in real.stdout
        again = _cli("--all", out=out)
        assert "nothing of TTG's to clean up" in again.stdout
    finally:
        cluster.stop()
        decoy.kill()
        for key in DECOY_KEYS:
            r.delete(key)
        channel.queue_delete(DECOY_QUEUE)
        connection.close()
        r.close()


def test_cleanup_refuses_to_purge_a_live_run(tmp_path, backend):
    """While a run holds the broker (the fixture holds its lock), its queues stay."""
    result = _cli("--queues", "--backend", backend.name, out=tmp_path)
    assert result.returncode == 0
    assert "a TTG run is live" in result.stdout


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
