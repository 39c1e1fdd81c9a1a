"""Names, labels and selectors of TTG's Kubernetes objects, and the per-kind tables."""

from __future__ import annotations

import re
from typing import Any

from ...backends import REGISTRY, backend_names

NAMESPACE = "ttg"
PART_OF = "app.kubernetes.io/part-of"
TTG_SELECTOR = f"{PART_OF}=ttg"
COMPONENT = "app.kubernetes.io/component"
RUN_LABEL = "ttg.dev/run-id"
WORKER_DEPLOYMENT = "ttg-worker"
WORKER_CONFIGMAP = "ttg-worker-config"
WORKER_CONTAINER = "worker"
WORKER_SELECTOR = f"{TTG_SELECTOR},{COMPONENT}=worker"
BROKER_SECRET = "ttg-broker-credentials"
KIND_CONTEXT = "kind-ttg"
ORCHESTRATOR = "orchestrator"  # the component label of an in-cluster orchestrator (k8s/rbac)
# Broker workload per backend (from the backend registry): the pods' label
# app.kubernetes.io/name, the in-cluster port, the NodePort kind publishes on 127.0.0.1, and
# the Secret key holding the broker URL.
BROKERS: dict[str, dict[str, Any]] = {
    name: REGISTRY[name].kubernetes.to_dict()  # type: ignore[union-attr]
    for name in backend_names(runnable=True) if REGISTRY[name].kubernetes is not None}
# Brokers with an HTTP management API the host reads (unacked counts): the pod's port, the
# NodePort kind publishes on 127.0.0.1, and the variable the backend reads its base URL from.
MANAGEMENT: dict[str, dict[str, Any]] = {
    name: vars(REGISTRY[name].kubernetes.management)  # type: ignore[union-attr]
    for name in BROKERS if REGISTRY[name].kubernetes.management is not None}  # type: ignore[union-attr]
# kind -> (API group, snake-case resource name used in the client's method names,
# namespaced, create-only: never patched once it exists).
KINDS: dict[str, tuple[str, str, bool, bool]] = {
    "Namespace": ("core", "namespace", False, False),
    "Secret": ("core", "secret", True, True),
    "PersistentVolumeClaim": ("core", "persistent_volume_claim", True, True),
    "ConfigMap": ("core", "config_map", True, False),
    "Service": ("core", "service", True, False),
    "Deployment": ("apps", "deployment", True, False),
    "StatefulSet": ("apps", "stateful_set", True, False),
    "NetworkPolicy": ("networking", "network_policy", True, False),
}


def run_label(run_id: str) -> str:
    """The run id as a label value (<= 63 chars, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)[:63].strip("-_.")
    return value or "run"


def selector_labels(selector: str) -> dict[str, str]:
    return dict(term.split("=", 1) for term in selector.split(",") if "=" in term)


def broker_selector(backend: str) -> str:
    return f"{TTG_SELECTOR},app.kubernetes.io/name={BROKERS[backend]['app']}"


def worker_selector(run_id: str) -> str:
    return f"{WORKER_SELECTOR},{RUN_LABEL}={run_label(run_id)}"
