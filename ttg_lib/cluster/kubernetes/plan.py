"""The dry run: every API operation a run would make, listed and formatted; nothing sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from ..podsettings import image_of
from .api import resolve_context
from .credentials import secret_metadata
from .labels import (
    BROKER_SECRET,
    BROKERS,
    KINDS,
    MANAGEMENT,
    NAMESPACE,
    WORKER_CONFIGMAP,
    WORKER_DEPLOYMENT,
    broker_selector,
    selector_labels,
    worker_selector,
)
from .manifests import is_worker_object, manifests_dir, render_objects, worker_container
from .preflight import preflight_pod, task_compute
from .preflight import selector as preflight_selector

if TYPE_CHECKING:
    from ...config import RunConfig


def dry_run_plan(config: RunConfig) -> list[dict[str, Any]]:
    """Every API operation `ttg run --cluster kind|k8s` makes, in order; nothing is sent."""
    flavor = config.cluster if config.cluster in ("kind", "k8s") else "kind"
    objects = render_objects(flavor=flavor, backend=config.backend, run_id=config.run_id,
                             workers=config.workers, lease_s=config.lease_s,
                             image=image_of(config) or None, cpu=config.worker_cpu,
                             memory=config.worker_memory)
    broker = BROKERS[config.backend]
    wsel = worker_selector(config.run_id)
    ops: list[dict[str, Any]] = []

    def op(step: str, verb: str, kind: str, name: str, labels: dict[str, str],
           selector: str = "", detail: str = "", namespace: str = NAMESPACE) -> None:
        ops.append({"step": step, "verb": verb, "kind": kind, "name": name,
                    "namespace": namespace, "labels": dict(labels), "selector": selector,
                    "detail": detail})

    brokers = [o for o in objects if not is_worker_object(o)]
    secret = {"kind": "Secret", "metadata": secret_metadata()}
    for phase, chosen in (("brokers", brokers[:1] + [secret] + brokers[1:]),
                          ("workers", [o for o in objects if is_worker_object(o)])):
        if phase == "workers":
            op("brokers", "get", broker["kind"], broker["name"], {},
               detail="poll status until ready")
            op("brokers", "list", "Pod", "*", selector_labels(broker_selector(config.backend)),
               broker_selector(config.backend), "only to name unready pods on timeout")
            op("brokers", "get", "Secret", BROKER_SECRET, {}, detail="broker URL for the host")
            if flavor == "kind":
                op("brokers", "connect", "Service", f"{broker['app']} NodePort", {},
                   detail=f"host 127.0.0.1:{broker['node_port']}: the backend's own "
                          f"handshake, retried until it answers")
                if config.backend in MANAGEMENT:
                    op("brokers", "connect", "Service", f"{broker['app']} management", {},
                       detail=f"management API at http://127.0.0.1:"
                              f"{MANAGEMENT[config.backend]['node_port']}")
            else:
                op("brokers", "list", "Pod", "*",
                   selector_labels(broker_selector(config.backend)),
                   broker_selector(config.backend), "pick the pod to port-forward to")
                op("brokers", "create", "Pod/portforward", f"{broker['name']} pod", {},
                   detail=f"port {broker['port']} -> 127.0.0.1:<free port>")
        if phase == "workers":  # ConfigMap first: the preflight pod reads it
            chosen = sorted(chosen, key=lambda o: o["kind"] != "ConfigMap")
        for obj in chosen:
            kind, meta = obj["kind"], obj["metadata"]
            if kind == "Deployment" and meta["name"] == WORKER_DEPLOYMENT:
                preflight_ops(op, config, objects)
            verb = "create-if-absent" if KINDS[kind][3] else "server-side-apply"
            detail = ""
            if kind == "Secret":
                detail = ("random broker passwords generated when absent; kept across runs "
                          "(python -m ttg_lib.cluster.kind credentials)")
            elif kind == "Deployment" and meta["name"] == WORKER_DEPLOYMENT:
                detail = f"replicas={config.workers}, {pod_line(worker_container(objects))}"
            elif kind == "ConfigMap" and meta["name"] == WORKER_CONFIGMAP:
                detail = f"TTG_BACKEND={config.backend}, TTG_RUN_ID={config.run_id}"
            op(phase, verb, kind, meta["name"], meta.get("labels") or {}, detail=detail,
               namespace="" if kind == "Namespace" else meta.get("namespace", NAMESPACE))
    op("workers", "list", "Pod", "*", selector_labels(wsel), wsel, "wait until ready")
    op("workers", "watch", "Pod", "*", selector_labels(wsel), wsel,
       "record started/replaced/died events")
    if config.fault_demo:
        op("fault", "deletecollection", "Pod", "<one worker pod>", selector_labels(wsel), wsel,
           f"at {config.kill_at:.0%}: HARD KILL of a pod holding a chunk (by the broker: "
           f"consumer = pod name): fieldSelector metadata.name=<pod>, gracePeriodSeconds=0; "
           f"the kubelet's SIGTERM ends the worker at once (TTG_KILL_ON_SIGTERM=1), so its "
           f"chunk is redelivered")
    op("stop", "get", "Deployment", WORKER_DEPLOYMENT, {}, detail="check it is TTG's")
    op("stop", "patch", "Deployment/scale", WORKER_DEPLOYMENT, {}, detail="replicas=0")
    op("stop", "list", "Pod", "*", selector_labels(wsel), wsel, "until the pods are gone")
    for obj in rbac_objects():
        meta = obj["metadata"]
        rules = "; ".join(f"{','.join(r['resources'])}: {','.join(r['verbs'])}"
                          for r in obj.get("rules") or [])
        op("rbac", "not applied by TTG", obj["kind"], meta["name"], meta.get("labels") or {},
           detail=(rules or "k8s/rbac: for an in-cluster orchestrator, applied by an admin"),
           namespace=meta.get("namespace", ""))
    return ops


def preflight_ops(op: Any, config: RunConfig, objects: list[dict[str, Any]]) -> None:
    """The preflight pod's operations: does the worker image load the run's function?"""
    spec = task_compute(config)
    pod = preflight_pod(objects, spec, config.run_id)
    name, labels = pod["metadata"]["name"], pod["metadata"]["labels"]
    sel = preflight_selector(config.run_id)
    op("preflight", "create", "Pod", name, labels,
       detail=f"python -m ttg_lib.cluster.check {spec} (restartPolicy Never): the worker "
              f"image loads the function before any task is published, else the run stops "
              f"with the pod's error")
    op("preflight", "get", "Pod", name, {}, detail="poll until Succeeded or Failed")
    op("preflight", "get", "Pod/log", name, {}, detail="the check's answer (one JSON line)")
    op("preflight", "deletecollection", "Pod", name, selector_labels(sel), sel,
       f"fieldSelector metadata.name={name}, gracePeriodSeconds=0")


def rbac_objects() -> list[dict[str, Any]]:
    """k8s/rbac: what an orchestrator inside the cluster needs (listed, never applied)."""
    folder = manifests_dir() / "rbac"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return [doc for entry in kustomization["resources"]
            for doc in yaml.safe_load_all((folder / entry).read_text()) if doc]


def format_plan(plan: list[dict[str, Any]], config: RunConfig | None = None) -> str:
    lines = []
    if config is not None:
        flavor = config.cluster if config.cluster in ("kind", "k8s") else "kind"
        context = resolve_context(config.kube_context or None, flavor) or (
            "the kubeconfig's current context")
        container = worker_container(render_objects(
            flavor=flavor, backend=config.backend, run_id=config.run_id, workers=1,
            image=image_of(config) or None, cpu=config.worker_cpu,
            memory=config.worker_memory))
        lines.append(f"TTG dry run: cluster {config.cluster} (context {context}), backend "
                     f"{config.backend}, {config.workers} workers, run {config.run_id}")
        lines.append(f"Worker pods: {pod_line(container)}")
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


def pod_line(container: dict[str, Any]) -> str:
    """Image, pull policy and resources of the worker container, in one line."""
    resources = container.get("resources") or {}

    def pair(kind: str) -> str:
        values = resources.get(kind) or {}
        return f"cpu {values.get('cpu', '-')}, memory {values.get('memory', '-')}"

    return (f"image {container['image']} (imagePullPolicy {container['imagePullPolicy']}), "
            f"requests {pair('requests')}, limits {pair('limits')}")
