"""Which cluster provider a run's ``cluster`` setting names: one entry per provider.

A provider is a factory (the run's config and broker URL in, a :class:`Cluster` out) and
how long its workers may take to become ready (processes start in seconds; pods may pull
images first). A new provider is one module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RunError

if TYPE_CHECKING:
    from ..config import RunConfig
    from .base import Cluster


@dataclass(frozen=True)
class Provider:
    build: Callable[[RunConfig, str], Cluster]
    ready_timeout_s: float  # for the first workers to report ready


def _local(config: RunConfig, broker_url: str) -> Cluster:
    from .local import LocalCluster

    return LocalCluster(backend=config.backend, broker_url=broker_url, run_id=config.run_id,
                        record_dir=config.record_dir, restart=config.restart,
                        lease_s=config.lease_s, liveness_s=config.liveness_s)


def _kubernetes(config: RunConfig, broker_url: str) -> Cluster:
    try:
        from .kubernetes import KubernetesCluster
    except ImportError as exc:
        raise RunError(f"cluster {config.cluster!r} needs the Kubernetes provider "
                       f"(pip install 'ttg[k8s]'): {exc}") from None
    return KubernetesCluster.for_run(config)


PROVIDERS: dict[str, Provider] = {
    "local": Provider(_local, ready_timeout_s=60.0),
    "kind": Provider(_kubernetes, ready_timeout_s=180.0),  # image pulls and scheduling
    "k8s": Provider(_kubernetes, ready_timeout_s=180.0),
}


def provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise RunError(f"no cluster provider {name!r}: one of {', '.join(PROVIDERS)}") from None


def make_cluster(config: RunConfig, broker_url: str) -> Cluster:
    """The cluster a run's config names, not started yet."""
    return provider(config.cluster).build(config, broker_url)
