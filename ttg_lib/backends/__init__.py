"""Broker backends: one contract split by role (base.py), a registry naming every broker
(registry.py), and one module per broker. Nothing outside this package names a broker."""

from __future__ import annotations

from .base import (
    AnnouncesLateResults,
    BrokerUnavailable,
    Connection,
    Consumer,
    ConsumerInfo,
    Delivery,
    ExpiringLock,
    FinalCounts,
    ForgetsConsumers,
    Inspector,
    ListsConsumers,
    Producer,
    QueueStat,
    QueueStats,
    ResultsIndex,
    RunLocked,
    stored_key,
)
from .blobs import StoresBlobs
from .registry import (
    DEFAULT_BACKEND,
    REGISTRY,
    BackendSpec,
    KubernetesWorkload,
    QueueNames,
    backend_names,
    env_urls,
    get_spec,
)


def open_producer(name: str, url: str | None = None, *, lease_s: float = 2.0) -> Producer:
    """The orchestrator's (or cleanup's) connection to broker ``name``, not yet connected."""
    spec = get_spec(name)
    return spec.role_class("Producer")(url or spec.url(), lease_s=lease_s)


def open_consumer(name: str, url: str | None = None, *, lease_s: float = 2.0) -> Consumer:
    """A worker's connection to broker ``name``, not yet connected."""
    spec = get_spec(name)
    return spec.role_class("Consumer")(url or spec.url(), lease_s=lease_s)


def open_inspector(name: str, url: str | None = None, *, lease_s: float = 2.0) -> Inspector:
    """A monitor's read-only connection to broker ``name``, not yet connected."""
    spec = get_spec(name)
    return spec.role_class("Inspector")(url or spec.url(), lease_s=lease_s)


__all__ = [
    "DEFAULT_BACKEND", "REGISTRY", "AnnouncesLateResults", "BackendSpec",
    "BrokerUnavailable", "Connection", "Consumer", "ConsumerInfo", "Delivery", "ExpiringLock",
    "FinalCounts", "ForgetsConsumers", "Inspector", "KubernetesWorkload",
    "ListsConsumers", "Producer", "QueueNames", "QueueStat", "QueueStats", "ResultsIndex",
    "RunLocked", "StoresBlobs", "backend_names", "env_urls", "get_spec", "open_consumer",
    "open_inspector", "open_producer", "stored_key",
]
