"""Worker pod settings a run gives the Kubernetes provider: image, pull policy, resources.

Checked with the rest of the configuration (before anything starts), without the
``kubernetes`` client: a k8s run without an image the nodes can pull is one clear error.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from ..errors import ConfigError


class PodConfig(Protocol):
    """The fields of a :class:`~ttg_lib.config.RunConfig` pod settings read (config.py calls
    this module: it is not imported back)."""

    cluster: str
    image: str
    worker_cpu: str
    worker_memory: str
    extra: dict[str, Any]

KIND_IMAGE = "ttg-worker:dev"  # built and side-loaded by `python -m ttg_lib.cluster.kind up`
# Kubernetes quantities: CPU in cores or millicores, memory with a binary or decimal suffix.
CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")
MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")


def image_of(config: PodConfig) -> str:
    """The run's worker image: ``--image``, else the older ``extra.image`` of a config file,
    else Kind's side-loaded image ("" on k8s: refused by :func:`check_pod_settings`)."""
    image = config.image or str((config.extra or {}).get("image") or "")
    return image or (KIND_IMAGE if config.cluster == "kind" else "")


def is_digest(image: str) -> bool:
    return "@sha256:" in image


def has_registry(image: str) -> bool:
    """The first path part names a registry host (a dot or a port, or localhost)."""
    first, _, rest = image.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


def pull_policy(image: str, flavor: str) -> str:
    """A digest never changes: IfNotPresent. A tag may be re-pushed: Always, so nodes never
    run stale code, except an image side-loaded into Kind (no registry to pull from)."""
    if is_digest(image):
        return "IfNotPresent"
    if flavor == "kind" and not has_registry(image):
        return "IfNotPresent"
    return "Always"


def check_pod_settings(config: PodConfig) -> None:
    if config.cluster == "local":
        return
    image = image_of(config)
    if config.cluster == "k8s" and not image:
        raise ConfigError(
            "image", "", "--cluster k8s needs --image with a worker image the cluster's nodes "
            "can pull, e.g. REGISTRY/ttg-worker:TAG or, better, REGISTRY/ttg-worker@sha256:... "
            "(build it from the Dockerfile and push it; README 'A real cluster')")
    if not IMAGE.match(image):
        raise ConfigError("image", image, "an image reference: [REGISTRY/]NAME[:TAG] or "
                                          "[REGISTRY/]NAME@sha256:DIGEST, lower case")
    if config.worker_cpu and not CPU.match(config.worker_cpu):
        raise ConfigError("worker_cpu", config.worker_cpu,
                          "a Kubernetes CPU quantity: cores (1, 1.5) or millicores (500m)")
    if config.worker_memory and not MEMORY.match(config.worker_memory):
        raise ConfigError("worker_memory", config.worker_memory,
                          "a Kubernetes memory quantity, e.g. 512Mi, 2Gi")
