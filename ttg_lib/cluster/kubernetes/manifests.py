"""The manifests: the YAML under ``k8s/`` loaded in kustomization order, checked to be
TTG's, with the run's values set (see the package docstring)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..base import ClusterError
from ..podsettings import KIND_IMAGE, pull_policy
from .labels import (
    COMPONENT,
    KINDS,
    NAMESPACE,
    PART_OF,
    RUN_LABEL,
    TTG_SELECTOR,
    WORKER_CONFIGMAP,
    WORKER_CONTAINER,
    WORKER_DEPLOYMENT,
    run_label,
)


def manifests_dir() -> Path:
    """``k8s/`` of the source tree (override with TTG_K8S_DIR)."""
    env = os.environ.get("TTG_K8S_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "k8s"
    if not (path / "base" / "kustomization.yaml").exists():
        raise ClusterError(f"Kubernetes manifests not found in {path}: run TTG from its source "
                           f"checkout (pip install -e .) or set TTG_K8S_DIR to the k8s/ folder")
    return path


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
                   k8s_dir: Path | None = None, liveness_s: float | None = None,
                   cpu: str = "", memory: str = "") -> list[dict[str, Any]]:
    """The objects to apply, in order, with the run's values set; each is checked to be TTG's.

    ``liveness_s``: the worker liveness limit (the probes read TTG_LIVENESS_S from the worker
    ConfigMap); None keeps the manifest's. ``image``: the worker image (Kind: ttg-worker:dev
    by default; k8s: required), pulled per :func:`~ttg_lib.cluster.podsettings.pull_policy`.
    ``cpu``, ``memory``: each worker's request and limit ("": the manifest's)."""
    image = image or (KIND_IMAGE if flavor == "kind" else "")
    if not image:
        raise ClusterError("the k8s flavour needs a worker image the cluster's nodes can pull "
                           "(--image REGISTRY/ttg-worker:TAG)")
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
            if liveness_s is not None:
                obj["data"]["TTG_LIVENESS_S"] = f"{liveness_s:g}"
        if obj["kind"] == "Deployment" and meta["name"] == WORKER_DEPLOYMENT:
            meta["labels"][RUN_LABEL] = label
            obj["spec"]["replicas"] = workers
            template = obj["spec"]["template"]
            template["metadata"]["labels"][RUN_LABEL] = label
            for container in template["spec"]["containers"]:
                if container["name"] == WORKER_CONTAINER:
                    container["image"] = image
                    container["imagePullPolicy"] = pull_policy(image, flavor)
                    _set_resources(container, cpu, memory)
    return objects


def _set_resources(container: dict[str, Any], cpu: str, memory: str) -> None:
    """Request and limit alike: the scheduler reserves what the worker may use, so a busy
    node neither throttles it below its request nor OOM-kills it above it."""
    resources = container.setdefault("resources", {})
    for name, value in (("cpu", cpu), ("memory", memory)):
        if value:
            resources.setdefault("requests", {})[name] = value
            resources.setdefault("limits", {})[name] = value


def worker_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The worker container of the rendered Deployment (what the dry run shows)."""
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == WORKER_DEPLOYMENT:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                if container["name"] == WORKER_CONTAINER:
                    return container
    raise ClusterError(f"no {WORKER_CONTAINER} container in Deployment {WORKER_DEPLOYMENT}")


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
