"""The provider: workers as pods of the ``ttg-worker`` Deployment (see the package docstring
for what is applied and the safety rules)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...backends import DEFAULT_BACKEND
from ..base import Cluster, ClusterError, WorkerInfo, WorkerState, WorkerStatus
from ..podsettings import image_of
from .api import (
    MERGE_PATCH,
    Api,
    api_error,
    create_or_patch,
    make_api_client,
    resolve_context,
)
from .brokerprobe import BrokerProbe
from .brokers import BrokerSide
from .inventory import Inventory
from .labels import (
    BROKERS,
    MANAGEMENT,
    NAMESPACE,
    PART_OF,
    WORKER_CONTAINER,
    WORKER_DEPLOYMENT,
    WORKER_SELECTOR,
    worker_selector,
)
from .manifests import is_worker_object, render_objects
from .pods import pod_reason, pod_state, timestamp
from .portforward import PortForwarder
from .preflight import run_preflight, task_compute
from .watch import PodWatch

if TYPE_CHECKING:
    from ...config import RunConfig

IMAGE_PULL_HINT = {
    "kind": ("; the image is missing on the nodes: build and load it (python -m "
             "ttg_lib.cluster.kind up, scripts/kind-e2e.sh, or notebooks/provision.ipynb with "
             "action='up'); an image of yours: python -m ttg_lib.cluster.kind up "
             "--requirements FILE, then --image with the tag it prints"),
    "k8s": ("; the nodes cannot pull the image: check the name, push it to a registry the "
            "cluster reaches (docker push), and for a private registry give the pods a pull "
            "secret: kubectl -n ttg patch serviceaccount default -p "
            "'{\"imagePullSecrets\": [{\"name\": \"<secret>\"}]}'"),
}


class KubernetesCluster(BrokerSide, PodWatch, Inventory, Cluster):
    """Workers as pods of the ``ttg-worker`` Deployment in namespace ``ttg``."""

    kind = "kubernetes"

    def __init__(self, *, flavor: str = "kind", backend: str = DEFAULT_BACKEND, run_id: str,
                 workers: int = 3, lease_s: float = 2.0, context: str | None = None,
                 image: str | None = None, api_client: Any = None,
                 k8s_dir: Path | None = None, poll_s: float = 1.0,
                 watch_timeout_s: int = 30, check_host_ports: bool = True,
                 request_timeout: float = 30.0, host_ports: dict[str, int] | None = None,
                 liveness_s: float | None = None, cpu: str = "", memory: str = "",
                 compute: str | None = None, compute_name: str = ""):
        """``host_ports``: where the host reaches each broker on Kind (default: the NodePorts
        kind/kind-config.yaml publishes on 127.0.0.1; tests point them at a stand-in).
        ``liveness_s``: the workers' liveness limit (TTG_LIVENESS_S; None: the manifest's).
        ``cpu``, ``memory``: each worker pod's request and limit ("": the manifest's).
        ``compute``: the run's function, loaded by one pod before any worker starts
        (:mod:`.preflight`); None skips that check."""
        super().__init__()
        if flavor not in ("kind", "k8s"):
            raise ClusterError(f"unknown Kubernetes flavour {flavor!r}: kind or k8s")
        self.kind = flavor
        self.backend = backend
        self.run_id = run_id
        self.workers_wanted = workers
        self.lease_s = lease_s
        self.liveness_s = liveness_s
        self.context = resolve_context(context, flavor)
        self.image = image
        self.cpu, self.memory, self.compute = cpu, memory, compute
        self.compute_name = compute_name  # as the user named it (compute: maybe a fingerprint)
        self.preflight_timeout_s = 180.0  # image pulls and scheduling, as for the workers
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
        self._probe = BrokerProbe(backend, lease_s, poll_s, flavor)

    @classmethod
    def for_run(cls, config: RunConfig, **kwargs: Any) -> KubernetesCluster:
        return cls(flavor=config.cluster, backend=config.backend, run_id=config.run_id,
                   workers=config.workers, lease_s=config.lease_s,
                   context=config.kube_context or None, image=image_of(config) or None,
                   cpu=config.worker_cpu, memory=config.worker_memory,
                   compute=task_compute(config), compute_name=config.compute,
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
                              liveness_s=self.liveness_s, cpu=self.cpu, memory=self.memory)

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

    # -- workers -------------------------------------------------------------------
    def start_workers(self, count: int) -> list[WorkerInfo]:
        """Apply the worker ConfigMap; check in one pod that the image loads the run's
        function (:mod:`.preflight`; a ClusterError with the pod's error if not); apply the
        Deployment (replicas=count) and watch its pods."""
        self.workers_wanted = count
        self._stopping.clear()
        self._stopped = False
        objects = self.objects(count)
        workers = [o for o in objects if is_worker_object(o)]
        self.apply([o for o in workers if o["kind"] == "ConfigMap"])
        if self.compute:
            answer = run_preflight(self.api, objects, self.compute, self.run_id,
                                   timeout=self.preflight_timeout_s, poll_s=self.poll_s,
                                   name_for_people=self.compute_name)
            self.book.add("checked", "preflight", f"the worker image loads {self.compute} "
                                                  f"(Python {answer.get('python')})")
        self.apply([o for o in workers if o["kind"] != "ConfigMap"])
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
                          started_at=timestamp(pod["metadata"].get("creationTimestamp")),
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
        return self._probe.chunks_held(lambda: self.broker_url_for(self.backend))

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
        hint = (IMAGE_PULL_HINT[self.flavor]
                if re.search(r"ImagePull|ErrImageNeverPull", detail) else "")
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
        self._probe.close()
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()
