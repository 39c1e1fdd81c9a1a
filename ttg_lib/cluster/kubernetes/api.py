"""API access: the kubeconfig context, the client, the :class:`Api` wrapper (raw JSON,
errors as ClusterError, TTG selector enforced) and create-or-patch of one object."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from ..base import ClusterError
from .labels import KIND_CONTEXT, KINDS, NAMESPACE, PART_OF, TTG_SELECTOR
from .manifests import check_ours

APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply (the body is JSON = YAML)
MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "ttg"


def resolve_context(context: str | None = None, flavor: str | None = None) -> str | None:
    """The kubeconfig context TTG acts on; the one answer for `ttg run`, `ttg cleanup` and the
    notebooks, so that they act on the same cluster:

    1. an explicit context (``--kube-context``, ``kube_context=``);
    2. else ``TTG_KUBE_CONTEXT``;
    3. else, on Kind, ``kind-ttg``; on another cluster (k8s) the kubeconfig's current context
       (None); when the flavour is not known (cleanup), ``kind-ttg`` if the kubeconfig has it,
       else the current context.
    """
    if context:
        return context
    if os.environ.get("TTG_KUBE_CONTEXT"):
        return os.environ["TTG_KUBE_CONTEXT"]
    if flavor == "kind":
        return KIND_CONTEXT
    if flavor == "k8s":
        return None
    try:
        from kubernetes import config as kconfig

        contexts, _ = kconfig.list_kube_config_contexts()
    except Exception:
        return None
    return KIND_CONTEXT if any(c.get("name") == KIND_CONTEXT for c in contexts or []) else None


def make_api_client(context: str | None, *, flavor: str = "k8s") -> Any:
    """An ApiClient for a kubeconfig context; inside a pod without a kubeconfig, the pod's
    ServiceAccount (in-cluster config, RBAC in k8s/rbac); else a ClusterError saying how."""
    try:
        from kubernetes import client
        from kubernetes import config as kconfig
    except ImportError as exc:  # pragma: no cover - the k8s extra is missing
        raise ClusterError(f"the Kubernetes provider needs the k8s extra "
                           f"(pip install 'ttg[k8s]'): {exc}") from None
    try:
        return kconfig.new_client_from_config(context=context or None)
    except Exception as exc:  # ConfigException, missing file, unknown context
        if not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            try:
                kconfig.load_incluster_config(client_configuration=configuration)
            except Exception as incluster:
                raise ClusterError(f"no kubeconfig ({exc}) and the in-cluster config failed "
                                   f"({incluster}): is the pod's ServiceAccount token "
                                   f"mounted (k8s/rbac)?") from None
            return client.ApiClient(configuration)
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


def create_or_patch(api: Api, obj: dict[str, Any], request_timeout: float,
                    terminating_wait_s: float = 120.0) -> str:
    """Create one object, or bring it to the manifest when it exists and is TTG's; returns
    what was done.

    Updates are server-side applies (field manager ``ttg``, forced), so a field the manifest
    no longer has (an env var, a port, a ConfigMap key) is removed from the object, which a
    strategic-merge patch never does. Absent objects are created by the same apply, so "ttg"
    owns their fields from the start. Create-only kinds (Secret, PersistentVolumeClaim) are
    never changed once they exist; an existing object without the TTG label is never modified.
    """
    check_ours(obj)
    kind, name = obj["kind"], obj["metadata"]["name"]
    create_only = KINDS[kind][3]
    _, namespaced = api.method("read", kind)
    args = (NAMESPACE,) if namespaced else ()
    label = f"{kind} {NAMESPACE + '/' if namespaced else ''}{name}"
    read, _ = api.method("read", kind)
    existing = api.call(f"read {label}", read, name, *args, missing_ok=True,
                        _request_timeout=request_timeout)
    if existing is not None and (existing.get("metadata") or {}).get("deletionTimestamp"):
        # Terminating (e.g. `down` then `up` at once): kept, a claim that is going would
        # leave Redis Pending; wait for it to go, then create it afresh.
        existing = _wait_gone(api, label, read, (name, *args), terminating_wait_s)
    if existing is not None:
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(PART_OF) != "ttg":
            if create_only:
                return f"kept {label} (exists, not labelled {TTG_SELECTOR}; left untouched)"
            raise ClusterError(f"{label} exists but is not TTG's (no label {TTG_SELECTOR}); "
                               f"TTG will not modify it: rename or remove it yourself")
        if create_only:
            return f"kept {label} (exists)"
    if create_only:
        create, _ = api.method("create", kind)
        api.call(f"create {label}", create, *args, obj, field_manager=FIELD_MANAGER,
                 _request_timeout=request_timeout)
        return f"created {label}"
    patch, _ = api.method("patch", kind)
    api.call(f"apply {label}", patch, name, *args, obj, field_manager=FIELD_MANAGER,
             force=True, _content_type=APPLY_PATCH, _request_timeout=request_timeout)
    return f"{'applied' if existing is not None else 'created'} {label}"


def _wait_gone(api: Api, label: str, read: Callable[..., Any], args: tuple[Any, ...],
               timeout: float, poll_s: float = 0.5) -> dict[str, Any] | None:
    """Wait until an object being deleted (deletionTimestamp set) is gone."""
    deadline = time.monotonic() + timeout
    while True:
        obj = api.call(f"read {label}", read, *args, missing_ok=True)
        if obj is None or not (obj.get("metadata") or {}).get("deletionTimestamp"):
            return obj
        if time.monotonic() >= deadline:
            raise ClusterError(f"{label} is still being deleted (Terminating) after "
                               f"{timeout:g}s: wait for it to go, or see what holds it "
                               f"(kubectl -n {NAMESPACE} describe {label.split()[0].lower()} "
                               f"{label.rsplit('/', 1)[-1]}: finalizers, a pod using it)")
        time.sleep(poll_s)
