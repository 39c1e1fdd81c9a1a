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

from ..base import ClusterError
from .labels import BROKER_SECRET, BROKERS, NAMESPACE, PART_OF

RABBITMQ_USER = "ttg"
# Every key the manifests' secretKeyRefs and the provider read.
KEYS = ("TTG_REDIS_URL", "TTG_RABBITMQ_URL", "RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS",
        "REDIS_PASSWORD")


def secret_metadata() -> dict[str, Any]:
    """The Secret's name, namespace and TTG labels (the dry-run plan lists them)."""
    return {"name": BROKER_SECRET, "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": BROKER_SECRET,
                       "app.kubernetes.io/instance": "ttg",
                       "app.kubernetes.io/component": "broker", PART_OF: "ttg"}}


def generate_secret() -> dict[str, Any]:
    """A new Secret object with fresh random passwords (URL-safe, 32 characters)."""
    redis_pw, rabbit_pw = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    redis, rabbit = BROKERS["redis"], BROKERS["rabbitmq"]
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": secret_metadata(), "type": "Opaque",
        "stringData": {
            "TTG_REDIS_URL": f"redis://:{redis_pw}@{redis['name']}:{redis['port']}/0",
            "TTG_RABBITMQ_URL": (f"amqp://{RABBITMQ_USER}:{rabbit_pw}@{rabbit['name']}:"
                                 f"{rabbit['port']}/%2F"),
            "RABBITMQ_DEFAULT_USER": RABBITMQ_USER,
            "RABBITMQ_DEFAULT_PASS": rabbit_pw,
            "REDIS_PASSWORD": redis_pw,
        },
    }


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

