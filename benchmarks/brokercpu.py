"""CPU seconds of the broker process, so the overhead suite can say where the time went.

The broker's pid comes from the broker itself (Redis ``INFO server``, RabbitMQ's management
API); its CPU from /proc, so this works where the broker runs on this machine (None elsewhere).
"""

from __future__ import annotations

import os

import redis

from ttg_lib.backends.rabbitmq_management import management_get


def broker_pid(backend: str, url: str) -> int | None:
    if backend == "redis":
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()
    nodes = management_get(url, "/api/nodes")
    if isinstance(nodes, list) and nodes and nodes[0].get("os_pid"):
        return int(nodes[0]["os_pid"])
    return None


def process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds of a local process, summed over its threads (Linux schedstat: nanosecond
    resolution, where /proc/<pid>/stat counts 10 ms ticks); None if not visible."""
    if pid is None:
        return None
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9
