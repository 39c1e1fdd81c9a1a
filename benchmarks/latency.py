"""Per-chunk latency with one chunk in flight, and broker operations per chunk.

One worker process (the real local cluster) and this process as the orchestrator: publish a
one-param, zero-work chunk, wait for its result, repeat. Latency = publish -> result read by the
orchestrator. Broker operations come from the broker's own counters: Redis `INFO stats`
(commands processed, all clients) and RabbitMQ's management API (publishes, deliveries, acks,
confirms in the run's vhost).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from ttg_lib.backends import open_producer
from ttg_lib.backends.rabbitmq_management import management_get
from ttg_lib.cluster.local import LocalCluster
from ttg_lib.messages import Result, Task

RUN_ID = "bench-latency"


def measure_latency(backend_name: str, url: str, samples: int, out: Path) -> dict[str, Any]:
    backend = open_producer(backend_name, url)
    backend.connect()
    backend.acquire_run(RUN_ID)
    backend.purge()
    backend.declare()
    cluster = LocalCluster(backend=backend_name, broker_url=url, run_id=RUN_ID,
                           record_dir=out / "latency" / backend_name)
    try:
        cluster.start_workers(1)
        cluster.wait_ready(1, 60)
        _one_round(backend, 0)  # warm-up: first delivery pays connection set-up
        ops_before = _broker_ops(backend_name, url, backend)
        latencies = [_one_round(backend, i) for i in range(1, samples + 1)]
        ops_after = _broker_ops(backend_name, url, backend)
    finally:
        cluster.stop()
        backend.purge()
        backend.release_run(RUN_ID)
        backend.close()
    ms = sorted(x * 1000 for x in latencies)
    ops = None if ops_before is None or ops_after is None else (ops_after - ops_before) / samples
    return {"samples": samples, "p50_ms": statistics.median(ms),
            "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))], "max_ms": ms[-1],
            "broker_ops_per_chunk": ops,
            "broker_ops_source": "redis INFO total_commands_processed (all clients)"
            if backend_name == "redis" else "rabbitmq management message_stats of the vhost"}


def _one_round(backend, chunk_id: int) -> float:
    task = Task(run_id=RUN_ID, chunk_id=chunk_id, start=chunk_id, count=1, work_ms=0,
                compute="ttg_lib.compute:placeholder", published_at=time.time())
    start = time.perf_counter()
    backend.publish_tasks([task])
    while True:
        for result in backend.read_results(1.0):
            if isinstance(result, Result) and result.chunk_id == chunk_id:
                return time.perf_counter() - start


def _broker_ops(backend_name: str, url: str, backend) -> float | None:
    if backend_name == "redis":
        return float(backend.r.info("stats")["total_commands_processed"])
    time.sleep(5.5)  # the management API refreshes its counters every 5 s
    vhost = quote(unquote(urlparse(url).path.lstrip("/")) or "/", safe="")
    counters = management_get(url, f"/api/vhosts/{vhost}")  # this vhost's, not the node's
    if not isinstance(counters, dict):
        return None
    stats = counters.get("message_stats", {})
    return float(sum(stats.get(k, 0) for k in ("publish", "deliver_get", "ack", "confirm")))
