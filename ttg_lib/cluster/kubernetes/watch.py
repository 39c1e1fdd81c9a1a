"""The watch cache of the run's worker pods: list, then watch from the list's version, and
turn pod events into the cluster's worker events (started, replaced, died, stopped)."""

from __future__ import annotations

import threading
import time
from typing import Any

from ..base import WorkerInfo, WorkerState
from .labels import NAMESPACE
from .pods import restart_count

# A watch error other than 410 Gone (a 500, a 429, a 403 while RBAC changes) retries from the
# same resourceVersion; after this many in a row the pods are listed again, so a version the
# server will never accept cannot stall the cache.
RELIST_AFTER_FAILURES = 3


class PodWatch:
    """Mixed into :class:`~.provider.KubernetesCluster`: the watch thread and its cache."""

    _lock: threading.RLock
    _stopping: threading.Event
    _synced: bool
    _cache: dict[str, dict[str, Any]]
    _gone: dict[str, WorkerInfo]
    _seen: set[str]
    _killed: set[str]
    _pending_replacement: list[str]
    _replaces: dict[str, str]
    _restart_counts: dict[str, int]
    _stop_recorded: set[str]
    worker_selector: str
    watch_timeout_s: int
    poll_s: float
    api: Any
    book: Any
    # and, from the provider and Cluster: _info(pod) and note_exit(name)

    def _watch_pods(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        version: str | None = None
        failures = 0  # watch errors in a row other than 410
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist()
                    failures = 0
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
                failures += 1
                if exc.status == 410 or failures >= RELIST_AFTER_FAILURES:
                    version = None  # 410 Gone, or a version the server keeps refusing
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
            restarts = restart_count(pod)
            if restarts > self._restart_counts.get(name, 0):
                self.book.add("died", name, f"container restarted in place (restart "
                                            f"#{restarts}: liveness probe or crash)")
            self._restart_counts[name] = restarts
