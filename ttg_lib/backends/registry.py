"""The one table of brokers: every module outside ``backends/`` reads a broker's facts here.

A spec names the module holding the broker's classes (imported lazily, so a worker image
needs only its own broker's client library), where its URL comes from, its four queues as the
milestone document names them, how it recovers a dead worker's chunk, how to start a private
one on this machine, and its Kubernetes workload. Adding a broker is a module under
``backends/`` plus one entry in :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Consumer, Inspector, Producer


@dataclass(frozen=True)
class QueueNames:
    """The four TTG queues in one broker's spelling."""

    tasks: str
    retry: str
    dlq: str
    results: str

    def by_role(self) -> dict[str, str]:
        return {"tasks": self.tasks, "retry": self.retry, "dlq": self.dlq,
                "results": self.results}


@dataclass(frozen=True)
class KubernetesWorkload:
    """The broker as deployed from k8s/base: its workload, pod label, ports and Secret key."""

    kind: str  # Deployment | StatefulSet
    name: str
    app: str  # the pods' app.kubernetes.io/name
    port: int
    node_port: int  # published on 127.0.0.1 by kind/kind-config.yaml
    secret_key: str  # key of the broker URL in the ttg-broker-credentials Secret


@dataclass(frozen=True)
class BackendSpec:
    name: str
    title: str
    module: str  # holds the classes Producer, Consumer, Inspector
    url_env: str
    default_url: str
    url_schemes: tuple[str, ...]
    default_port: int
    queues: QueueNames
    recovery: str  # how a dead worker's chunk comes back; {lease_s} is filled in
    client_package: str | None  # the Python client, for the run record's versions
    private_broker: str | None = None  # "module:function" starting one on a free port
    install_hint: str = ""
    kubernetes: KubernetesWorkload | None = None

    def url(self) -> str:
        """The broker URL from the environment, else the default (read in one place)."""
        return os.environ.get(self.url_env) or self.default_url

    def recovery_text(self, lease_s: float = 2.0) -> str:
        return self.recovery.format(lease_s=lease_s)

    def _load(self, role: str) -> Any:
        return getattr(importlib.import_module(self.module), role)

    def producer(self, url: str, *, lease_s: float = 2.0) -> Producer:
        """The orchestrator's connection: declare, lock, publish, read results, purge."""
        return self._load("Producer")(url, lease_s=lease_s)

    def consumer(self, url: str, *, lease_s: float = 2.0) -> Consumer:
        """A worker's connection: fetch, keep leases, complete, retry, dead-letter."""
        return self._load("Consumer")(url, lease_s=lease_s)

    def inspector(self, url: str, *, lease_s: float = 2.0) -> Inspector:
        """A read-only connection for monitors: queue depths, dead letters."""
        return self._load("Inspector")(url, lease_s=lease_s)

    def start_private(self, **options: Any) -> Any:
        """Start a private broker for one run (a PrivateBroker), or say why not."""
        if self.private_broker is None:
            raise ConfigError("backend", self.name, "no private broker can be started for it; "
                                                    f"point {self.url_env} at a running one")
        module, _, function = self.private_broker.partition(":")
        return getattr(importlib.import_module(module), function)(**options)


REGISTRY: dict[str, BackendSpec] = {
    "redis": BackendSpec(
        name="redis", title="Redis", module="ttg_lib.backends.redis_streams",
        url_env="TTG_REDIS_URL", default_url="redis://127.0.0.1:6379/0",
        url_schemes=("redis", "rediss", "unix"), default_port=6379,
        queues=QueueNames("ttg:tasks", "ttg:tasks:retry", "ttg:tasks:dlq", "ttg:results"),
        recovery="XAUTOCLAIM after a {lease_s:g} s lease", client_package="redis",
        private_broker="ttg_lib.backends.private:start_redis",
        install_hint="apt-get install redis-server (Debian/Ubuntu), brew install redis (macOS) "
                     "or conda install -c conda-forge redis-server",
        kubernetes=KubernetesWorkload("Deployment", "ttg-redis", "redis", 6379, 30379,
                                      "TTG_REDIS_URL")),
    "rabbitmq": BackendSpec(
        name="rabbitmq", title="RabbitMQ", module="ttg_lib.backends.rabbitmq",
        url_env="TTG_RABBITMQ_URL", default_url="amqp://guest:guest@127.0.0.1:5672/%2F",
        url_schemes=("amqp", "amqps"), default_port=5672,
        queues=QueueNames("ttg.tasks", "ttg.tasks.retry", "ttg.tasks.dlq", "ttg.results"),
        recovery="Requeue on disconnect", client_package="pika",
        private_broker="ttg_lib.backends.private:start_rabbitmq",
        install_hint="apt-get install rabbitmq-server (Debian/Ubuntu) or brew install rabbitmq "
                     "(macOS)",
        kubernetes=KubernetesWorkload("StatefulSet", "ttg-rabbitmq", "rabbitmq", 5672, 30672,
                                      "TTG_RABBITMQ_URL")),
    "memory": BackendSpec(
        name="memory", title="In-memory", module="ttg_lib.backends.memory",
        url_env="TTG_MEMORY_URL", default_url="memory://default", url_schemes=("memory",),
        default_port=0,
        queues=QueueNames("tasks", "tasks.retry", "tasks.dlq", "results"),
        recovery="Lease expiry or consumer close", client_package=None),
}
"""Every backend by name. ``memory`` lives inside one process: unit tests and the contract
suite use it; runs with worker processes need a real broker."""

DEFAULT_BACKEND = "redis"


def backend_names(*, runnable: bool = False) -> tuple[str, ...]:
    """Registered names; ``runnable``: only brokers that worker processes can share."""
    return tuple(n for n, s in REGISTRY.items() if not runnable or s.default_port)


def get_spec(name: str) -> BackendSpec:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError("backend", name, f"one of {', '.join(backend_names(runnable=True))}"
                          ) from None


def env_urls() -> dict[str, str]:
    """Every runnable broker's URL from its environment variable or default."""
    return {name: REGISTRY[name].url() for name in backend_names(runnable=True)}
