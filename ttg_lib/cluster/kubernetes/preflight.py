"""The preflight: before any task is published, one pod with the worker image and the
worker's environment loads the run's function (``python -m ttg_lib.cluster.check SPEC``).

If it cannot (a module missing from the image, a dependency not installed, another Python for
a function shipped by value), the run stops with that pod's own error, before the Deployment
starts and before a task exists, so nothing is dead-lettered. The pod is TTG-labelled
(component ``preflight``, the run's label), never restarted, and deleted when it has answered.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from ..base import ClusterError
from .api import Api
from .labels import (
    COMPONENT,
    NAMESPACE,
    PART_OF,
    RUN_LABEL,
    TTG_SELECTOR,
    WORKER_CONTAINER,
    WORKER_DEPLOYMENT,
    run_label,
)
from .pods import pod_reason

PREFLIGHT = "preflight"


def task_compute(config: Any) -> str:
    """What the run's tasks will name: the function shipped by value (``sha256:<hex>``, when
    the run ships it) or the import path."""
    sha = getattr(config, "compute_sha256", "")
    return f"sha256:{sha}" if sha else config.compute


def preflight_pod(objects: list[dict[str, Any]], spec: str, run_id: str) -> dict[str, Any]:
    """The check pod: the worker Deployment's pod template (image, pull policy, environment,
    security context, volumes) running the check once instead of the worker."""
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == WORKER_DEPLOYMENT)
    template = copy.deepcopy(deployment["spec"]["template"])
    pod_spec = template["spec"]
    pod_spec.pop("topologySpreadConstraints", None)
    pod_spec["restartPolicy"] = "Never"
    pod_spec["activeDeadlineSeconds"] = 600
    pod_spec["terminationGracePeriodSeconds"] = 0
    (worker,) = [c for c in pod_spec["containers"] if c["name"] == WORKER_CONTAINER]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        worker.pop(probe, None)
    worker["command"] = ["python", "-m", "ttg_lib.cluster.check", spec]
    worker.pop("args", None)
    worker["terminationMessagePolicy"] = "FallbackToLogsOnError"
    pod_spec["containers"] = [worker]
    labels = {**template["metadata"].get("labels", {}), COMPONENT: PREFLIGHT,
              RUN_LABEL: run_label(run_id), PART_OF: "ttg"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(run_id), "namespace": NAMESPACE, "labels": labels},
            "spec": pod_spec}


def pod_name(run_id: str) -> str:
    return f"ttg-{PREFLIGHT}-{run_label(run_id)}"[:63].rstrip("-_.").lower().replace("_", "-")


def selector(run_id: str) -> str:
    return f"{TTG_SELECTOR},{COMPONENT}={PREFLIGHT},{RUN_LABEL}={run_label(run_id)}"


def run_preflight(api: Api, objects: list[dict[str, Any]], spec: str, run_id: str, *,
                  timeout: float = 180.0, poll_s: float = 0.5,
                  name_for_people: str = "") -> dict[str, Any]:
    """Create the check pod, wait for its answer, delete it; returns the answer (ok) or
    raises ClusterError with the pod's own error. ``name_for_people``: the function as the
    user named it (``spec`` may be a fingerprint)."""
    pod = preflight_pod(objects, spec, run_id)
    name = pod["metadata"]["name"]
    _delete(api, run_id, name)  # a leftover of an earlier attempt of this run
    api.call(f"create Pod {NAMESPACE}/{name}", api.core.create_namespaced_pod, NAMESPACE, pod)
    try:
        phase, status = _wait_finished(api, name, timeout, poll_s)
        answer = _answer(api, name, status)
    finally:
        _delete(api, run_id, name)
    if phase == "Succeeded":  # exit code 0: loaded (the JSON line adds the details)
        return answer or {"ok": True}
    error = answer.get("error") or f"the check exited with {_exit_code(status)}"
    python = f" (Python {answer['python']} in the image)" if answer.get("python") else ""
    raise ClusterError(
        f"the worker image cannot load {name_for_people or spec}: {error}{python}; checked in pod "
        f"{NAMESPACE}/{name} before anything was published (no task was dead-lettered). "
        f"Put the module and its dependencies in the image (python -m ttg_lib.cluster.kind up "
        f"--requirements FILE --code DIR, then --image with the tag it prints), or ship the "
        f"function by value")


def _wait_finished(api: Api, name: str, timeout: float,
                   poll_s: float) -> tuple[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        pod = api.call(f"read Pod {NAMESPACE}/{name}", api.core.read_namespaced_pod, name,
                       NAMESPACE, missing_ok=True) or {}
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return status["phase"], status
        if time.monotonic() >= deadline:
            reason = pod_reason(pod) if pod else "the pod is gone"
            raise ClusterError(f"the preflight pod {NAMESPACE}/{name} did not answer within "
                               f"{timeout:g}s: {reason}")
        time.sleep(poll_s)


def _answer(api: Api, name: str, status: dict[str, Any]) -> dict[str, Any]:
    """The check's JSON line: from the pod's log, else its termination message."""
    from kubernetes.client.exceptions import ApiException

    texts = []
    try:
        resp = api.core.read_namespaced_pod_log(name, NAMESPACE, container=WORKER_CONTAINER,
                                                _preload_content=False,
                                                _request_timeout=api.request_timeout)
        texts.append(resp.data.decode(errors="replace"))
    except ApiException:
        pass  # the log may be gone with the node; the termination message may still say
    for cs in status.get("containerStatuses") or []:
        texts.append(((cs.get("state") or {}).get("terminated") or {}).get("message") or "")
    for text in texts:
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
    tail = " | ".join(t.strip().splitlines()[-1] for t in texts if t.strip())
    return {"ok": False, "error": tail} if tail else {}


def _exit_code(status: dict[str, Any]) -> str:
    for cs in status.get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated:
            return f"exit code {terminated.get('exitCode')} ({terminated.get('reason')})"
    return "no exit code"


def _delete(api: Api, run_id: str, name: str) -> None:
    api.delete_collection("Pod", selector(run_id), field_selector=f"metadata.name={name}",
                          grace_period_seconds=0)
