"""API access: the kubeconfig context, the client, the :class:`Api` wrapper (raw JSON,
errors as ClusterError, TTG selector enforced) and create-or-patch of one object."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ..base import ClusterError
from .labels import KIND_CONTEXT, KINDS, NAMESPACE, PART_OF, TTG_SELECTOR
from .manifests import check_ours

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def resolve_context(context: str | None = None) -> str | None:
    """An explicit context, else TTG_KUBE_CONTEXT, else kind-ttg when the kubeconfig has it,
    else the current context (None)."""
    if context:
        return context
    if os.environ.get("TTG_KUBE_CONTEXT"):
        return os.environ["TTG_KUBE_CONTEXT"]
    try:
        from kubernetes import config as kconfig

        contexts, _ = kconfig.list_kube_config_contexts()
    except Exception:
        return None
    return KIND_CONTEXT if any(c.get("name") == KIND_CONTEXT for c in contexts or []) else None


def make_api_client(context: str | None, *, flavor: str = "k8s") -> Any:
    """An ApiClient for a kubeconfig context, or a ClusterError saying how to get one."""
    try:
        from kubernetes import config as kconfig
    except ImportError as exc:  # pragma: no cover - the k8s extra is missing
        raise ClusterError(f"the Kubernetes provider needs the k8s extra "
                           f"(pip install 'ttg[k8s]'): {exc}") from None
    try:
        return kconfig.new_client_from_config(context=context or None)
    except Exception as exc:  # ConfigException, missing file, unknown context
        hint = ("create the Kind cluster first: notebooks/provision.ipynb with action='up', or "
                "kind create cluster --config kind/kind-config.yaml" if flavor == "kind" else
                "check `kubectl config get-contexts` and pass kube_context=<name>")
        where = f"context {context!r}" if context else "current context"
        raise ClusterError(f"cannot load kubeconfig ({where}): {exc}; {hint}") from None


class Api:
    """Thin wrapper over the client: raw JSON dicts in and out, errors as ClusterError."""

    def __init__(self, api_client: Any, request_timeout: float = 30.0):
        from kubernetes import client

        self.client = client
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.groups = {"core": client.CoreV1Api(api_client), "apps": client.AppsV1Api(api_client),
                       "networking": client.NetworkingV1Api(api_client)}
        self.core = self.groups["core"]

    @property
    def host(self) -> str:
        return getattr(self.api_client.configuration, "host", "?")

    def method(self, verb: str, kind: str) -> tuple[Callable[..., Any], bool]:
        group, snake, namespaced, _ = KINDS.get(kind) or ("core", "pod", True, False)
        name = f"{verb}_namespaced_{snake}" if namespaced else f"{verb}_{snake}"
        return getattr(self.groups[group], name), namespaced

    def call(self, what: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False,
             **kwargs: Any) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            resp = fn(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise api_error(what, exc) from None
        except ClusterError:
            raise
        except Exception as exc:  # urllib3 / socket errors: the API server is not reachable
            raise ClusterError(f"cannot reach the Kubernetes API at {self.host} to {what}: "
                               f"{exc}") from None
        data = resp.data
        return json.loads(data) if data else {}

    def list(self, kind: str, selector: str, **kwargs: Any) -> list[dict[str, Any]]:
        """List TTG objects of one kind; the TTG label selector is mandatory."""
        if TTG_SELECTOR not in selector.split(","):
            raise ClusterError(f"refusing to list {kind} without the selector {TTG_SELECTOR}")
        fn, namespaced = self.method("list", kind)
        args = (NAMESPACE,) if namespaced else ()
        got = self.call(f"list {kind} ({selector})", fn, *args, label_selector=selector,
                        **kwargs)
        return (got or {}).get("items") or []

    def delete_collection(self, kind: str, selector: str, **kwargs: Any) -> None:
        if TTG_SELECTOR not in selector.split(","):
            raise ClusterError(f"refusing to delete {kind} without the selector {TTG_SELECTOR}")
        fn, _ = self.method("delete_collection", kind)
        self.call(f"delete {kind} ({selector})", fn, NAMESPACE, label_selector=selector,
                  **kwargs)


def api_error(what: str, exc: Any) -> ClusterError:
    message = exc.reason
    try:
        message = json.loads(exc.body).get("message") or message
    except (TypeError, ValueError, AttributeError):
        pass
    hint = " (is the cluster running? kubeconfig credentials valid?)" if exc.status in (
        0, 401, 403) else ""
    return ClusterError(f"Kubernetes API refused to {what}: HTTP {exc.status}: {message}{hint}")


def create_or_patch(api: Api, obj: dict[str, Any], request_timeout: float) -> str:
    """Create one object, or patch it when it exists and is TTG's; returns what was done.

    Create-only kinds (Secret, PersistentVolumeClaim) are never patched; an existing
    object without the TTG label is never modified.
    """
    from kubernetes.client.exceptions import ApiException

    check_ours(obj)
    kind, name = obj["kind"], obj["metadata"]["name"]
    create_only = KINDS[kind][3]
    create, namespaced = api.method("create", kind)
    args = (NAMESPACE,) if namespaced else ()
    label = f"{kind} {NAMESPACE + '/' if namespaced else ''}{name}"
    try:
        create(*args, obj, _preload_content=False, _request_timeout=request_timeout)
        return f"created {label}"
    except ApiException as exc:
        if exc.status != 409:
            raise api_error(f"create {label}", exc) from None
    except Exception as exc:
        raise ClusterError(f"cannot reach the Kubernetes API at {api.host} to create "
                           f"{label}: {exc}") from None
    read, _ = api.method("read", kind)
    existing = api.call(f"read {label}", read, name, *args) or {}
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get(PART_OF) != "ttg":
        if create_only:
            return f"kept {label} (exists, not labelled {TTG_SELECTOR}; left untouched)"
        raise ClusterError(f"{label} exists but is not TTG's (no label {TTG_SELECTOR}); "
                           f"TTG will not modify it: rename or remove it yourself")
    if create_only:
        return f"kept {label} (exists)"
    patch, _ = api.method("patch", kind)
    api.call(f"patch {label}", patch, name, *args, obj, _content_type=STRATEGIC_MERGE)
    return f"patched {label}"
