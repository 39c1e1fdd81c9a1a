"""A small in-memory Kubernetes API server on 127.0.0.1 for provider tests.

The REAL ``kubernetes`` Python client talks to it over HTTP (``Configuration.host``), so the
tests see exactly the requests TTG's provider sends: method, path, query (label and field
selectors, grace periods) and body. It imitates just enough of the API server and of the
Deployment/StatefulSet controllers for TTG's provider: create/get/patch/list/watch/delete and
delete-collection of namespaced objects, ``/scale``, pod logs, nodes, and pods that are created,
replaced and (optionally) become ready. It is not a conformance-grade fake.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GROUPS = {"api/v1": "", "apis/apps/v1": "apps", "apis/networking.k8s.io/v1": "networking.k8s.io"}
KINDS = {
    "namespaces": "Namespace", "secrets": "Secret", "configmaps": "ConfigMap",
    "services": "Service", "persistentvolumeclaims": "PersistentVolumeClaim", "pods": "Pod",
    "deployments": "Deployment", "statefulsets": "StatefulSet",
    "networkpolicies": "NetworkPolicy", "nodes": "Node",
}
ROUTE = re.compile(r"^/(?P<prefix>api/v1|apis/[^/]+/v1)"
                   r"(?:/namespaces/(?P<ns>[^/]+))?"
                   r"(?:/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?)?$")


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
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


@dataclass
class FakeKube:
    """State of the fake API server; ``pods_ready=False`` leaves new pods Pending."""

    pods_ready: bool = True
    nodes: tuple[str, ...] = ("ttg-control-plane", "ttg-worker", "ttg-worker2", "ttg-worker3")
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    pod_events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    rv: int = 100
    serial: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    # -- server ------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                body = json.loads(raw) if raw else None
                req = Request(self.command, parts.path, query, body,
                              self.headers.get("Content-Type", ""))
                with fake.lock:
                    fake.requests.append(req)
                if self.command == "GET" and query.get("watch") in ("true", "True", "1"):
                    self._watch(req)
                    return
                status, payload = fake.dispatch(req)
                data = (payload if isinstance(payload, bytes) else
                        json.dumps(payload).encode())
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _watch(self, req: Request) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                since = int(req.query.get("resourceVersion") or 0)
                deadline = time.monotonic() + 0.3
                with fake.lock:
                    while True:
                        events = [(rv, t, o) for rv, t, o in fake.pod_events if rv > since
                                  and match_labels(o["metadata"].get("labels", {}),
                                                   req.query.get("labelSelector"))]
                        if events or time.monotonic() > deadline:
                            break
                        fake.lock.wait(0.05)
                for _rv, etype, obj in events:
                    self.wfile.write(json.dumps({"type": etype, "object": obj}).encode() + b"\n")
                self.close_connection = True

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle  # noqa: N815

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up at exit are not test failures

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

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

    # -- API ---------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _store(self, plural: str, ns: str, obj: dict[str, Any], event: str = "ADDED") -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{self._next_rv()}")
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        meta["generation"] = meta.get("generation", 0) + 1
        meta["resourceVersion"] = self._next_rv()
        self.objects[(plural, ns, meta["name"])] = obj
        if plural == "pods":
            self.pod_events.append((self.rv, event, json.loads(json.dumps(obj))))
            self.lock.notify_all()

    def _delete(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.objects.pop((plural, ns, name))
        if plural == "pods":
            self.pod_events.append((int(self._next_rv()), "DELETED", obj))
            self.lock.notify_all()
        return obj

    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": reason, "message": message, "code": code}

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
            if req.method == "POST" and name is None:
                obj = req.body
                obj.setdefault("metadata", {})["namespace"] = ns or None
                if plural == "namespaces":
                    obj["metadata"].pop("namespace", None)
                key = (plural, ns, obj["metadata"]["name"])
                if key in self.objects:
                    return self._status(409, "AlreadyExists",
                                        f'{plural} "{key[2]}" already exists')
                self._store(plural, ns, obj)
                self.reconcile()
                return 201, obj
            if req.method == "GET" and name is None:
                items = [o for (p, s, _n), o in sorted(self.objects.items())
                         if p == plural and (s == ns or plural in ("namespaces", "nodes"))
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
                    self._delete(plural, ns, o["metadata"]["name"])
                self.reconcile()
                return 200, {"kind": KINDS[plural] + "List", "apiVersion": "v1",
                             "metadata": {}, "items": gone}
            if key not in self.objects:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            obj = self.objects[key]
            if req.method == "GET" and sub == "log":
                return 200, f"{name} started\n{name} chunk 0 done\n".encode()
            if req.method == "GET":
                return 200, obj
            if req.method == "PATCH":
                patch = req.body if sub != "scale" else {"spec": req.body.get("spec", {})}
                merge(obj, patch)
                self._store(plural, ns, obj, event="MODIFIED")
                self.reconcile()
                if sub == "scale":
                    return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                                 "metadata": obj["metadata"],
                                 "spec": {"replicas": obj["spec"].get("replicas", 1)}}
                return 200, obj
            if req.method == "DELETE":
                self._delete(plural, ns, name or "")
                self.reconcile()
                return 200, {"kind": "Status", "status": "Success"}
            return self._status(405, "MethodNotAllowed", req.method)

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
        with self.lock:
            self.pods_ready = ready
            for (p, _s, _n), pod in list(self.objects.items()):
                if p == "pods":
                    pod["status"] = self._pod_status()
                    self._store("pods", pod["metadata"]["namespace"], pod, event="MODIFIED")

    def _pod_status(self) -> dict[str, Any]:
        if self.pods_ready:
            return {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                           "image": "x", "imageID": "x",
                                           "state": {"running": {}}}]}
        return {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable",
                                "message": "0/4 nodes are available: 4 Insufficient cpu."}]}

    def reconcile(self) -> None:
        for (plural, ns, name), owner in list(self.objects.items()):
            if plural not in ("deployments", "statefulsets"):
                continue
            template = owner["spec"]["template"]
            want_labels = template["metadata"].get("labels", {})
            mine = [o for (p, s, _n), o in sorted(self.objects.items()) if p == "pods"
                    and s == ns and any(r.get("uid") == owner["metadata"]["uid"]
                                        for r in o["metadata"].get("ownerReferences", []))]
            for pod in mine:  # a rollout: pods of an old template go
                if pod["metadata"].get("labels") != want_labels:
                    self._delete("pods", ns, pod["metadata"]["name"])
            mine = [p for p in mine if p["metadata"].get("labels") == want_labels]
            want = owner["spec"].get("replicas", 1)
            while len(mine) > want:
                self._delete("pods", ns, mine.pop()["metadata"]["name"])
            while len(mine) < want:
                self.serial += 1
                pod_name = (f"{name}-{len(mine)}" if plural == "statefulsets"
                            else f"{name}-7d9f-{self.serial:05d}")
                pod = {"kind": "Pod", "apiVersion": "v1",
                       "metadata": {"name": pod_name, "namespace": ns,
                                    "labels": dict(want_labels),
                                    "ownerReferences": [{"uid": owner["metadata"]["uid"],
                                                         "kind": owner["kind"], "name": name,
                                                         "apiVersion": "apps/v1"}]},
                       "spec": {"containers": template["spec"]["containers"],
                                "nodeName": self.nodes[1 + self.serial % (len(self.nodes) - 1)]
                                if self.pods_ready else None},
                       "status": self._pod_status()}
                self._store("pods", ns, pod)
                mine.append(pod)
            ready = sum(1 for p in mine if p["status"]["phase"] == "Running")
            owner["status"] = {"replicas": len(mine), "readyReplicas": ready,
                               "updatedReplicas": len(mine), "availableReplicas": ready,
                               "observedGeneration": owner["metadata"]["generation"]}
