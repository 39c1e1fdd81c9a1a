"""Workers as pods: the Kubernetes cluster provider (Kind, or any kubeconfig context).

Every API operation goes through the official ``kubernetes`` Python client (no kubectl).
The objects come from the plain YAML under ``k8s/base`` (plus ``k8s/overlays/kind`` on Kind),
loaded in the order their kustomization lists them; TTG then sets the run's values:

* the worker ConfigMap's ``TTG_BACKEND``, ``TTG_RUN_ID`` and ``TTG_LEASE_S``,
* the worker Deployment's replicas, image (``ttg-worker:dev`` on Kind) and the label
  ``ttg.dev/run-id`` on the Deployment, its pod template and the ConfigMap.
  (``app.kubernetes.io/instance`` stays ``ttg``: it is part of the Deployment's immutable
  selector and of the brokers' Service and NetworkPolicy selectors.)

Safety rules, enforced here and checked by tests/test_kubernetes_provider.py:

* only objects in namespace ``ttg`` labelled ``app.kubernetes.io/part-of=ttg`` are applied;
  an existing object of the same name without that label is never modified;
* every list and every delete carries the label selector ``app.kubernetes.io/part-of=ttg``
  (deletes are delete-collection calls with that selector; killing one pod adds a field
  selector on its name, so exactly that pod goes);
* the Secret (broker credentials) and the PersistentVolumeClaim are created when absent and
  otherwise left alone, so replaced credentials and stored data survive a new run.

Reaching the brokers from the host (the run's own backend connection): on Kind through the
NodePorts that kind/kind-config.yaml publishes on 127.0.0.1 (30379 Redis, 30672 AMQP);
on another cluster through a port-forward made with the client's websocket support.
"""

from __future__ import annotations

import base64
import json
import os
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from .base import Cluster, ClusterError, WorkerInfo

if TYPE_CHECKING:
    from ..cleanup import CleanupReport
    from ..config import RunConfig

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
KIND_IMAGE = "ttg-worker:dev"
# Broker workload per backend, the pods' label app.kubernetes.io/name, the in-cluster port,
# the NodePort kind publishes on 127.0.0.1, and the Secret key holding the broker URL.
BROKERS: dict[str, dict[str, Any]] = {
    "redis": {"kind": "Deployment", "name": "ttg-redis", "app": "redis", "port": 6379,
              "node_port": 30379, "secret_key": "TTG_REDIS_URL"},
    "rabbitmq": {"kind": "StatefulSet", "name": "ttg-rabbitmq", "app": "rabbitmq",
                 "port": 5672, "node_port": 30672, "secret_key": "TTG_RABBITMQ_URL"},
}
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
# Deletion order for cleanup: workloads first (their pods go with them), then the rest.
CLEANUP_KINDS = ("Deployment", "StatefulSet", "Service", "NetworkPolicy", "ConfigMap", "Secret",
                 "PersistentVolumeClaim", "Pod")
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
IMAGE_PULL_HINT = ("; the image is missing on the nodes: build and load it "
                   "(docker build -t ttg-worker:dev . && kind load docker-image ttg-worker:dev "
                   "--name ttg, or notebooks/provision.ipynb with action='up')")


def manifests_dir() -> Path:
    """``k8s/`` of the source tree (override with TTG_K8S_DIR)."""
    env = os.environ.get("TTG_K8S_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "k8s"
    if not (path / "base" / "kustomization.yaml").exists():
        raise ClusterError(f"Kubernetes manifests not found in {path}: run TTG from its source "
                           f"checkout (pip install -e .) or set TTG_K8S_DIR to the k8s/ folder")
    return path


def run_label(run_id: str) -> str:
    """The run id as a label value (<= 63 chars, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)[:63].strip("-_.")
    return value or "run"


def selector_labels(selector: str) -> dict[str, str]:
    return dict(term.split("=", 1) for term in selector.split(",") if "=" in term)


def _load_kustomization(folder: Path, *, local_only: bool) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        if entry.startswith(".."):
            if local_only:
                continue
            raise ClusterError(f"{folder}/kustomization.yaml: nested base {entry} not supported")
        for doc in yaml.safe_load_all((folder / entry).read_text()):
            if doc:
                objects.append(doc)
    return objects


def render_objects(*, flavor: str, backend: str, run_id: str, workers: int,
                   lease_s: float = 2.0, image: str | None = None,
                   k8s_dir: Path | None = None) -> list[dict[str, Any]]:
    """The objects to apply, in order, with the run's values set; each is checked to be TTG's."""
    root = k8s_dir or manifests_dir()
    objects = _load_kustomization(root / "base", local_only=False)
    if flavor == "kind":
        objects += _load_kustomization(root / "overlays" / "kind", local_only=True)
    label = run_label(run_id)
    for obj in objects:
        check_ours(obj)
        meta = obj["metadata"]
        if obj["kind"] == "ConfigMap" and meta["name"] == WORKER_CONFIGMAP:
            meta["labels"][RUN_LABEL] = label
            obj["data"].update({"TTG_BACKEND": backend, "TTG_RUN_ID": run_id,
                                "TTG_LEASE_S": str(lease_s)})
        if obj["kind"] == "Deployment" and meta["name"] == WORKER_DEPLOYMENT:
            meta["labels"][RUN_LABEL] = label
            obj["spec"]["replicas"] = workers
            template = obj["spec"]["template"]
            template["metadata"]["labels"][RUN_LABEL] = label
            for container in template["spec"]["containers"]:
                if container["name"] == WORKER_CONTAINER:
                    container["image"] = image or (KIND_IMAGE if flavor == "kind"
                                                   else container["image"])
                    container["imagePullPolicy"] = "IfNotPresent"
    return objects


def check_ours(obj: dict[str, Any]) -> None:
    """Refuse anything that is not a TTG-labelled object in namespace ttg."""
    kind, meta = obj.get("kind"), obj.get("metadata") or {}
    name = meta.get("name")
    if kind not in KINDS:
        raise ClusterError(f"refusing to apply {kind} {name}: TTG applies only {', '.join(KINDS)}")
    if (meta.get("labels") or {}).get(PART_OF) != "ttg":
        raise ClusterError(f"refusing to apply {kind} {name}: not labelled {TTG_SELECTOR}")
    where = name if kind == "Namespace" else meta.get("namespace")
    if where != NAMESPACE:
        raise ClusterError(f"refusing to apply {kind} {name}: outside namespace {NAMESPACE}")


def is_worker_object(obj: dict[str, Any]) -> bool:
    return obj["metadata"]["labels"].get(COMPONENT) == "worker"


def broker_selector(backend: str) -> str:
    return f"{TTG_SELECTOR},app.kubernetes.io/name={BROKERS[backend]['app']}"


def worker_selector(run_id: str) -> str:
    return f"{WORKER_SELECTOR},{RUN_LABEL}={run_label(run_id)}"


# -- pod state -----------------------------------------------------------------------
def _timestamp(value: str | None) -> float:
    if not value:
        return time.time()
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_state(pod: dict[str, Any], killed: bool = False) -> str:
    """starting | running | dead | stopped, as WorkerInfo knows them."""
    if pod["metadata"].get("deletionTimestamp"):
        return "dead" if killed else "stopped"
    phase = (pod.get("status") or {}).get("phase", "Pending")
    if phase == "Succeeded":
        return "stopped"
    if phase == "Failed":
        return "dead"
    return "running" if phase == "Running" and pod_ready(pod) else "starting"


def pod_reason(pod: dict[str, Any]) -> str:
    """Why a pod is not ready, in the words `kubectl describe` would use."""
    if pod["metadata"].get("deletionTimestamp"):
        return "terminating"
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state:
            w = state["waiting"] or {}
            more = f" ({w['message']})" if w.get("message") else ""
            return f"{phase}, container {cs.get('name')} waiting: {w.get('reason', '?')}{more}"
        if "terminated" in state:
            t = state["terminated"] or {}
            return (f"{phase}, container {cs.get('name')} terminated: {t.get('reason', '?')} "
                    f"(exit code {t.get('exitCode')})")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"{phase}, not scheduled: {cond.get('reason')}: {cond.get('message', '')}"
    if phase == "Running":
        return "Running, not ready (readiness probe failing)"
    return phase


def _restarts(pod: dict[str, Any]) -> int:
    return sum(cs.get("restartCount", 0)
               for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def _with_host(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{port}"))


# -- API access ----------------------------------------------------------------------
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


# -- the provider --------------------------------------------------------------------
class KubernetesCluster(Cluster):
    """Workers as pods of the ``ttg-worker`` Deployment in namespace ``ttg``."""

    kind = "kubernetes"

    def __init__(self, *, flavor: str = "kind", backend: str = "redis", run_id: str,
                 workers: int = 3, lease_s: float = 2.0, context: str | None = None,
                 image: str | None = None, api_client: Any = None,
                 k8s_dir: Path | None = None, poll_s: float = 1.0,
                 watch_timeout_s: int = 30, check_host_ports: bool = True,
                 request_timeout: float = 30.0):
        super().__init__()
        if flavor not in ("kind", "k8s"):
            raise ClusterError(f"unknown Kubernetes flavour {flavor!r}: kind or k8s")
        self.kind = flavor
        self.flavor = flavor
        self.backend = backend
        self.run_id = run_id
        self.workers_wanted = workers
        self.lease_s = lease_s
        self.context = context or (KIND_CONTEXT if flavor == "kind" else None)
        self.image = image
        self.k8s_dir = k8s_dir
        self.poll_s = poll_s
        self.watch_timeout_s = watch_timeout_s
        self.check_host_ports = check_host_ports
        self.request_timeout = request_timeout
        self.worker_selector = worker_selector(run_id)
        self._api_client = api_client
        self._api: Api | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._stopped = False
        self._watcher: threading.Thread | None = None
        self._synced = False  # the watch cache holds every pod of the run
        self._cache: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, WorkerInfo] = {}
        self._seen: set[str] = set()
        self._killed: set[str] = set()
        self._pending_replacement: list[str] = []
        self._replaces: dict[str, str] = {}
        self._restart_counts: dict[str, int] = {}
        self._stop_recorded: set[str] = set()
        self._workers_applied = False
        self._forwards: dict[str, PortForwarder] = {}

    @classmethod
    def for_run(cls, config: RunConfig, **kwargs: Any) -> KubernetesCluster:
        return cls(flavor=config.cluster, backend=config.backend, run_id=config.run_id,
                   workers=config.workers, lease_s=config.lease_s,
                   context=config.kube_context or None,
                   image=(config.extra or {}).get("image"), **kwargs)

    @property
    def api(self) -> Api:
        if self._api is None:
            if self._api_client is None:
                self._api_client = make_api_client(self.context, flavor=self.flavor)
            self._api = Api(self._api_client, self.request_timeout)
        return self._api

    # -- objects -------------------------------------------------------------------
    def objects(self, workers: int | None = None) -> list[dict[str, Any]]:
        return render_objects(flavor=self.flavor, backend=self.backend, run_id=self.run_id,
                              workers=self.workers_wanted if workers is None else workers,
                              lease_s=self.lease_s, image=self.image, k8s_dir=self.k8s_dir)

    def apply(self, objects: list[dict[str, Any]]) -> list[str]:
        """Create each object, or patch it when it exists and is TTG's; returns what was done."""
        done = []
        for obj in objects:
            done.append(self._apply_one(obj))
        return done

    def _apply_one(self, obj: dict[str, Any]) -> str:
        from kubernetes.client.exceptions import ApiException

        check_ours(obj)
        kind, name = obj["kind"], obj["metadata"]["name"]
        create_only = KINDS[kind][3]
        create, namespaced = self.api.method("create", kind)
        args = (NAMESPACE,) if namespaced else ()
        label = f"{kind} {NAMESPACE + '/' if namespaced else ''}{name}"
        try:
            create(*args, obj, _preload_content=False, _request_timeout=self.request_timeout)
            return f"created {label}"
        except ApiException as exc:
            if exc.status != 409:
                raise api_error(f"create {label}", exc) from None
        except Exception as exc:
            raise ClusterError(f"cannot reach the Kubernetes API at {self.api.host} to create "
                               f"{label}: {exc}") from None
        read, _ = self.api.method("read", kind)
        existing = self.api.call(f"read {label}", read, name, *args) or {}
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(PART_OF) != "ttg":
            if create_only:
                return f"kept {label} (exists, not labelled {TTG_SELECTOR}; left untouched)"
            raise ClusterError(f"{label} exists but is not TTG's (no label {TTG_SELECTOR}); "
                               f"TTG will not modify it: rename or remove it yourself")
        if create_only:
            return f"kept {label} (exists)"
        patch, _ = self.api.method("patch", kind)
        self.api.call(f"patch {label}", patch, name, *args, obj, _content_type=STRATEGIC_MERGE)
        return f"patched {label}"

    # -- brokers -------------------------------------------------------------------
    def ensure_brokers(self, timeout: float = 300.0) -> str:
        """Apply namespace, credentials, brokers, Services and NetworkPolicies; wait until the
        run's broker is ready (and, on Kind, its NodePort answers); return its host URL."""
        self.apply([o for o in self.objects() if not is_worker_object(o)])
        self.wait_brokers(timeout)
        deadline = time.monotonic() + timeout
        url = self.broker_url_for(self.backend)
        if self.flavor == "kind" and self.check_host_ports:
            self._wait_host_port(BROKERS[self.backend]["node_port"], deadline)
        return url

    def wait_brokers(self, timeout: float, backends: tuple[str, ...] | None = None) -> None:
        wanted = [BROKERS[b] for b in (backends or (self.backend,))]
        deadline = time.monotonic() + timeout
        while True:
            laggards = []
            for broker in wanted:
                read, _ = self.api.method("read", broker["kind"])
                obj = self.api.call(f"read {broker['kind']} {broker['name']}", read,
                                    broker["name"], NAMESPACE, missing_ok=True)
                ready, want = _workload_ready(obj)
                if obj is None or ready < want:
                    laggards.append((broker, obj, ready, want))
            if not laggards:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        parts = []
        for broker, obj, ready, want in laggards:
            what = f"{broker['kind'].lower()} {NAMESPACE}/{broker['name']}"
            if obj is None:
                parts.append(f"{what} does not exist")
                continue
            pods = self.api.list("Pod", broker_selector(next(
                b for b, v in BROKERS.items() if v is broker)))
            detail = "; ".join(f"pod {p['metadata']['name']}: {pod_reason(p)}" for p in pods
                               if not pod_ready(p)) or "no pods yet"
            parts.append(f"{what} {ready}/{want} ready ({detail})")
        raise ClusterError(f"brokers not ready after {timeout:g}s: {', '.join(parts)}")

    def broker_url_for(self, backend: str | None = None) -> str:
        """The URL the host (the run's backend, a notebook, the monitor) uses for a broker."""
        backend = backend or self.backend
        broker = BROKERS[backend]
        url = self._secret_url(broker["secret_key"])
        if self.flavor == "kind":
            return _with_host(url, "127.0.0.1", broker["node_port"])
        forward = self._forwards.get(backend)
        if forward is None:
            pods = [p for p in self.api.list("Pod", broker_selector(backend)) if pod_ready(p)]
            if not pods:
                raise ClusterError(f"no ready {broker['app']} pod in namespace {NAMESPACE} "
                                   f"to port-forward to")
            forward = PortForwarder(self.api, pods[0]["metadata"]["name"], broker["port"])
            self._forwards[backend] = forward
        return _with_host(url, "127.0.0.1", forward.port)

    @property
    def broker_url(self) -> str:
        return self.broker_url_for(self.backend)

    def _secret_url(self, key: str) -> str:
        secret = self.api.call(f"read Secret {NAMESPACE}/{BROKER_SECRET}",
                               self.api.core.read_namespaced_secret, BROKER_SECRET, NAMESPACE,
                               missing_ok=True)
        if secret and key in (secret.get("data") or {}):
            return base64.b64decode(secret["data"][key]).decode()
        manifest = next(o for o in self.objects(0) if o["kind"] == "Secret")
        return manifest["stringData"][key]

    def _wait_host_port(self, port: int, deadline: float) -> None:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ClusterError(f"broker NodePort 127.0.0.1:{port} does not answer "
                                       f"({exc}): was the Kind cluster created from "
                                       f"kind/kind-config.yaml (extraPortMappings)?") from None
            time.sleep(self.poll_s)

    # -- workers -------------------------------------------------------------------
    def start_workers(self, count: int) -> list[WorkerInfo]:
        """Apply the worker ConfigMap and Deployment (replicas=count) and watch its pods."""
        self.workers_wanted = count
        self._stopping.clear()
        self._stopped = False
        self.apply([o for o in self.objects(count) if is_worker_object(o)])
        self._workers_applied = True
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch_pods, name="ttg-k8s-watch",
                                             daemon=True)
            self._watcher.start()
        return self.workers()

    def scale_workers(self, count: int) -> None:
        read, _ = self.api.method("read", "Deployment")
        existing = self.api.call(f"read Deployment {NAMESPACE}/{WORKER_DEPLOYMENT}", read,
                                 WORKER_DEPLOYMENT, NAMESPACE) or {}
        if ((existing.get("metadata") or {}).get("labels") or {}).get(PART_OF) != "ttg":
            raise ClusterError(f"deployment {NAMESPACE}/{WORKER_DEPLOYMENT} is not TTG's")
        self.api.call(f"scale Deployment {NAMESPACE}/{WORKER_DEPLOYMENT} to {count}",
                      self.api.groups["apps"].patch_namespaced_deployment_scale,
                      WORKER_DEPLOYMENT, NAMESPACE, {"spec": {"replicas": count}},
                      _content_type=MERGE_PATCH)
        self.workers_wanted = count

    def _list_worker_pods(self) -> list[dict[str, Any]]:
        return self.api.list("Pod", self.worker_selector)

    def _info(self, pod: dict[str, Any]) -> WorkerInfo:
        name = pod["metadata"]["name"]
        return WorkerInfo(name=name, ident=name, state=pod_state(pod, name in self._killed),
                          started_at=_timestamp(pod["metadata"].get("creationTimestamp")),
                          node=(pod.get("spec") or {}).get("nodeName") or "unscheduled",
                          replaces=self._replaces.get(name))

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            synced = self._synced and self._watcher is not None and self._watcher.is_alive()
            pods = list(self._cache.values()) if synced else None
        if pods is None:
            pods = self._list_worker_pods()
        with self._lock:
            live = {p["metadata"]["name"]: self._info(p) for p in pods}
            gone = [i for n, i in self._gone.items() if n not in live]
        return sorted(gone + list(live.values()), key=lambda w: (w.started_at, w.name))

    def live_workers(self) -> list[WorkerInfo]:
        return [w for w in self.workers() if w.state in ("starting", "running")]

    def worker_status(self) -> list[dict[str, Any]]:
        rows = []
        for info in self.workers():
            rows.append({**info.to_dict(), "pod": info.ident,
                         "activity": info.state, "chunks_done": None, "current_chunk": None,
                         "last_heartbeat": None, "chunk_started_at": None})
        return rows

    def wait_ready(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pods = self._list_worker_pods()
            ready = [p for p in pods if pod_state(p) == "running"]
            if len(ready) >= count:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        what = f"deployment {NAMESPACE}/{WORKER_DEPLOYMENT}"
        unready = [p for p in pods if pod_state(p) != "running"]
        if unready:
            detail = "; ".join(f"pod {p['metadata']['name']}: {pod_reason(p)}" for p in unready)
        else:
            detail = (f"no pods were created; see the Deployment's events "
                      f"(kubectl -n {NAMESPACE} describe deployment {WORKER_DEPLOYMENT})")
        hint = IMAGE_PULL_HINT if re.search(r"ImagePull|ErrImageNeverPull", detail) else ""
        raise ClusterError(f"workers not ready after {timeout:g}s: {what} has "
                           f"{len(ready)}/{count} ready pods: {detail}{hint}")

    def kill_worker(self, name: str | None = None) -> WorkerInfo:
        """Fault injection: delete one worker pod with grace period 0 (no SIGTERM grace);
        the Deployment's ReplicaSet starts a replacement, recorded as ``replaced``."""
        pods = [p for p in self._list_worker_pods()
                if pod_state(p) in ("running", "starting")
                and (name is None or p["metadata"]["name"] == name)]
        if not pods:
            raise ClusterError(f"no live worker pod named {name!r}" if name else
                               "no live worker pod to kill")
        running = [p for p in pods if pod_state(p) == "running"] or pods
        victim = pods[0] if name else min(
            running, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                    p["metadata"]["name"]))
        victim_name = victim["metadata"]["name"]
        from kubernetes import client

        # The lock keeps the watcher from recording the replacement before the kill.
        with self._lock:
            self._killed.add(victim_name)
            self._pending_replacement.append(victim_name)
            try:
                self.api.delete_collection(
                    "Pod", self.worker_selector, field_selector=f"metadata.name={victim_name}",
                    grace_period_seconds=0,
                    body=client.V1DeleteOptions(grace_period_seconds=0,
                                                propagation_policy="Background"))
            except ClusterError:
                self._killed.discard(victim_name)
                self._pending_replacement.remove(victim_name)
                raise
            info = self._info(victim)
            info.state, info.ended_at = "dead", time.time()
            self._gone[victim_name] = info
            self._cache.pop(victim_name, None)
            self.book.add("killed", victim_name,
                          f"pod deleted with grace period 0 on node {info.node}")
        return info

    def stream_logs(self, name: str, *, follow: bool = False,
                    tail_lines: int | None = None) -> Iterator[str]:
        """Lines of one worker pod's log (follow=True streams until the pod ends)."""
        pods = self.api.list("Pod", WORKER_SELECTOR, field_selector=f"metadata.name={name}")
        if not pods:
            raise ClusterError(f"no TTG worker pod named {name!r} in namespace {NAMESPACE}")
        kwargs: dict[str, Any] = {"container": WORKER_CONTAINER, "follow": follow,
                                  "_preload_content": False,
                                  "_request_timeout": None if follow else self.request_timeout}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self.api.core.read_namespaced_pod_log(name, NAMESPACE, **kwargs)
        except ApiException as exc:
            raise api_error(f"read the log of pod {name}", exc) from None
        buffer = b""
        for chunk in resp.stream(4096):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if buffer:
            yield buffer.decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Scale the worker Deployment to 0 (TTG's Deployment only) and wait for its pods."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        try:
            if self._workers_applied:
                self.scale_workers(0)
                deadline = time.monotonic() + timeout
                pods = self._list_worker_pods()
                while pods and time.monotonic() < deadline:
                    time.sleep(self.poll_s)
                    pods = self._list_worker_pods()
        except ClusterError as exc:
            self.book.add("stop-failed", WORKER_DEPLOYMENT, str(exc))
        with self._lock:
            for name, pod in list(self._cache.items()):
                if name not in self._killed and name not in self._stop_recorded:
                    self._stop_recorded.add(name)
                    info = self._info(pod)
                    info.state, info.ended_at = "stopped", time.time()
                    self._gone[name] = info
                    self.book.add("stopped", name, "deployment scaled to 0")
            self._cache.clear()
            self._synced = False
        if self._watcher is not None:
            self._watcher.join(2)
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()

    # -- watching ------------------------------------------------------------------
    def _watch_pods(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    listing = self.api.call(
                        f"list Pod ({self.worker_selector})", self.api.core.list_namespaced_pod,
                        NAMESPACE, label_selector=self.worker_selector) or {}
                    for pod in listing.get("items") or []:
                        self._on_pod("ADDED", pod)
                    version = (listing.get("metadata") or {}).get("resourceVersion")
                    with self._lock:
                        self._synced = True
                w = watch.Watch()
                for event in w.stream(self.api.core.list_namespaced_pod, NAMESPACE,
                                      label_selector=self.worker_selector,
                                      resource_version=version,
                                      timeout_seconds=self.watch_timeout_s,
                                      _request_timeout=self.watch_timeout_s + 10):
                    if self._stopping.is_set():
                        w.stop()
                        break
                    raw = event.get("raw_object") or {}
                    if event.get("type") == "ERROR":
                        version = None  # e.g. 410 Gone: list again
                        break
                    version = (raw.get("metadata") or {}).get("resourceVersion") or version
                    self._on_pod(event["type"], raw)
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                else:
                    self._stopping.wait(self.poll_s)
            except Exception:  # connection dropped: resume from the last version
                with self._lock:
                    self._synced = False
                version = None
                self._stopping.wait(self.poll_s)

    def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        node = (pod.get("spec") or {}).get("nodeName")
        where = f"on node {node}" if node else "not scheduled yet"
        with self._lock:
            if etype == "DELETED":
                self._cache.pop(name, None)
                if name in self._killed or name in self._gone:
                    return
                info = self._info(pod)
                info.ended_at = time.time()
                if self._stopping.is_set():
                    info.state = "stopped"
                    self._stop_recorded.add(name)
                    self.book.add("stopped", name, "pod deleted after scale to 0")
                else:
                    info.state = "dead"
                    self._pending_replacement.append(name)
                    self.book.add("died", name, "pod deleted (not by TTG)")
                self._gone[name] = info
                return
            if name in self._killed:
                return
            self._cache[name] = pod
            if name not in self._seen:
                self._seen.add(name)
                if self._stopping.is_set():
                    return
                if self._pending_replacement:
                    victim = self._pending_replacement.pop(0)
                    self._replaces[name] = victim
                    self.book.add("replaced", name, f"replaces {victim}, {where}")
                else:
                    self.book.add("started", name, f"pod {where}")
            restarts = _restarts(pod)
            if restarts > self._restart_counts.get(name, 0):
                self.book.add("died", name, f"container restarted in place (restart "
                                            f"#{restarts}: liveness probe or crash)")
            self._restart_counts[name] = restarts

    # -- health (notebooks) --------------------------------------------------------
    def nodes(self) -> list[dict[str, Any]]:
        listing = self.api.call("list Node", self.api.core.list_node) or {}
        rows = []
        for node in listing.get("items") or []:
            labels = node["metadata"].get("labels") or {}
            roles = [k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes")]
            conditions = (node.get("status") or {}).get("conditions") or []
            rows.append({"node": node["metadata"]["name"],
                         "roles": ",".join(roles) or "worker",
                         "ready": any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in conditions),
                         "kubelet": ((node.get("status") or {}).get("nodeInfo") or {})
                         .get("kubeletVersion")})
        return rows

    def pods(self) -> list[dict[str, Any]]:
        rows = []
        for pod in self.api.list("Pod", TTG_SELECTOR):
            labels = pod["metadata"].get("labels") or {}
            rows.append({"pod": pod["metadata"]["name"],
                         "component": labels.get(COMPONENT),
                         "run_id": labels.get(RUN_LABEL),
                         "node": (pod.get("spec") or {}).get("nodeName"),
                         "phase": (pod.get("status") or {}).get("phase"),
                         "ready": pod_ready(pod), "restarts": _restarts(pod),
                         "reason": "" if pod_ready(pod) else pod_reason(pod)})
        return rows

    def health(self) -> dict[str, list[dict[str, Any]]]:
        return {"nodes": self.nodes(), "pods": self.pods()}


def _workload_ready(obj: dict[str, Any] | None) -> tuple[int, int]:
    if obj is None:
        return 0, 1
    want = (obj.get("spec") or {}).get("replicas", 1)
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < (obj.get("metadata") or {}).get("generation", 0):
        return 0, want
    return status.get("readyReplicas") or 0, want


# -- port-forward (clusters other than Kind) -------------------------------------------
class PortForwarder:
    """127.0.0.1:<port> on the host relayed to a pod port through the API server's
    portforward subresource (the client's websocket support), one stream per connection."""

    def __init__(self, api: Api, pod: str, remote_port: int):
        self.api, self.pod, self.remote_port = api, pod, remote_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"ttg-forward-{pod}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        from kubernetes.stream import portforward

        try:
            forward = portforward(self.api.core.connect_get_namespaced_pod_portforward,
                                  self.pod, NAMESPACE, ports=str(self.remote_port))
            remote = forward.socket(self.remote_port)
            remote.setblocking(True)
            sel = selectors.DefaultSelector()
            sel.register(conn, selectors.EVENT_READ, remote)
            sel.register(remote, selectors.EVENT_READ, conn)
            while not self._closed.is_set():
                for key, _ in sel.select(1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except Exception:
            return  # the client sees its connection close and reconnects
        finally:
            conn.close()

    def close(self) -> None:
        self._closed.set()
        self._server.close()


# -- dry run ---------------------------------------------------------------------------
def dry_run_plan(config: RunConfig) -> list[dict[str, Any]]:
    """Every API operation `ttg run --cluster kind|k8s` makes, in order; nothing is sent."""
    flavor = config.cluster if config.cluster in ("kind", "k8s") else "kind"
    objects = render_objects(flavor=flavor, backend=config.backend, run_id=config.run_id,
                             workers=config.workers, lease_s=config.lease_s,
                             image=(config.extra or {}).get("image"))
    broker = BROKERS[config.backend]
    wsel = worker_selector(config.run_id)
    ops: list[dict[str, Any]] = []

    def op(step: str, verb: str, kind: str, name: str, labels: dict[str, str],
           selector: str = "", detail: str = "", namespace: str = NAMESPACE) -> None:
        ops.append({"step": step, "verb": verb, "kind": kind, "name": name,
                    "namespace": namespace, "labels": dict(labels), "selector": selector,
                    "detail": detail})

    for phase, chosen in (("brokers", [o for o in objects if not is_worker_object(o)]),
                          ("workers", [o for o in objects if is_worker_object(o)])):
        if phase == "workers":
            op("brokers", "get", broker["kind"], broker["name"], {},
               detail="poll status until ready")
            op("brokers", "list", "Pod", "*", selector_labels(broker_selector(config.backend)),
               broker_selector(config.backend), "only to name unready pods on timeout")
            op("brokers", "get", "Secret", BROKER_SECRET, {}, detail="broker URL for the host")
            if flavor == "kind":
                op("brokers", "connect", "Service", f"{broker['app']} NodePort", {},
                   detail=f"host 127.0.0.1:{broker['node_port']}")
            else:
                op("brokers", "list", "Pod", "*",
                   selector_labels(broker_selector(config.backend)),
                   broker_selector(config.backend), "pick the pod to port-forward to")
                op("brokers", "create", "Pod/portforward", f"{broker['name']} pod", {},
                   detail=f"port {broker['port']} -> 127.0.0.1:<free port>")
        for obj in chosen:
            kind, meta = obj["kind"], obj["metadata"]
            verb = "create-if-absent" if KINDS[kind][3] else "create-or-patch"
            detail = ""
            if kind == "Deployment" and meta["name"] == WORKER_DEPLOYMENT:
                image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
                detail = f"replicas={config.workers}, image {image}"
            elif kind == "ConfigMap" and meta["name"] == WORKER_CONFIGMAP:
                detail = f"TTG_BACKEND={config.backend}, TTG_RUN_ID={config.run_id}"
            op(phase, verb, kind, meta["name"], meta.get("labels") or {}, detail=detail,
               namespace="" if kind == "Namespace" else meta.get("namespace", NAMESPACE))
    op("workers", "list", "Pod", "*", selector_labels(wsel), wsel, "wait until ready")
    op("workers", "watch", "Pod", "*", selector_labels(wsel), wsel,
       "record started/replaced/died events")
    if config.fault_demo:
        op("fault", "deletecollection", "Pod", "<one worker pod>", selector_labels(wsel), wsel,
           f"at {config.kill_at:.0%}: fieldSelector metadata.name=<pod>, "
           f"gracePeriodSeconds=0")
    op("stop", "get", "Deployment", WORKER_DEPLOYMENT, {}, detail="check it is TTG's")
    op("stop", "patch", "Deployment/scale", WORKER_DEPLOYMENT, {}, detail="replicas=0")
    op("stop", "list", "Pod", "*", selector_labels(wsel), wsel, "until the pods are gone")
    return ops


def format_plan(plan: list[dict[str, Any]], config: RunConfig | None = None) -> str:
    lines = []
    if config is not None:
        context = config.kube_context or (KIND_CONTEXT if config.cluster == "kind" else
                                          "(current context)")
        lines.append(f"TTG dry run: cluster {config.cluster} (context {context}), backend "
                     f"{config.backend}, {config.workers} workers, run {config.run_id}")
        lines.append("Nothing is sent to the cluster. Operations, in order:")
    for i, o in enumerate(plan, 1):
        where = f"{o['namespace']}/{o['name']}" if o["namespace"] else o["name"]
        lines.append(f"{i:3}. [{o['step']}] {o['verb']} {o['kind']} {where}")
        if o["selector"]:
            lines.append(f"       labelSelector: {o['selector']}")
        elif o["labels"]:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(o["labels"].items()))
            lines.append(f"       labels: {labels}")
        if o["detail"]:
            lines.append(f"       {o['detail']}")
    return "\n".join(lines)


# -- cleanup ---------------------------------------------------------------------------
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


def cleanup_kubernetes(*, run_id: str | None = None, dry_run: bool = False,
                       report: CleanupReport, context: str | None = None,
                       api_client: Any = None) -> None:
    """Delete TTG-labelled objects in namespace ttg (only a run's, given ``run_id``).

    Every list and delete carries ``app.kubernetes.io/part-of=ttg``. The namespace itself is
    kept: it may hold objects that are not TTG's, and listing those would need an unlabelled
    list. Errors are reported as skipped, never raised.
    """
    try:
        if api_client is None:
            context = resolve_context(context)
            api_client = make_api_client(context)
        api = Api(api_client)
    except ClusterError as exc:
        report.skipped.append(f"kubernetes: {exc}")
        return
    where = f"kubernetes[{context or 'current context'}]"
    selector = TTG_SELECTOR + (f",{RUN_LABEL}={run_label(run_id)}" if run_id else "")
    try:
        for kind in CLEANUP_KINDS:
            items = api.list(kind, selector)
            if not items:
                continue
            if not dry_run:
                api.delete_collection(kind, selector)
            report.removed.extend(f"{where} {kind} {NAMESPACE}/{o['metadata']['name']}"
                                  for o in items)
        if not run_id and api.list("Namespace", TTG_SELECTOR, field_selector=
                                   f"metadata.name={NAMESPACE}"):
            report.skipped.append(f"{where} Namespace {NAMESPACE}: kept (it may hold objects "
                                  f"that are not TTG's); `kind delete cluster --name ttg` "
                                  f"removes the whole Kind cluster")
    except ClusterError as exc:
        report.skipped.append(f"{where}: {exc}")
