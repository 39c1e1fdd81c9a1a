"""The registry of brokers: every module outside ``backends/`` reads a broker's facts here.

Each broker's module declares its :class:`BackendSpec` as ``SPEC``: where its URL comes
from, its four queues as the milestone document names them, how it recovers a dead worker's
chunk, how to start a private one on this machine, its Kubernetes workload, and its classes
(Producer, Consumer, Inspector). Adding a broker is one module under ``backends/`` plus its
line in :data:`MODULES`.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class QueueNames:
    """The four TTG queues in one broker's spelling."""

    tasks: str
    retry: str
    dlq: str
    results: str

    @classmethod
    def joined(cls, sep: str, prefix: str = "ttg") -> QueueNames:
        """The milestone document's names, ``ttg.tasks``, ``ttg.tasks.retry``, ... with the
        broker's own separator."""
        tasks = f"{prefix}{sep}tasks"
        return cls(tasks, f"{tasks}{sep}retry", f"{tasks}{sep}dlq", f"{prefix}{sep}results")

    def as_tuple(self) -> tuple[str, str, str, str]:
        return self.tasks, self.retry, self.dlq, self.results

    def by_role(self) -> dict[str, str]:
        return dict(zip(("tasks", "retry", "dlq", "results"), self.as_tuple(), strict=True))


@dataclass(frozen=True)
class ManagementPort:
    """A broker's HTTP management API, where the host reads figures AMQP cannot give."""

    port: int
    node_port: int  # published on 127.0.0.1 by kind/kind-config.yaml
    env: str  # the variable the backend reads the API's base URL from


@dataclass(frozen=True)
class KubernetesWorkload:
    """The broker as deployed from k8s/base: its workload, pod label, ports and Secret key."""

    kind: str  # Deployment | StatefulSet
    name: str
    app: str  # the pods' app.kubernetes.io/name
    port: int
    node_port: int  # published on 127.0.0.1 by kind/kind-config.yaml
    secret_key: str  # key of the broker URL in the ttg-broker-credentials Secret
    secret_entries: Callable[[str, str, int], dict[str, str]] | None = None
    """(generated password, service host, port) -> this broker's keys in the Secret (its URL
    under ``secret_key``, and what the broker's pod reads to require that password)."""
    management: ManagementPort | None = None

    def to_dict(self) -> dict[str, object]:
        """The plain table the Kubernetes provider and the dry-run plan read."""
        return {"kind": self.kind, "name": self.name, "app": self.app, "port": self.port,
                "node_port": self.node_port, "secret_key": self.secret_key}


@dataclass(frozen=True)
class BackendSpec:
    name: str
    title: str
    module: str  # holds the classes Producer, Inspector (and Consumer, unless below)
    url_env: str
    default_url: str
    url_schemes: tuple[str, ...]
    default_port: int  # 0: not a network broker
    queues: QueueNames
    recovery: str  # how a dead worker's chunk comes back; {lease_s} is filled in
    client_package: str | None  # the Python client, for the run record's versions
    private_broker: str | None = None  # "module:function" starting one on a free port
    consumer_module: str | None = None  # the worker's side in a module of its own
    kubernetes: KubernetesWorkload | None = None

    @property
    def shared(self) -> bool:
        """Worker processes (and pods) can reach it: a network broker."""
        return self.default_port > 0

    def url(self) -> str:
        """The broker URL from the environment, else the default (read in one place)."""
        return os.environ.get(self.url_env) or self.default_url

    def recovery_text(self, lease_s: float = 2.0) -> str:
        return self.recovery.format(lease_s=lease_s)

    def role_class(self, role: str) -> Any:
        """The class for ``role`` (Producer, Consumer, Inspector), imported on first use; the
        open_* functions of :mod:`ttg_lib.backends` type it (base.py imports this module)."""
        module = self.consumer_module if role == "Consumer" and self.consumer_module \
            else self.module
        return getattr(importlib.import_module(module), role)

    def start_private(self, **options: Any) -> Any:
        """Start a private broker for one run (a PrivateBroker), or say why not."""
        if self.private_broker is None:
            raise ConfigError("backend", self.name, "no private broker can be started for it; "
                                                    f"point {self.url_env} at a running one")
        module, _, function = self.private_broker.partition(":")
        return getattr(importlib.import_module(module), function)(**options)


MODULES: dict[str, str] = {
    "redis": "ttg_lib.backends.redis_streams",
    "rabbitmq": "ttg_lib.backends.rabbitmq",
    "memory": "ttg_lib.backends.memory",
}
"""Every backend by name, and the module holding its ``SPEC`` and classes. ``memory`` lives
inside one process: unit tests and the contract suite use it; runs with worker processes
need a broker they can share."""

IN_PROCESS = frozenset({"memory"})  # not shared (BackendSpec.shared): known without importing
# a spec, so listing the runnable brokers loads no broker's client (tests check they agree)


class _Registry(Mapping[str, BackendSpec]):
    """name -> spec, each imported on first use (a broker's client library loads only when
    that broker is asked for)."""

    def __getitem__(self, name: str) -> BackendSpec:
        return _load_spec(name)

    def __iter__(self) -> Iterator[str]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)


@functools.cache
def _load_spec(name: str) -> BackendSpec:
    if name not in MODULES:
        raise KeyError(name)
    try:
        module = importlib.import_module(MODULES[name])
    except ImportError as exc:
        raise ConfigError("backend", name, f"its client library does not import ({exc}); "
                                           f"install it with pip") from None
    return module.SPEC


REGISTRY: Mapping[str, BackendSpec] = _Registry()

DEFAULT_BACKEND = "redis"


def backend_names(*, runnable: bool = False) -> tuple[str, ...]:
    """Registered names; ``runnable``: only brokers that worker processes can share."""
    return tuple(n for n in MODULES if not runnable or n not in IN_PROCESS)


def get_spec(name: str) -> BackendSpec:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable value from a config file
        raise ConfigError("backend", name, f"one of {', '.join(backend_names(runnable=True))}"
                          ) from None


def env_urls() -> dict[str, str]:
    """Every runnable broker's URL from its environment variable or default."""
    return {name: REGISTRY[name].url() for name in backend_names(runnable=True)}
