"""The broker credentials: a Secret generated with random passwords when it is absent.

Nothing in the repository holds a password. The first deploy into a cluster creates the Secret
``ttg-broker-credentials`` (TTG-labelled, create-only: later runs reuse it, so the brokers'
stored users keep working); ``python -m ttg_lib.cluster.kind credentials`` shows it. The run
record never holds it (tests/test_kubernetes_provider.py checks).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from ...backends import REGISTRY, KubernetesWorkload
from ..base import ClusterError
from .labels import BROKER_SECRET, BROKERS, NAMESPACE, PART_OF


def _workloads() -> list[KubernetesWorkload]:
    return [w for w in (REGISTRY[name].kubernetes for name in BROKERS)
            if w is not None and w.secret_entries is not None]


def _entries(password: str = "x") -> dict[str, str]:
    return {key: value for w in _workloads()
            for key, value in w.secret_entries(password, w.name, w.port).items()}  # type: ignore[misc]


# Every key the manifests' secretKeyRefs and the provider read (each broker says its own).
KEYS = tuple(_entries())


def secret_metadata() -> dict[str, Any]:
    """The Secret's name, namespace and TTG labels (the dry-run plan lists them)."""
    return {"name": BROKER_SECRET, "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": BROKER_SECRET,
                       "app.kubernetes.io/instance": "ttg",
                       "app.kubernetes.io/component": "broker", PART_OF: "ttg"}}


def generate_secret() -> dict[str, Any]:
    """A new Secret object with fresh random passwords (URL-safe, 32 characters)."""
    data: dict[str, str] = {}
    for w in _workloads():  # a password of its own for every broker
        data.update(w.secret_entries(secrets.token_urlsafe(24), w.name, w.port))  # type: ignore[misc]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": secret_metadata(),
            "type": "Opaque", "stringData": data}


def decode(secret: dict[str, Any]) -> dict[str, str]:
    """The Secret's values as text (``data`` is base64, ``stringData`` plain)."""
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def check_complete(values: dict[str, str]) -> None:
    """A Secret from before generated credentials lacks keys the brokers now need."""
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise ClusterError(
            f"Secret {NAMESPACE}/{BROKER_SECRET} lacks {', '.join(missing)} (it predates TTG's "
            f"generated credentials). Delete it and the brokers' data so both start afresh: "
            f"`python -m ttg_lib.cluster.kind down` (TTG objects only), then run again")

