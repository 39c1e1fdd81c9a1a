"""The provider: workers as pods of the ``ttg-worker`` Deployment (see the package docstring
for what is applied and the safety rules)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ...backends import DEFAULT_BACKEND
from ..base import Cluster, ClusterError, WorkerInfo, WorkerState, WorkerStatus
from .api import MERGE_PATCH, Api, api_error, create_or_patch, make_api_client
from .credentials import check_complete, decode, generate_secret
from .labels import (
    BROKER_SECRET,
    BROKERS,
    COMPONENT,
    KIND_CONTEXT,
    MANAGEMENT,
    NAMESPACE,
    PART_OF,
    RUN_LABEL,
    TTG_SELECTOR,
    WORKER_CONTAINER,
    WORKER_DEPLOYMENT,
    WORKER_SELECTOR,
    broker_selector,
    worker_selector,
)
from .manifests import is_worker_object, render_objects
from .pods import _restarts, _timestamp, _workload_ready, pod_ready, pod_reason, pod_state
from .portforward import PortForwarder

if TYPE_CHECKING:
    from ...config import RunConfig

IMAGE_PULL_HINT = ("; the image is missing on the nodes: build and load it "
                   "(python -m ttg_lib.cluster.kind up, scripts/kind-e2e.sh, or "
                   "notebooks/provision.ipynb with action='up')")


def _with_host(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{port}"))


class KubernetesCluster(Cluster):
    """Workers as pods of the ``ttg-worker`` Deployment in namespace ``ttg``."""

    kind = "kubernetes"

    def __init__(self, *, flavor: str = "kind", backend: str = DEFAULT_BACKEND, run_id: str,
                 workers: int = 3, lease_s: float = 2.0, context: str | None = None,
                 image: str | None = None, api_client: Any = None,
                 k8s_dir: Path | None = None, poll_s: float = 1.0,
                 watch_timeout_s: int = 30, check_host_ports: bool = True,
                 request_timeout: float = 30.0, host_ports: dict[str, int] | None = None,
                 liveness_s: float | None = None):
        """``host_ports``: where the host reaches each broker on Kind (default: the NodePorts
        kind/kind-config.yaml publishes on 127.0.0.1; tests point them at a stand-in).
        ``liveness_s``: the workers' liveness limit (TTG_LIVENESS_S; None: the manifest's)."""
        super().__init__()
        if flavor not in ("kind", "k8s"):
            raise ClusterError(f"unknown Kubernetes flavour {flavor!r}: kind or k8s")
        self.kind = flavor
        self.backend = backend
        self.run_id = run_id
        self.workers_wanted = workers
        self.lease_s = lease_s
        self.liveness_s = liveness_s
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
        self.host_ports = {b: v["node_port"] for b, v in BROKERS.items()}
        self.host_ports.update({f"{b}-management": v["node_port"]
                                for b, v in MANAGEMENT.items()})
        self.host_ports.update(host_ports or {})
        self._env_before: dict[str, str | None] = {}
        self._probe: Any = None  # a backend connection asking the broker who holds chunks

    @classmethod
    def for_run(cls, config: RunConfig, **kwargs: Any) -> KubernetesCluster:
        return cls(flavor=config.cluster, backend=config.backend, run_id=config.run_id,
                   workers=config.workers, lease_s=config.lease_s,
                   context=config.kube_context or None,
                   image=(config.extra or {}).get("image"),
                   liveness_s=config.liveness_s or None,  # the local cluster's limit too
                   **kwargs)

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
                              lease_s=self.lease_s, image=self.image, k8s_dir=self.k8s_dir,
                              liveness_s=self.liveness_s)

    def apply(self, objects: list[dict[str, Any]]) -> list[str]:
        """Create each object, or patch it when it exists and is TTG's; returns what was done."""
        done = []
        for obj in objects:
            done.append(self._apply_one(obj))
        return done

    def _apply_one(self, obj: dict[str, Any]) -> str:
        return create_or_patch(self.api, obj, self.request_timeout)

    # -- brokers -------------------------------------------------------------------
    @property
    def flavor(self) -> str:
        """kind or k8s: the same as the Cluster's ``kind``."""
        return self.kind

    def ensure_brokers(self, timeout: float = 300.0) -> str:
        """Apply namespace, credentials, brokers, Services and NetworkPolicies; wait until the
        run's broker is ready and answers from the host at the protocol level (a TCP connect
        proves nothing on Kind: Docker's proxy accepts it as soon as the node is up); point
        the management API at the cluster's; return the broker's host URL."""
        objects = [o for o in self.objects() if not is_worker_object(o)]
        self.apply([o for o in objects if o["kind"] == "Namespace"])
        self.ensure_secret()  # before the brokers: they read their credentials from it
        self.apply([o for o in objects if o["kind"] != "Namespace"])
        self.wait_brokers(timeout)
        deadline = time.monotonic() + timeout
        url = self.broker_url_for(self.backend)
        if self.check_host_ports:
            self._wait_broker_answers(url, deadline)
        self._point_management()
        return url

    def ensure_secret(self) -> str:
        """Create the credentials Secret with random passwords when absent; keep it otherwise
        (the brokers' stored users were made with it); refuse one that lacks keys."""
        secret = self._read_secret()
        if secret is None:
            return self._apply_one(generate_secret())
        check_complete(decode(secret))
        return f"kept Secret {NAMESPACE}/{BROKER_SECRET} (exists)"

    def _read_secret(self) -> dict[str, Any] | None:
        return self.api.call(f"read Secret {NAMESPACE}/{BROKER_SECRET}",
                             self.api.core.read_namespaced_secret, BROKER_SECRET, NAMESPACE,
                             missing_ok=True)

    def credentials(self) -> dict[str, str]:
        """The Secret's values (what `ttg kind credentials` shows); ClusterError if absent."""
        secret = self._read_secret()
        if secret is None:
            raise ClusterError(f"no Secret {NAMESPACE}/{BROKER_SECRET} yet: the first deploy "
                               f"(python -m ttg_lib.cluster.kind up, or a run) generates it")
        return decode(secret)

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
        url = self.credentials()[broker["secret_key"]]
        return _with_host(url, "127.0.0.1", self._host_port(backend, broker["port"]))

    def _host_port(self, key: str, pod_port: int) -> int:
        """The host port reaching a broker port: Kind's published NodePort, or a port-forward
        (``key`` is a backend, or ``<backend>-management``)."""
        if self.flavor == "kind":
            return self.host_ports[key]
        backend = key.split("-", 1)[0]
        forward = self._forwards.get(key)
        if forward is None:
            pods = [p for p in self.api.list("Pod", broker_selector(backend)) if pod_ready(p)]
            if not pods:
                raise ClusterError(f"no ready {BROKERS[backend]['app']} pod in namespace "
                                   f"{NAMESPACE} to port-forward to")
            forward = PortForwarder(self.api, pods[0]["metadata"]["name"], pod_port)
            self._forwards[key] = forward
        return forward.port

    def _point_management(self) -> None:
        """The backend reads its management API at <env>; on Kubernetes that is the cluster's
        broker (Kind: the published NodePort), not whatever answers on the host's default
        port. A value the user set is kept; ours is undone by release_brokers()."""
        management = MANAGEMENT.get(self.backend)
        if management is None or os.environ.get(management["env"]):
            return
        port = self._host_port(f"{self.backend}-management", management["port"])
        self._env_before[management["env"]] = os.environ.get(management["env"])
        os.environ[management["env"]] = f"http://127.0.0.1:{port}"

    def release_brokers(self) -> None:
        for name, value in self._env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._env_before.clear()
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    @property
    def broker_url(self) -> str:
        return self.broker_url_for(self.backend)

    def _wait_broker_answers(self, url: str, deadline: float) -> None:
        """Connect with the run's own backend (a Redis PING, an AMQP handshake) until it
        succeeds or the deadline passes."""
        from ...backends import BrokerUnavailable, open_inspector

        port = urlsplit(url).port
        while True:
            backend = open_inspector(self.backend, url, lease_s=self.lease_s)
            try:
                backend.connect()
                backend.close()
                return
            except BrokerUnavailable as exc:
                if time.monotonic() >= deadline:
                    where = ("was the Kind cluster created from kind/kind-config.yaml "
                             "(extraPortMappings)?" if self.flavor == "kind" else
                             "is the port-forward to the broker pod working?")
                    raise ClusterError(f"the {self.backend} broker does not answer on "
                                       f"127.0.0.1:{port} ({exc}): {where}") from None
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
        state = WorkerState(pod_state(pod, name in self._killed))
        return WorkerInfo(name=name, ident=name, state=state,
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

    def worker_status(self) -> list[WorkerStatus]:
        """Pods, with ``chunks_held`` from the broker (consumer name = pod name) where the
        backend reports it; pods write no heartbeat the host can read."""
        holding = self._chunks_held() or {}
        return [WorkerStatus.of(info, {"chunks_held": holding.get(info.name)})
                for info in self.workers()]

    def _chunks_held(self) -> dict[str, int] | None:
        """Unacked chunks per consumer, from the broker; None when the backend does not say
        (its workers() rows have no ``pending``) or cannot be reached."""
        from ...backends import BrokerUnavailable, ListsConsumers, open_inspector

        try:
            if self._probe is None:
                probe = open_inspector(self.backend, self.broker_url_for(self.backend),
                                       lease_s=self.lease_s)
                if not isinstance(probe, ListsConsumers):
                    return None  # this backend reports no consumers: no connection for it
                probe.connect()
                self._probe = probe
            rows = self._probe.consumers()
        except (BrokerUnavailable, ClusterError):
            if self._probe is not None:
                self._probe.close()
                self._probe = None
            return None
        return {c.name: c.pending for c in rows} if rows else None

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
        """Fault injection, a hard kill: delete one worker pod with grace period 0. The
        kubelet still sends SIGTERM (kubernetes#120449), and the worker ConfigMap's
        TTG_KILL_ON_SIGTERM=1 makes the worker end on it at once, mid-chunk, as SIGKILL does
        locally: its unacked chunks are redelivered. Without ``name`` the victim is a pod
        that holds a chunk, by the broker (consumer name = pod name; the most held, then the
        oldest), else the oldest running pod. The Deployment starts a replacement, recorded
        as ``replaced``."""
        pods = [p for p in self._list_worker_pods()
                if pod_state(p) in ("running", "starting")
                and (name is None or p["metadata"]["name"] == name)]
        if not pods:
            raise ClusterError(f"no live worker pod named {name!r}" if name else
                               "no live worker pod to kill")
        running = [p for p in pods if pod_state(p) == "running"] or pods
        held = (self._chunks_held() or {}) if name is None else {}
        victim = pods[0] if name else min(
            running, key=lambda p: (-held.get(p["metadata"]["name"], 0),
                                    p["metadata"].get("creationTimestamp") or "",
                                    p["metadata"]["name"]))
        victim_name = victim["metadata"]["name"]
        holds = held.get(victim_name)
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
            info.state, info.ended_at = WorkerState.DEAD, time.time()
            self._gone[victim_name] = info
            self._cache.pop(victim_name, None)
            what = f", holding {holds} chunk(s)" if holds else ""
            self.book.add("killed", victim_name,
                          f"pod deleted with grace period 0 on node {info.node}: the worker "
                          f"ends at the kubelet's SIGTERM (TTG_KILL_ON_SIGTERM){what}")
            self.note_exit(victim_name)  # the run frees its tasks (consumer = pod name)
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
                    info.state, info.ended_at = WorkerState.STOPPED, time.time()
                    self._gone[name] = info
                    self.book.add("stopped", name, "deployment scaled to 0")
            self._cache.clear()
            self._synced = False
        if self._watcher is not None:
            self._watcher.join(2)
        if self._probe is not None:
            self._probe.close()
            self._probe = None
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
                    version = self._relist()
                w = watch.Watch()
                for event in w.stream(self.api.core.list_namespaced_pod, NAMESPACE,
                                      label_selector=self.worker_selector,
                                      resource_version=version,
                                      allow_watch_bookmarks=True,
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
                    if event.get("type") != "BOOKMARK":  # a bookmark only moves the version
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

    def _relist(self) -> str | None:
        """List the run's pods and make the cache exactly that list: a pod deleted while the
        watch was away (410, dropped connection) gets its DELETED event here, once."""
        listing = self.api.call(
            f"list Pod ({self.worker_selector})", self.api.core.list_namespaced_pod,
            NAMESPACE, label_selector=self.worker_selector) or {}
        items = listing.get("items") or []
        listed = {p["metadata"]["name"] for p in items}
        with self._lock:
            missing = [pod for name, pod in self._cache.items() if name not in listed]
        for pod in missing:
            self._on_pod("DELETED", pod)
        for pod in items:
            self._on_pod("ADDED", pod)
        with self._lock:
            self._synced = True
        return (listing.get("metadata") or {}).get("resourceVersion")

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
                    info.state = WorkerState.STOPPED
                    self._stop_recorded.add(name)
                    self.book.add("stopped", name, "pod deleted after scale to 0")
                else:
                    info.state = WorkerState.DEAD
                    self._pending_replacement.append(name)
                    self.book.add("died", name, "pod deleted (not by TTG)")
                    self.note_exit(name)
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
