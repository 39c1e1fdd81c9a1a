"""Broker backends behind one interface; pick one by name."""

from __future__ import annotations

from .base import Backend, BrokerUnavailable, Delivery, QueueStat, QueueStats, RunLocked


def make_backend(name: str, url: str, *, lease_s: float = 2.0, worker: bool = False) -> Backend:
    """Imports lazily so a worker image needs only its own broker's client.

    ``worker=True`` asks for fast failure detection (RabbitMQ: a heartbeat of about half
    the lease); orchestrators and monitors, which may block for a while, get a lenient one.
    """
    if name == "redis":
        from .redis_streams import RedisBackend

        return RedisBackend(url, lease_s=lease_s)
    if name == "rabbitmq":
        from .rabbitmq import RabbitMQBackend

        heartbeat = max(1, round(lease_s / 2)) if worker else 30
        return RabbitMQBackend(url, lease_s=lease_s, heartbeat_s=heartbeat, transactional=worker)
    raise ValueError(f"invalid backend={name!r}: one of redis, rabbitmq")


__all__ = ["Backend", "BrokerUnavailable", "Delivery", "QueueStat", "QueueStats", "RunLocked",
           "make_backend"]
