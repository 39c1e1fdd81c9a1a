"""A small in-memory Kubernetes API server on 127.0.0.1 for provider tests.

The REAL ``kubernetes`` Python client talks to it over HTTP (``Configuration.host``), so the
tests see exactly the requests TTG's provider sends: method, path, query (label and field
selectors, grace periods) and body. It models the parts of an API server, its controllers and
a kubelet whose behaviour TTG depends on:

* graceful deletion: a pod delete sets ``deletionTimestamp`` (Terminating), the containers get
  SIGTERM and keep running until they exit or the grace period ends (then SIGKILL); a delete
  with grace period 0 removes the object at once but the kubelet still sends SIGTERM and waits
  the pod's ``terminationGracePeriodSeconds`` (kubernetes#120449);
* watches: events after ``resourceVersion``, kept open until ``timeoutSeconds``, BOOKMARK
  events when asked, ERROR 410 for a compacted version (:meth:`FakeKube.expire_watches`);
* patches by content type: JSON merge, strategic merge (lists merged by their merge key,
  dropped entries stay) and server-side apply (fields the manager stopped applying go);
* a status subresource (writes to the main resource keep ``status``; generation moves with
  ``spec`` only), immutable selectors (422), names checked (422), 404, 409, and 403 from RBAC
  rules when :attr:`FakeKube.rbac` is set (the rules of k8s/rbac);
* pods: Pending/Unschedulable, ContainerCreating, ErrImagePull/ImagePullBackOff, Running but
  not Ready, Ready, CrashLoopBackOff with restarts;
* containers are PID 1: every container process runs as the init of a PID namespace of its
  own (``unshare --pid --fork``; :data:`PID1` is False only where that is not allowed), gets
  SIGTERM alone (the runtime signals PID 1), and SIGKILL with its whole namespace; a
  ``tini --`` prefix is dropped, so the worker itself is PID 1 (the harder case: an image or a
  command without an init);
* with ``run_containers=True`` a kubelet that runs the containers it can as local processes:
  the TTG worker image as ``python -m ttg_lib.worker`` and the Redis image as ``redis-server``
  with their env (ConfigMap, Secret, fieldRef, ``$(VAR)`` expansion), the probes of
  ``ttg_lib.health`` and ``redis-cli``, and NodePorts relayed like Docker's proxy (it accepts a
  connection even when no pod is behind it, then closes it).

Where it differs from a real API server, tests/test_kubernetes_provider.py says so in one line.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

GROUPS = {"api/v1": "", "apis/apps/v1": "apps", "apis/networking.k8s.io/v1": "networking.k8s.io"}
KINDS = {
    "namespaces": "Namespace", "secrets": "Secret", "configmaps": "ConfigMap",
    "services": "Service", "persistentvolumeclaims": "PersistentVolumeClaim", "pods": "Pod",
    "deployments": "Deployment", "statefulsets": "StatefulSet",
    "networkpolicies": "NetworkPolicy", "nodes": "Node",
}
CLUSTER_SCOPED = ("namespaces", "nodes")
ROUTE = re.compile(r"^/(?P<prefix>api/v1|apis/[^/]+/v1)"
                   r"(?:/namespaces/(?P<ns>[^/]+))?"
                   r"(?:/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?)?$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Strategic-merge keys of the lists TTG's objects use (from the Kubernetes API types).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
              "volumes": "name", "volumeMounts": "mountPath", "ports": None,
              "imagePullSecrets": "name"}
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str = ""

    @property
    def plural(self) -> str:
        m = ROUTE.match(self.path)
        if not m:
            return ""
        if m["plural"] is None and m["ns"] is not None:
            return "namespaces"
        return m["plural"] or ""

    @property
    def is_collection(self) -> bool:
        m = ROUTE.match(self.path)
        return bool(m and m["plural"] and m["name"] is None)


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def match_fields(obj: dict[str, Any], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        key, value = term.split("=", 1)
        node: Any = obj
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node) != value:
            return False
    return True


def merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: lists are replaced."""
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def _item_key(list_name: str, item: Any) -> Any:
    if not isinstance(item, dict):
        return None
    key = MERGE_KEYS.get(list_name, "")
    if key is None:  # ports: containerPort (pods) or port (services)
        return item.get("containerPort", item.get("port"))
    return item.get(key) if key else None


def strategic_merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Strategic merge patch: like a merge patch, but lists with a merge key are merged item
    by item, so an entry the patch does not mention stays."""
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            strategic_merge(into[key], value)
        elif (isinstance(value, list) and isinstance(into.get(key), list) and key in MERGE_KEYS
              and all(_item_key(key, i) is not None for i in value + into[key])):
            merged = {_item_key(key, i): i for i in into[key]}
            for item in value:
                k = _item_key(key, item)
                merged[k] = strategic_merge(merged[k], item) if k in merged else copy.deepcopy(
                    item)
            into[key] = list(merged.values())
        else:
            into[key] = copy.deepcopy(value)
    return into


def prune(obj: Any, old: Any, new: Any, list_name: str = "") -> None:
    """Server-side apply: remove from ``obj`` what the manager applied before (``old``) and
    no longer applies (``new``)."""
    if isinstance(old, dict) and isinstance(obj, dict):
        for key, value in old.items():
            if not isinstance(new, dict) or key not in new:
                obj.pop(key, None)
            elif key in obj:
                prune(obj[key], value, new[key], key)
    elif isinstance(old, list) and isinstance(obj, list) and isinstance(new, list):
        keys_new = {_item_key(list_name, i) for i in new}
        for item in old:
            k = _item_key(list_name, item)
            if k is None:
                continue
            for target in [o for o in obj if _item_key(list_name, o) == k]:
                if k not in keys_new:
                    obj.remove(target)
                else:
                    prune(target, item, next(n for n in new if _item_key(list_name, n) == k),
                          list_name)


@dataclass
class Container:
    """One running container: a local process (or none, for images the stand-in cannot run)."""

    name: str
    proc: subprocess.Popen | None = None
    port: int | None = None  # the local port of its first containerPort (real processes)
    env: dict[str, str] = field(default_factory=dict)
    tmp: str = ""
    started: float = field(default_factory=time.monotonic)
    crash_at: float | None = None  # virtual containers: exit at this time
    pod: str = ""
    sigterm_at: float = 0.0


@dataclass
class FakeKube:
    """State of the fake API server; ``pods_ready=False`` leaves new pods Pending."""

    pods_ready: bool = True
    nodes: tuple[str, ...] = ("ttg-control-plane", "ttg-worker", "ttg-worker2", "ttg-worker3")
    run_containers: bool = False
    grace_scale: float = 0.05  # seconds of stand-in time per second of grace period
    images: set[str] | None = None  # images present on the nodes (None: every image)
    rbac: list[dict[str, Any]] | None = None  # rules (Role + ClusterRole) to enforce
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    pod_events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    applied: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    rv: int = 100
    compacted: int = 0  # watches from a version at or below this get 410 Gone
    watch_errors: int = 0  # the next this many watch requests get HTTP 500 (not 410)
    serial: int = 0
    readiness: bool = True  # virtual containers pass their readiness probe
    denied: list[str] = field(default_factory=list)  # requests answered 403
    granted: set[tuple[str, str]] = field(default_factory=set)  # (resource, verb) RBAC let by
    lock: threading.Condition = field(default_factory=threading.Condition)

    # -- server ------------------------------------------------------------
    def start(self) -> str:
        fake = self
        self.containers: dict[str, list[Container]] = {}
        self.terminating: dict[str, float] = {}  # pod name -> SIGKILL deadline
        self.orphans: list[tuple[Container, float]] = []  # force-deleted, still running
        self.terminations: list[dict[str, Any]] = []  # how force-deleted containers ended
        self.node_ports: dict[int, int] = {}
        self._relays: list[socket.socket] = []
        self._watch_epoch = 0
        self._stopped = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                ctype = self.headers.get("Content-Type", "")
                body = None
                if raw:
                    body = yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw)
                req = Request(self.command, parts.path, query, body, ctype)
                with fake.lock:
                    fake.requests.append(req)
                denied = fake.forbidden(req)
                if denied:
                    status, payload = fake._status(403, "Forbidden", denied)
                elif self.command == "GET" and query.get("watch") in ("true", "True", "1"):
                    with fake.lock:
                        failing = fake.watch_errors > 0
                        fake.watch_errors -= failing
                    if not failing:
                        self._watch(req)
                        return
                    status, payload = fake._status(500, "InternalError",
                                                   "etcdserver: request timed out")
                else:
                    status, payload = fake.dispatch(req)
                data = (payload if isinstance(payload, bytes) else
                        json.dumps(payload).encode())
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, event: dict[str, Any]) -> None:
                self.wfile.write(json.dumps(event).encode() + b"\n")
                self.wfile.flush()

            def _watch(self, req: Request) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                q = req.query
                timeout = min(float(q.get("timeoutSeconds") or 5), 5.0)
                deadline = time.monotonic() + timeout
                with fake.lock:
                    epoch = fake._watch_epoch
                    if q.get("resourceVersion"):
                        since = int(q["resourceVersion"])
                        if since < fake.compacted:
                            self._send({"type": "ERROR", "object": {
                                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "Expired", "code": 410,
                                "message": f"too old resource version: {since} "
                                           f"({fake.compacted})"}})
                            return
                        pending = []
                    else:  # no version: the current state as ADDED, then changes
                        since = fake.rv
                        pending = [("ADDED", copy.deepcopy(o)) for (p, s, _), o in
                                   sorted(fake.objects.items()) if p == "pods"]
                while True:
                    with fake.lock:
                        pending += [(t, o) for rv, t, o in fake.pod_events if rv > since]
                        since = fake.rv
                        if fake._watch_epoch != epoch or fake._stopped.is_set():
                            return  # connection dropped
                    for etype, obj in pending:
                        if match_labels(obj["metadata"].get("labels", {}),
                                        q.get("labelSelector")):
                            self._send({"type": etype, "object": obj})
                    pending = []
                    if time.monotonic() >= deadline:
                        if q.get("allowWatchBookmarks") in ("true", "True"):
                            self._send({"type": "BOOKMARK", "object": {
                                "kind": "Pod", "apiVersion": "v1",
                                "metadata": {"resourceVersion": str(since)}}})
                        return
                    with fake.lock:
                        fake.lock.wait(0.05)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle  # noqa: N815

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up at exit are not test failures

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.kubelet = threading.Thread(target=self._kubelet_loop, daemon=True)
        self.kubelet.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self._stopped.set()
        with self.lock:
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.kubelet.join(2)
        for sock in self._relays:
            sock.close()
        with self.lock:
            running = [c for cs in self.containers.values() for c in cs]
            running += [c for c, _ in self.orphans]
        for c in running:
            self._signal(c, signal.SIGKILL)
            if c.tmp:
                shutil.rmtree(c.tmp, ignore_errors=True)

    # -- helpers for tests -------------------------------------------------
    def put(self, obj: dict[str, Any]) -> None:
        """Seed an object directly (e.g. a bystander that must survive)."""
        with self.lock:
            plural = next(p for p, k in KINDS.items() if k == obj["kind"])
            ns = obj["metadata"].get("namespace", "")
            self._store(plural, ns, obj)

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get((plural, ns, name))

    def names(self, plural: str, ns: str) -> list[str]:
        with self.lock:
            return sorted(n for (p, s, n) in self.objects if p == plural and s == ns)

    def calls(self, method: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]

    def expire_watches(self) -> None:
        """Drop every open watch and compact the event history: a watch resumed from an
        earlier version gets 410 Gone, as after etcd compaction."""
        with self.lock:
            self._watch_epoch += 1
            self.compacted = self.rv + 1
            self.pod_events.clear()
            self.lock.notify_all()

    def delete_pod_behind_the_watch(self, name: str, ns: str = "ttg") -> None:
        """Remove a pod without a watch event (it happened while the watch was away)."""
        with self.lock:
            self.objects.pop(("pods", ns, name))
            for c in self.containers.pop(name, []):
                self._signal(c, signal.SIGKILL)
            self._next_rv()

    def crash(self, pod_name: str) -> None:
        """Make a virtual container exit (a crash): the kubelet restarts it in place."""
        with self.lock:
            for c in self.containers.get(pod_name, []):
                c.crash_at = time.monotonic()

    def load_rbac(self, folder: Path) -> None:
        """Enforce the rules of the Role and ClusterRole in ``folder`` (k8s/rbac)."""
        rules: list[dict[str, Any]] = []
        for path in sorted(folder.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") in ("Role", "ClusterRole"):
                    rules += [{**r, "cluster": doc["kind"] == "ClusterRole"}
                              for r in doc["rules"]]
        self.rbac = rules

    # -- API ---------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _event(self, etype: str, obj: dict[str, Any]) -> None:
        self.pod_events.append((self.rv, etype, copy.deepcopy(obj)))
        self.lock.notify_all()

    def _store(self, plural: str, ns: str, obj: dict[str, Any], event: str = "ADDED") -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{self._next_rv()}")
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next_rv()
        self.objects[(plural, ns, meta["name"])] = obj
        if plural == "pods":
            self._event(event, obj)

    def _remove_pod(self, ns: str, name: str) -> None:
        obj = self.objects.pop(("pods", ns, name), None)
        self.terminating.pop(name, None)
        if obj is not None:
            self._next_rv()
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._event("DELETED", obj)

    def _delete(self, plural: str, ns: str, name: str, grace: int | None) -> dict[str, Any]:
        """Non-pods go at once (no finalizers modelled); pods terminate gracefully."""
        obj = self.objects[(plural, ns, name)]
        if plural != "pods":
            self.objects.pop((plural, ns, name))
            self.applied.pop((plural, ns, name), None)
            return obj
        spec_grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
        if grace == 0:  # force: the object goes now, the kubelet still terminates gracefully
            for c in self.containers.pop(name, []):
                self._signal(c, signal.SIGTERM)
                c.pod, c.sigterm_at = name, time.monotonic()
                self.orphans.append((c, time.monotonic() + spec_grace * self.grace_scale))
            self._remove_pod(ns, name)
            return obj
        if obj["metadata"].get("deletionTimestamp"):
            return obj
        seconds = spec_grace if grace is None else grace
        obj["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        obj["metadata"]["deletionGracePeriodSeconds"] = seconds
        self.terminating[name] = time.monotonic() + seconds * self.grace_scale
        for c in self.containers.get(name, []):
            self._signal(c, signal.SIGTERM)
        self._store("pods", ns, obj, event="MODIFIED")
        return obj

    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": reason, "message": message, "code": code}

    def forbidden(self, req: Request) -> str | None:
        """The 403 message when RBAC rules are set and none allows the request."""
        if self.rbac is None:
            return None
        m = ROUTE.match(req.path)
        if not m:
            return None
        group = GROUPS.get(m["prefix"], m["prefix"].split("/")[1])
        plural, name, sub = m["plural"], m["name"], m["sub"]
        if plural is None:
            plural, name = "namespaces", m["ns"]
        collection = name is None
        verb = {"GET": "watch" if req.query.get("watch") in ("true", "True") else (
            "list" if collection else "get"), "POST": "create", "PATCH": "patch", "PUT": "update",
            "DELETE": "deletecollection" if collection else "delete"}[req.method]
        if sub == "log":
            verb = "get"
        resource = f"{plural}/{sub}" if sub else plural
        wanted = [verb]
        ns_key = "" if plural in CLUSTER_SCOPED else (m["ns"] or "")
        if verb == "patch" and "apply-patch" in req.content_type and not self.objects.get(
                (plural, ns_key, name or "")):
            wanted.append("create")  # an apply that creates needs both
        for verb in wanted:
            ok = any(group in r["apiGroups"] and resource in r["resources"]
                     and verb in r["verbs"] and (r["cluster"] or plural not in CLUSTER_SCOPED)
                     for r in self.rbac)
            if not ok:
                self.denied.append(f"{req.method} {req.path} ({verb})")
                return (f'{resource}{" " + repr(name) if name else ""} is forbidden: User '
                        f'"system:serviceaccount:ttg:ttg-orchestrator" cannot {verb} resource '
                        f'"{resource}" in API group "{group}"')
            self.granted.add((resource, verb))
        return None

    def dispatch(self, req: Request) -> tuple[int, Any]:
        m = ROUTE.match(req.path)
        if not m:
            return self._status(404, "NotFound", f"no route {req.path}")
        with self.lock:
            if m["plural"] is None and m["ns"] is not None:  # /api/v1/namespaces/NAME
                plural, ns, name, sub = "namespaces", "", m["ns"], None
            else:
                plural, ns, name, sub = m["plural"], m["ns"] or "", m["name"], m["sub"]
            if plural not in KINDS:
                return self._status(404, "NotFound", f"unknown resource {plural}")
            key = (plural, ns, name or "")
            grace = req.query.get("gracePeriodSeconds")
            if grace is None and isinstance(req.body, dict):
                grace = req.body.get("gracePeriodSeconds")
            grace = None if grace is None else int(grace)
            if req.method == "POST" and name is None:
                obj = req.body
                obj.setdefault("metadata", {})["namespace"] = ns or None
                if plural == "namespaces":
                    obj["metadata"].pop("namespace", None)
                invalid = self._invalid(obj)
                if invalid:
                    return self._status(422, "Invalid", invalid)
                key = (plural, ns, obj["metadata"]["name"])
                if key in self.objects:
                    return self._status(409, "AlreadyExists",
                                        f'{plural} "{key[2]}" already exists')
                obj.pop("status", None)
                self._store(plural, ns, obj)
                self.reconcile()
                return 201, obj
            if req.method == "GET" and name is None:
                items = [o for (p, s, _n), o in sorted(self.objects.items())
                         if p == plural and (s == ns or plural in CLUSTER_SCOPED)
                         and match_labels(o["metadata"].get("labels", {}),
                                          req.query.get("labelSelector"))
                         and match_fields(o, req.query.get("fieldSelector"))]
                if plural == "nodes":
                    items = [self._node(n) for n in self.nodes]
                return 200, {"kind": KINDS[plural] + "List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(self.rv)}, "items": items}
            if req.method == "DELETE" and name is None:
                gone = [o for (p, s, _n), o in list(self.objects.items())
                        if p == plural and s == ns
                        and match_labels(o["metadata"].get("labels", {}),
                                         req.query.get("labelSelector"))
                        and match_fields(o, req.query.get("fieldSelector"))]
                for o in gone:
                    self._delete(plural, ns, o["metadata"]["name"], grace)
                self.reconcile()
                return 200, {"kind": KINDS[plural] + "List", "apiVersion": "v1",
                             "metadata": {}, "items": gone}
            if req.method == "PATCH" and "apply-patch" in req.content_type:
                return self._apply(plural, ns, name or "", req)
            if key not in self.objects:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            obj = self.objects[key]
            if req.method == "GET" and sub == "log":
                logs = [Path(c.tmp) / "container.log" for c in self.containers.get(name, [])
                        if c.tmp and (Path(c.tmp) / "container.log").exists()]
                if logs:  # a container that ran as a process: its real output
                    return 200, b"".join(path.read_bytes() for path in logs)
                return 200, f"{name} started\n{name} chunk 0 done\n".encode()
            if req.method == "GET":
                return 200, obj
            if req.method == "PATCH":
                if sub == "scale":
                    patch = {"spec": {"replicas": req.body["spec"]["replicas"]}}
                elif sub == "status":
                    patch = {"status": req.body.get("status", {})}
                else:
                    patch = {k: v for k, v in req.body.items() if k != "status"}
                merged = copy.deepcopy(obj)
                if "strategic-merge" in req.content_type:
                    strategic_merge(merged, patch)
                else:
                    merge(merged, patch)
                return self._update(plural, ns, obj, merged, sub)
            if req.method == "DELETE":
                self._delete(plural, ns, name or "", grace)
                self.reconcile()
                return 200, {"kind": "Status", "status": "Success"}
            return self._status(405, "MethodNotAllowed", req.method)

    def _apply(self, plural: str, ns: str, name: str, req: Request) -> tuple[int, Any]:
        manager = req.query.get("fieldManager")
        if not manager:
            return self._status(400, "BadRequest",
                                "PATCH: fieldManager is required for apply requests")
        body = req.body or {}
        if body.get("metadata", {}).get("name") != name:
            return self._status(400, "BadRequest", "the name of the object does not match")
        key = (plural, ns, name)
        new_applied = copy.deepcopy(body)
        if key not in self.objects:
            obj = copy.deepcopy(body)
            obj["metadata"]["namespace"] = ns or None
            if plural == "namespaces":
                obj["metadata"].pop("namespace", None)
            invalid = self._invalid(obj)
            if invalid:
                return self._status(422, "Invalid", invalid)
            obj.pop("status", None)
            self._store(plural, ns, obj)
            self.applied[key] = new_applied
            self.reconcile()
            return 201, obj
        obj = self.objects[key]
        merged = copy.deepcopy(obj)
        prune(merged, self.applied.get(key, {}), new_applied)
        strategic_merge(merged, {k: v for k, v in body.items() if k != "status"})
        status, result = self._update(plural, ns, obj, merged, None)
        if status == 200:
            self.applied[key] = new_applied
        return status, result

    def _update(self, plural: str, ns: str, obj: dict[str, Any], merged: dict[str, Any],
                sub: str | None) -> tuple[int, Any]:
        """Replace ``obj`` by ``merged``: immutable fields checked, status only through its
        subresource, generation bumped when the spec changed."""
        old_spec = obj.get("spec")
        if plural in ("deployments", "statefulsets") and sub is None:
            for path in (("selector",),) + ((("serviceName",), ("volumeClaimTemplates",),
                                            ("podManagementPolicy",))
                                           if plural == "statefulsets" else ()):
                before = _dig(old_spec, path)
                after = _dig(merged.get("spec"), path)
                if before != after:
                    return self._status(422, "Invalid", f"{KINDS[plural]}.apps "
                                        f"\"{obj['metadata']['name']}\" is invalid: spec."
                                        f"{'.'.join(path)}: field is immutable")
        if sub is None:
            merged["status"] = obj.get("status")
            if merged["status"] is None:
                merged.pop("status")
        if merged.get("spec") != old_spec:
            merged["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        obj.clear()
        obj.update(merged)
        self._store(plural, ns, obj, event="MODIFIED")
        self.reconcile()
        if sub == "scale":
            return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                         "metadata": obj["metadata"],
                         "spec": {"replicas": obj["spec"].get("replicas", 1)}}
        return 200, obj

    @staticmethod
    def _invalid(obj: dict[str, Any]) -> str | None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return f"{obj.get('kind')}: metadata.name: Required value"
        if not NAME.match(name):
            return (f'{obj.get("kind")} "{name}" is invalid: metadata.name: Invalid value: '
                    f'a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                    f"characters, '-' or '.'")
        return None

    def _node(self, name: str) -> dict[str, Any]:
        role = "control-plane" if name.endswith("control-plane") else None
        labels = {"kubernetes.io/hostname": name}
        if role:
            labels["node-role.kubernetes.io/control-plane"] = ""
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": name, "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                           "nodeInfo": {"kubeletVersion": "v1.30.4"}}}

    # -- controllers -------------------------------------------------------
    def set_pods_ready(self, ready: bool) -> None:
        """False: nodes are full, pods stay Pending/Unschedulable (True: schedulable)."""
        with self.lock:
            self.pods_ready = ready

    def reconcile(self) -> None:
        for (plural, ns, name), owner in list(self.objects.items()):
            if plural not in ("deployments", "statefulsets"):
                continue
            template = owner["spec"]["template"]
            want_labels = template["metadata"].get("labels", {})
            owned = [o for (p, s, _n), o in sorted(self.objects.items()) if p == "pods"
                     and s == ns and any(r.get("uid") == owner["metadata"]["uid"]
                                         for r in o["metadata"].get("ownerReferences", []))]
            old = [p for p in owned if p["metadata"].get("labels") != want_labels]
            mine = [p for p in owned if p["metadata"].get("labels") == want_labels
                    and not p["metadata"].get("deletionTimestamp")]
            strategy = ((owner["spec"].get("strategy") or {}).get("type", "RollingUpdate")
                        if plural == "deployments" else "Recreate")  # sts: same pod names
            # A rollout. Recreate: old pods go first, new ones start once all are gone.
            # RollingUpdate: new pods start at once, old ones go when the new are ready.
            if strategy == "Recreate" or sum(1 for p in mine if _ready(p)) >= owner["spec"].get(
                    "replicas", 1):
                for pod in old:
                    if not pod["metadata"].get("deletionTimestamp"):
                        self._delete("pods", ns, pod["metadata"]["name"], None)
            if strategy == "Recreate" and [p for p in old if ("pods", ns, p["metadata"][
                    "name"]) in self.objects]:
                continue
            want = owner["spec"].get("replicas", 1)
            while len(mine) > want:
                self._delete("pods", ns, mine.pop()["metadata"]["name"], None)
            while len(mine) < want:
                self.serial += 1
                pod_name = (f"{name}-{len(mine)}" if plural == "statefulsets"
                            else f"{name}-7d9f-{self.serial:05d}")
                spec = copy.deepcopy(template["spec"])
                spec.setdefault("terminationGracePeriodSeconds", 30)
                pod = {"kind": "Pod", "apiVersion": "v1",
                       "metadata": {"name": pod_name, "namespace": ns,
                                    "labels": dict(want_labels),
                                    "ownerReferences": [{"uid": owner["metadata"]["uid"],
                                                         "kind": owner["kind"], "name": name,
                                                         "apiVersion": "apps/v1"}]},
                       "spec": spec, "status": self._pending()}
                self._store("pods", ns, pod)
                mine.append(pod)
            ready = sum(1 for p in mine if _ready(p))
            owner["status"] = {"replicas": len(mine), "readyReplicas": ready,
                               "updatedReplicas": len(mine), "availableReplicas": ready,
                               "observedGeneration": owner["metadata"]["generation"]}

    def _pending(self) -> dict[str, Any]:
        if self.pods_ready:
            return {"phase": "Pending"}
        return {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable",
                                "message": "0/4 nodes are available: 4 Insufficient cpu."}]}

    # -- kubelet -----------------------------------------------------------
    def _kubelet_loop(self) -> None:
        while not self._stopped.is_set():
            with self.lock:
                try:
                    self._kubelet_tick()
                except Exception as exc:  # keep the stand-in alive; a test then times out
                    print(f"k8s stand-in kubelet: {exc!r}", file=sys.stderr)
                self.reconcile()
            self._stopped.wait(0.02)

    def _kubelet_tick(self) -> None:
        now = time.monotonic()
        for c, deadline in list(self.orphans):
            if c.proc is None or c.proc.poll() is not None or now >= deadline:
                by_kubelet = c.proc is not None and c.proc.poll() is None
                self._signal(c, signal.SIGKILL)
                self.orphans.remove((c, deadline))
                if c.proc is not None:
                    self.terminations.append({
                        "pod": c.pod, "after_sigterm_s": round(now - c.sigterm_at, 3),
                        "exit_code": c.proc.returncode, "killed_at_grace_end": by_kubelet})
        for (plural, ns, name), pod in list(self.objects.items()):
            if plural != "pods":
                continue
            if name in self.terminating:
                running = [c for c in self.containers.get(name, []) if _alive(c)]
                if not running or now >= self.terminating[name]:
                    for c in self.containers.pop(name, []):
                        self._signal(c, signal.SIGKILL)
                    self._remove_pod(ns, name)
                continue
            status = pod.setdefault("status", self._pending())  # a pod created directly
            if status.get("phase") in ("Succeeded", "Failed"):
                continue  # restartPolicy Never: a finished pod stays as it ended
            if not self.pods_ready and not pod["spec"].get("nodeName"):
                continue
            if not pod["spec"].get("nodeName"):
                pod["spec"]["nodeName"] = self.nodes[1 + self.serial % (len(self.nodes) - 1)]
                self.serial += 1
                self._set_status(ns, pod, self._waiting(pod, "ContainerCreating"))
                continue
            if name not in self.containers:
                missing = [c["image"] for c in pod["spec"]["containers"]
                           if self.images is not None and c["image"] not in self.images]
                if missing:
                    reason = ("ImagePullBackOff" if _waiting_reason(status) == "ErrImagePull"
                              else "ErrImagePull")
                    if _waiting_reason(status) != reason:
                        self._set_status(ns, pod, self._waiting(
                            pod, reason, f'failed to pull image "docker.io/library/'
                                         f'{missing[0]}": not found'))
                    continue
                self.containers[name] = [self._run(pod, c) for c in pod["spec"]["containers"]]
            self._probe(ns, pod)

    def _waiting(self, pod: dict[str, Any], reason: str, message: str = "") -> dict[str, Any]:
        waiting = {"reason": reason, **({"message": message} if message else {})}
        return {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": c["name"], "ready": False, "restartCount": 0,
                                   "image": c["image"], "imageID": "",
                                   "state": {"waiting": waiting}}
                                  for c in pod["spec"]["containers"]]}

    def _set_status(self, ns: str, pod: dict[str, Any], status: dict[str, Any]) -> None:
        if status != pod.get("status"):
            pod["status"] = status
            self._store("pods", ns, pod, event="MODIFIED")

    def _probe(self, ns: str, pod: dict[str, Any]) -> None:
        """Container states and the readiness probe; exited containers restart in place."""
        name = pod["metadata"]["name"]
        if pod["spec"].get("restartPolicy") == "Never" and self._finished(ns, pod):
            return
        old = {cs["name"]: cs for cs in pod["status"].get("containerStatuses") or []}
        statuses = []
        for spec, c in zip(pod["spec"]["containers"], self.containers[name], strict=True):
            restarts = old.get(spec["name"], {}).get("restartCount", 0)
            cs = {"name": spec["name"], "image": spec["image"], "imageID": "sha256:standin",
                  "restartCount": restarts, "ready": False}
            if not _alive(c):
                code = c.proc.returncode if c.proc is not None else 1
                self.containers[name][self.containers[name].index(c)] = self._restart(pod, spec)
                cs.update(restartCount=restarts + 1, state={"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {spec['name']}"}},
                    lastState={"terminated": {"reason": "Error", "exitCode": code}})
            elif time.monotonic() < c.started:  # restarting after a crash: back-off
                cs["state"] = {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {spec['name']}"}}
                cs["lastState"] = old.get(spec["name"], {}).get("lastState", {})
            else:
                cs["state"] = {"running": {"startedAt": "now"}}
                if "lastState" in old.get(spec["name"], {}):
                    cs["lastState"] = old[spec["name"]]["lastState"]
                cs["ready"] = self._ready_probe(spec, c)
            statuses.append(cs)
        ready = all(cs["ready"] for cs in statuses)
        running = all("running" in cs["state"] for cs in statuses)
        self._set_status(ns, pod, {
            "phase": "Running" if running or any(cs["restartCount"] for cs in statuses)
            else "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses})

    def _finished(self, ns: str, pod: dict[str, Any]) -> bool:
        """restartPolicy Never: once every container has exited, the pod is Succeeded (all
        exit 0) or Failed, and stays so. A virtual container exits 0 at once."""
        containers = self.containers[pod["metadata"]["name"]]
        if any(c.proc is not None and c.proc.poll() is None for c in containers):
            return False
        codes = [c.proc.returncode if c.proc is not None else 0 for c in containers]
        statuses = [{"name": spec["name"], "image": spec["image"], "imageID": "sha256:standin",
                     "restartCount": 0, "ready": False, "state": {"terminated": {
                         "exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}
                    for spec, code in zip(pod["spec"]["containers"], codes, strict=True)]
        self._set_status(ns, pod, {
            "phase": "Succeeded" if not any(codes) else "Failed",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": statuses})
        return True

    def _restart(self, pod: dict[str, Any], spec: dict[str, Any]) -> Container:
        """The kubelet's back-off (10 s, scaled) before the container runs again."""
        c = self._run(pod, spec)
        c.started = time.monotonic() + 10 * self.grace_scale
        return c

    def _ready_probe(self, spec: dict[str, Any], c: Container) -> bool:
        if c.proc is None:
            return self.readiness and time.monotonic() >= c.started
        probe = ((spec.get("readinessProbe") or {}).get("exec") or {}).get("command")
        if not probe:
            return True
        now = time.monotonic()
        if now < getattr(c, "next_probe", 0.0):
            return getattr(c, "last_ready", False)
        c.next_probe = now + 0.2  # type: ignore[attr-defined]
        if probe[:3] == ["python", "-m", "ttg_lib.health"]:
            from ttg_lib.commands.health import health

            args = [a.replace("/tmp", c.tmp, 1) if a.startswith("/tmp") else a
                    for a in probe[3:]]
            # Only the variable the probe reads: os.environ is the whole test process's.
            limit = {k: v for k, v in c.env.items() if k == "TTG_LIVENESS_S"}
            with _env(limit), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                ok = _exit_code(lambda: health.main(args, standalone_mode=False)) == 0
        elif probe[0] == "redis-cli":
            done = subprocess.run(["redis-cli", "-p", str(c.port), *probe[1:]],
                                  env={"PATH": os.environ["PATH"], **c.env},
                                  capture_output=True, text=True, timeout=5)
            ok = done.returncode == 0 and done.stdout.strip() == "PONG"
        else:
            ok = True
        c.last_ready = ok  # type: ignore[attr-defined]
        return ok

    # -- containers as processes --------------------------------------------
    def _env(self, pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in spec.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref:
                env.update((self.objects.get(("configmaps", ns, ref["name"])) or {}).get(
                    "data") or {})
        for var in spec.get("env") or []:
            if "value" in var:
                env[var["name"]] = _expand(var["value"], env)
                continue
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self.objects.get(("secrets", ns, ref["name"])) or {}
                data = {k: base64.b64decode(v).decode()
                        for k, v in (secret.get("data") or {}).items()}
                data.update(secret.get("stringData") or {})
                if ref["key"] in data:
                    env[var["name"]] = data[ref["key"]]
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                cm = self.objects.get(("configmaps", ns, ref["name"])) or {}
                env[var["name"]] = (cm.get("data") or {}).get(ref["key"], "")
            elif "fieldRef" in source:
                env[var["name"]] = str(_dig(pod, tuple(
                    source["fieldRef"]["fieldPath"].split("."))))
        return {k: self._resolve_hosts(v) for k, v in env.items()}

    def _resolve_hosts(self, value: str) -> str:
        """Cluster DNS: <service>:<port> in a URL becomes the local port of a pod behind it."""
        def sub(m: re.Match[str]) -> str:
            target = self._service_target(m["svc"], int(m["port"]))
            return f"127.0.0.1:{target}" if target else m[0]

        return re.sub(r"(?<=[@/])(?P<svc>ttg-[a-z0-9-]+):(?P<port>\d+)", sub, value)

    def _service_target(self, svc_name: str, port: int) -> int | None:
        for (p, _s, n), svc in self.objects.items():
            if p == "services" and n == svc_name:
                return self._endpoint(svc, port, "port")
        return None

    def _endpoint(self, svc: dict[str, Any], port: int, which: str) -> int | None:
        """The local port of a running container selected by ``svc`` for its ``port``."""
        if not any(sp.get(which) == port for sp in svc["spec"].get("ports") or []):
            return None
        for (p, _s, n), pod in self.objects.items():
            if p == "pods" and match_labels(pod["metadata"].get("labels", {}), ",".join(
                    f"{k}={v}" for k, v in svc["spec"]["selector"].items())):
                for c in self.containers.get(n, []):
                    if c.port and _alive(c):
                        return c.port
        return None

    def _run(self, pod: dict[str, Any], spec: dict[str, Any]) -> Container:
        """Start the container as a local process where the stand-in knows its image."""
        c = Container(spec["name"], env=self._env(pod, spec))
        image = spec["image"]
        command = (spec.get("command") or []) + [_expand(a, c.env) for a in spec.get("args") or []]
        if not self.run_containers:
            return c
        c.tmp = tempfile.mkdtemp(prefix=f"standin-{pod['metadata']['name']}-")
        # The image's Python path: TTG (this checkout) and nothing else; the working
        # directory is the container's own, so the orchestrator's modules are not on it.
        env = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", "HOME": c.tmp,
               "PYTHONPATH": str(REPO),
               **{k: (v.replace("/tmp", c.tmp, 1) if v.startswith("/tmp/") else v)
                  for k, v in c.env.items()}}
        c.env = env
        if command[:2] == ["tini", "--"]:
            command = command[2:]  # no init: the main process is PID 1 (see PID1 below)
        if "ttg-worker" in image.rsplit("/", 1)[-1]:
            argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
        elif image.startswith("redis"):
            c.port = _free_port()
            argv = [shutil.which("redis-server") or "redis-server", *command[1:], "--port",
                    str(c.port), "--bind", "127.0.0.1", "--dir", c.tmp, "--save", ""]
        else:
            return c  # an image the stand-in cannot run: a virtual container
        log = open(Path(c.tmp) / "container.log", "wb")  # noqa: SIM115 - lives with the proc
        if PID1:  # the container's process is PID 1 of a PID namespace of its own
            argv = ["unshare", "--pid", "--fork", *argv]
        c.proc = subprocess.Popen(argv, env=env, cwd=c.tmp, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        return c

    @staticmethod
    def _signal(c: Container, sig: int) -> None:
        if c.proc is None:  # a virtual container ends on SIGTERM, as a well-behaved one does
            c.crash_at = min(c.crash_at or time.monotonic(), time.monotonic())
        elif c.proc.poll() is None:
            try:
                if sig == signal.SIGTERM:  # the runtime signals the container's PID 1 only
                    os.kill(_init_pid(c.proc), sig)
                else:  # SIGKILL: the whole container (its namespace dies with its init)
                    os.killpg(c.proc.pid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL:
                c.proc.wait(5)

    def publish_node_ports(self, ports: list[int]) -> dict[int, int]:
        """Docker's proxy for kind's extraPortMappings: a local port per NodePort that
        accepts every connection, relays it to a pod behind the NodePort Service if one runs,
        and otherwise closes it."""
        for node_port in ports:
            server = socket.create_server(("127.0.0.1", 0))
            self._relays.append(server)
            self.node_ports[node_port] = server.getsockname()[1]
            threading.Thread(target=self._relay_accept, args=(server, node_port),
                             daemon=True).start()
        return dict(self.node_ports)

    def _relay_accept(self, server: socket.socket, node_port: int) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with self.lock:
                target = next((t for (p, _s, _n), svc in self.objects.items()
                               if p == "services"
                               and (t := self._endpoint(svc, node_port, "nodePort"))), None)
            if target is None:
                conn.close()
                continue
            threading.Thread(target=_pipe_both, args=(conn, target), daemon=True).start()


def _pipe_both(conn: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        conn.close()
        return
    upstream.settimeout(None)

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
    pipe(conn, upstream)


class _env:  # noqa: N801 - a context manager used like a function
    """Run an in-process probe with the container's environment."""

    def __init__(self, env: dict[str, str]):
        self.env, self.saved = env, {}

    def __enter__(self) -> None:
        for k, v in self.env.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _alive(c: Container) -> bool:
    if c.proc is not None:
        return c.proc.poll() is None
    return c.crash_at is None or time.monotonic() < c.crash_at


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _waiting_reason(status: dict[str, Any]) -> str | None:
    for cs in status.get("containerStatuses") or []:
        return ((cs.get("state") or {}).get("waiting") or {}).get("reason")
    return None


def _pid_namespaces() -> bool:
    """``unshare --pid --fork`` works here (root, as in CI): containers can be PID 1."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c",
                               "import os; print(os.getpid())"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == "1"


# Every container process runs as PID 1 of a PID namespace of its own, as in a real pod (the
# kernel then drops a signal init sends itself, e.g. a self-SIGKILL; pid_namespaces(7)).
# False only where unshare is not allowed; the tests that need it skip, saying so.
PID1 = _pid_namespaces()


def _init_pid(proc: subprocess.Popen) -> int:
    """The host pid of the container's PID 1: the child ``unshare --fork`` made (the
    process itself without PID namespaces)."""
    if not PID1:
        return proc.pid
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids = children.read_text().split() if children.exists() else []
        if pids:
            return int(pids[0])
        if proc.poll() is not None:
            break
        time.sleep(0.01)  # unshare has not forked yet
    return proc.pid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exit_code(call: Any) -> int:
    """The exit code a click command ends with (its ``sys.exit``), 0 when it returns."""
    try:
        call()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
