"""Broker backends behind one interface; pick one by name."""

from __future__ import annotations

from .base import Backend, BrokerUnavailable, Delivery, QueueStat, QueueStats, RunLocked


def make_backend(name: str, url: str, *, lease_s: float = 2.0) -> Backend:
    """Imports lazily so a worker image needs only its own broker's client."""
    if name == "redis":
        from .redis_streams import RedisBackend

        return RedisBackend(url, lease_s=lease_s)
    if name == "rabbitmq":
        from .rabbitmq import RabbitMQBackend

        return RabbitMQBackend(url, lease_s=lease_s)
    raise ValueError(f"invalid backend={name!r}: one of redis, rabbitmq")


__all__ = ["Backend", "BrokerUnavailable", "Delivery", "QueueStat", "QueueStats", "RunLocked",
           "make_backend"]
