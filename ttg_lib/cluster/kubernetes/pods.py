"""Pod and workload status, in the terms WorkerInfo and error messages use."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any


def timestamp(value: str | None) -> float:
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


def restart_count(pod: dict[str, Any]) -> int:
    return sum(cs.get("restartCount", 0)
               for cs in (pod.get("status") or {}).get("containerStatuses") or [])

def workload_ready(obj: dict[str, Any] | None) -> tuple[int, int]:
    if obj is None:
        return 0, 1
    want = (obj.get("spec") or {}).get("replicas", 1)
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < (obj.get("metadata") or {}).get("generation", 0):
        return 0, want
    return status.get("readyReplicas") or 0, want
