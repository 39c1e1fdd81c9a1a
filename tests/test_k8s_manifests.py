"""Static checks of TTG's Kubernetes side: k8s/ manifests, kustomizations and the kind config.

No cluster is needed. Every YAML document under k8s/ (kustomization.yaml files aside) must be a
complete Kubernetes object that validates, in strict mode (unknown fields are errors), against
the OpenAPI schema of KUBERNETES_VERSION, the Kubernetes version of the node image pinned in
kind/kind-config.yaml. kubernetes-validate is a required dev dependency: without it this module
fails at import instead of being skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import kubernetes_validate
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = REPO_ROOT / "k8s"
BASE_DIR = K8S_DIR / "base"
KIND_OVERLAY_DIR = K8S_DIR / "overlays" / "kind"
KIND_CONFIG = REPO_ROOT / "kind" / "kind-config.yaml"

KUBERNETES_VERSION = "1.30"
# The pinned node image's version, and the next one (a user's cluster may be a release ahead).
SCHEMA_VERSIONS = ("1.30", "1.31")
RBAC_DIR = K8S_DIR / "rbac"
NAMESPACE = "ttg"
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}

PART_OF = "app.kubernetes.io/part-of"
REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    PART_OF,
)
COMPONENTS = {"broker", "worker", "namespace", "orchestrator"}

CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

# Workload name -> (uid its containers run as, read-only root filesystem expected).
# RabbitMQ runs as the alpine image's own account (uid 100) and keeps a writable root
# filesystem; the reason is written next to the setting in rabbitmq-statefulset.yaml.
HARDENING = {
    "ttg-worker": (10001, True),
    "ttg-redis": (999, True),
    "ttg-rabbitmq": (100, False),
}

# kind host/node port -> (NodePort Service, the pod port it leads to).
NODE_PORTS = {
    30379: ("ttg-redis-nodeport", 6379),
    30672: ("ttg-rabbitmq-nodeport", 5672),
    31672: ("ttg-rabbitmq-nodeport", 15672),
}

HEALTH_COMMAND = ["python", "-m", "ttg_lib.health", "--file", "/tmp/ttg/heartbeat"]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def manifest_files(directory: Path = K8S_DIR) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and path.suffix in {".yaml", ".yml"}
        and path.name not in KUSTOMIZATION_NAMES
    )


def kustomization_files() -> list[Path]:
    return sorted(path for path in K8S_DIR.rglob("*") if path.name in KUSTOMIZATION_NAMES)


def object_id(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def load_manifests(directory: Path = K8S_DIR) -> list[tuple[str, dict[str, Any]]]:
    manifests = []
    for path in manifest_files(directory):
        for doc in load_documents(path):
            manifests.append((f"{path.relative_to(REPO_ROOT)}:{object_id(doc)}", doc))
    return manifests


MANIFESTS = load_manifests()
BASE_OBJECTS = [obj for _, obj in load_manifests(BASE_DIR)]
OVERLAY_OBJECTS = [obj for _, obj in load_manifests(KIND_OVERLAY_DIR)]
ALL_OBJECTS = [obj for _, obj in MANIFESTS]
MANIFEST_IDS = [doc_id for doc_id, _ in MANIFESTS]


def find(kind: str, name: str, objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    matches = [
        obj
        for obj in (ALL_OBJECTS if objects is None else objects)
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name
    ]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") in POD_TEMPLATE_KINDS:
        return obj["spec"]["template"]
    if obj.get("kind") == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    if obj.get("kind") == "Pod":
        return obj
    return None


def workloads(objects: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [obj for obj in (ALL_OBJECTS if objects is None else objects) if pod_template(obj)]


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_template(obj)["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in containers(obj) if c["name"] == name]
    assert len(matches) == 1, f"{object_id(obj)} has no single container {name!r}"
    return matches[0]


def template_labels(obj: dict[str, Any]) -> dict[str, str]:
    return pod_template(obj).get("metadata", {}).get("labels", {})


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


CONTAINERS = [
    (f"{object_id(obj)}:{c['name']}", obj, c) for obj in workloads() for c in containers(obj)
]


# --------------------------------------------------------------------------------------------
# Schema, labels, namespaces
# --------------------------------------------------------------------------------------------


def test_expected_objects_exist() -> None:
    found = {object_id(obj) for obj in ALL_OBJECTS}
    expected = {
        "Namespace/ttg",
        "PersistentVolumeClaim/ttg-redis-data",
        "Deployment/ttg-redis",
        "Service/ttg-redis",
        "ConfigMap/ttg-rabbitmq-config",
        "StatefulSet/ttg-rabbitmq",
        "Service/ttg-rabbitmq",
        "Service/ttg-rabbitmq-headless",
        "NetworkPolicy/ttg-redis-ingress",
        "NetworkPolicy/ttg-rabbitmq-ingress",
        "ConfigMap/ttg-worker-config",
        "Deployment/ttg-worker",
        "Service/ttg-redis-nodeport",
        "Service/ttg-rabbitmq-nodeport",
        "NetworkPolicy/ttg-redis-host-access",
        "NetworkPolicy/ttg-rabbitmq-host-access",
        "ServiceAccount/ttg-orchestrator",
        "Role/ttg-orchestrator",
        "RoleBinding/ttg-orchestrator",
        "ClusterRole/ttg-orchestrator",
        "ClusterRoleBinding/ttg-orchestrator",
    }
    assert expected <= found, f"missing: {sorted(expected - found)}"
    assert len(found) == len(ALL_OBJECTS), "an object is defined twice under k8s/"


def test_node_ports_only_in_kind_overlay() -> None:
    assert not [o for o in BASE_OBJECTS if o.get("spec", {}).get("type") == "NodePort"]
    overlay_nodeports = {
        o["metadata"]["name"] for o in OVERLAY_OBJECTS if o["spec"].get("type") == "NodePort"
    }
    assert overlay_nodeports == {"ttg-redis-nodeport", "ttg-rabbitmq-nodeport"}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize(("doc_id", "obj"), MANIFESTS, ids=MANIFEST_IDS)
def test_validates_against_kubernetes_schema(doc_id: str, obj: Any, version: str) -> None:
    assert isinstance(obj, dict), f"{doc_id}: not a mapping"
    try:
        kubernetes_validate.validate(obj, desired_version=version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path) or "<root>"
        pytest.fail(f"{doc_id}: {where}: {exc.message}")


@pytest.mark.parametrize(("doc_id", "obj"), MANIFESTS, ids=MANIFEST_IDS)
def test_ttg_labels(doc_id: str, obj: dict[str, Any]) -> None:
    label_sets = {"metadata": obj["metadata"].get("labels", {})}
    if pod_template(obj) is not None:
        label_sets["pod template"] = template_labels(obj)
    for claim in obj.get("spec", {}).get("volumeClaimTemplates", []):
        label_sets[f"volumeClaimTemplate {claim['metadata']['name']}"] = claim["metadata"].get(
            "labels", {}
        )
    for where, labels in label_sets.items():
        missing = [key for key in REQUIRED_LABELS if not labels.get(key)]
        assert not missing, f"{doc_id}: {where} lacks labels {missing}"
        assert labels[PART_OF] == "ttg", f"{doc_id}: {where}"
        assert labels["app.kubernetes.io/component"] in COMPONENTS, f"{doc_id}: {where}"
        for key in REQUIRED_LABELS:
            assert labels[key] == label_sets["metadata"][key], f"{doc_id}: {where}: {key}"


@pytest.mark.parametrize(("doc_id", "obj"), MANIFESTS, ids=MANIFEST_IDS)
def test_namespace(doc_id: str, obj: dict[str, Any]) -> None:
    namespace = obj["metadata"].get("namespace")
    if obj["kind"] in CLUSTER_SCOPED_KINDS:
        assert namespace is None, f"{doc_id}: cluster-scoped object with a namespace"
    else:
        assert namespace == NAMESPACE, f"{doc_id}: namespace {namespace!r}, not {NAMESPACE!r}"


# --------------------------------------------------------------------------------------------
# Selectors and references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("obj", workloads(), ids=[object_id(o) for o in workloads()])
def test_workload_selector_matches_pod_template(obj: dict[str, Any]) -> None:
    selector = obj["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, "use plain matchLabels selectors"
    match_labels = selector["matchLabels"]
    assert match_labels, "empty selector"
    assert selects(match_labels, template_labels(obj))
    # Selectors are immutable: they carry the stable identity labels, not part-of.
    assert PART_OF not in match_labels
    for other in workloads():
        if other is not obj:
            assert not selects(match_labels, template_labels(other)), (
                f"selector of {object_id(obj)} also matches {object_id(other)}"
            )


def test_services_select_exactly_one_workload_and_named_ports() -> None:
    for service in [o for o in ALL_OBJECTS if o["kind"] == "Service"]:
        selected = [
            w for w in workloads() if selects(service["spec"]["selector"], template_labels(w))
        ]
        assert len(selected) == 1, f"{object_id(service)} selects {len(selected)} workloads"
        port_names = {
            p["name"]: p["containerPort"]
            for c in containers(selected[0])
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (
                f"{object_id(service)}: targetPort {port['targetPort']!r} is no container port"
            )
            assert port_names[port["targetPort"]] == port["port"], object_id(service)


def test_references_resolve() -> None:
    from ttg_lib.cluster.kubernetes.credentials import generate_secret

    generated = generate_secret()  # the Secret is generated at deploy time, not committed

    def keys_of(kind: str, name: str) -> set[str]:
        obj = generated if (kind, name) == ("Secret", "ttg-broker-credentials") else find(
            kind, name)
        return set(obj.get("data", {})) | set(obj.get("stringData", {}))

    for obj in workloads():
        spec = pod_template(obj)["spec"]
        claim_templates = {
            c["metadata"]["name"] for c in obj["spec"].get("volumeClaimTemplates", [])
        }
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            if "configMap" in volume:
                find("ConfigMap", volume["configMap"]["name"])
            if "secret" in volume:
                find("Secret", volume["secret"]["secretName"])
            if "persistentVolumeClaim" in volume:
                find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        for c in containers(obj):
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claim_templates, (
                    f"{object_id(obj)}: mount {mount['name']!r} has no volume"
                )
                if "subPath" in mount and "configMap" in volumes.get(mount["name"], {}):
                    cm = volumes[mount["name"]]["configMap"]["name"]
                    assert mount["subPath"] in keys_of("ConfigMap", cm)
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    find("ConfigMap", source["configMapRef"]["name"])
                if "secretRef" in source:
                    find("Secret", source["secretRef"]["name"])
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    key_ref = ref["secretKeyRef"]
                    assert key_ref["key"] in keys_of("Secret", key_ref["name"]), env["name"]
                if "configMapKeyRef" in ref:
                    key_ref = ref["configMapKeyRef"]
                    assert key_ref["key"] in keys_of("ConfigMap", key_ref["name"]), env["name"]


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "ctr"), [(o, c) for _, o, c in CONTAINERS], ids=[i for i, _, _ in CONTAINERS]
)
def test_container_resources(obj: dict[str, Any], ctr: dict[str, Any]) -> None:
    resources = ctr.get("resources", {})
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert resources.get(section, {}).get(resource), f"no {section}.{resource}"


@pytest.mark.parametrize(
    ("obj", "ctr"), [(o, c) for _, o, c in CONTAINERS], ids=[i for i, _, _ in CONTAINERS]
)
def test_container_security_context(obj: dict[str, Any], ctr: dict[str, Any]) -> None:
    pod_ctx = pod_template(obj)["spec"].get("securityContext", {})
    ctx = ctr.get("securityContext", {})

    def effective(field: str) -> Any:
        return ctx.get(field, pod_ctx.get(field))

    uid, read_only_root = HARDENING[obj["metadata"]["name"]]
    assert effective("runAsNonRoot") is True
    assert effective("runAsUser") == uid
    assert ctx.get("allowPrivilegeEscalation") is False
    assert ctx.get("privileged") in (None, False)
    assert "ALL" in ctx.get("capabilities", {}).get("drop", [])
    assert not ctx.get("capabilities", {}).get("add")
    assert effective("seccompProfile") == {"type": "RuntimeDefault"}
    assert ctx.get("readOnlyRootFilesystem", False) is read_only_root
    assert pod_template(obj)["spec"].get("automountServiceAccountToken") is False
    assert pod_template(obj)["spec"].get("enableServiceLinks") is False


@pytest.mark.parametrize(
    ("obj", "ctr"), [(o, c) for _, o, c in CONTAINERS], ids=[i for i, _, _ in CONTAINERS]
)
def test_container_image_pinned(obj: dict[str, Any], ctr: dict[str, Any]) -> None:
    image = ctr["image"]
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{image}: no explicit tag"
    if obj["metadata"]["labels"]["app.kubernetes.io/component"] == "broker":
        assert tag != "latest", f"{image}: broker images are pinned"
    assert ctr.get("imagePullPolicy") == "IfNotPresent"


def test_brokers() -> None:
    redis = find("Deployment", "ttg-redis")
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["strategy"]["type"] == "Recreate"
    redis_ctr = container(redis, "redis")
    assert redis_ctr["image"] == "redis:7.2-alpine"
    args = redis_ctr["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert {m["mountPath"]: m["name"] for m in redis_ctr["volumeMounts"]}["/data"] == "data"
    data = {v["name"]: v for v in redis["spec"]["template"]["spec"]["volumes"]}["data"]
    claim = find("PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"

    rabbit = find("StatefulSet", "ttg-rabbitmq")
    assert rabbit["spec"]["replicas"] == 1
    assert rabbit["spec"]["serviceName"] == "ttg-rabbitmq-headless"
    assert find("Service", "ttg-rabbitmq-headless")["spec"]["clusterIP"] == "None"
    rabbit_ctr = container(rabbit, "rabbitmq")
    assert rabbit_ctr["image"] == "rabbitmq:3.13-management-alpine"
    mounts = {m["mountPath"]: m["name"] for m in rabbit_ctr["volumeMounts"]}
    templates = {c["metadata"]["name"]: c for c in rabbit["spec"]["volumeClaimTemplates"]}
    assert templates[mounts["/var/lib/rabbitmq"]]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"
    }
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in rabbit_ctr["env"]}
    for key in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
        assert env[key] == {"name": "ttg-broker-credentials", "key": key}
    ports = {p["name"]: p["containerPort"] for p in rabbit_ctr["ports"]}
    assert ports == {"amqp": 5672, "management": 15672}
    service_ports = {p["port"] for p in find("Service", "ttg-rabbitmq")["spec"]["ports"]}
    assert service_ports == {5672, 15672}
    assert {p["port"] for p in find("Service", "ttg-redis")["spec"]["ports"]} == {6379}
    for name in ("ttg-redis", "ttg-rabbitmq"):
        assert find("Service", name)["spec"].get("type", "ClusterIP") == "ClusterIP"


# --------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------


def test_worker_deployment() -> None:
    worker = find("Deployment", "ttg-worker")
    assert worker["spec"]["replicas"] == 3
    assert template_labels(worker)["app.kubernetes.io/component"] == "worker"
    spec = worker["spec"]["template"]["spec"]
    # A new run's pods start only once every pod of the previous run is gone (Recreate):
    # a leftover worker would dead-letter the new run's tasks as foreign.
    assert worker["spec"]["strategy"] == {"type": "Recreate"}
    assert spec["terminationGracePeriodSeconds"] == 10
    ctr = container(worker, "worker")
    assert ctr["image"] == "ttg-worker:latest"
    # under an init (tini, in the image): the worker is not PID 1 of its namespace
    assert ctr["command"] == ["tini", "--", "python", "-m", "ttg_lib.worker"]

    # Liveness and startup: the limit TTG_LIVENESS_S from the ConfigMap (no --max-age);
    # readiness: a fresh heartbeat and a worker that is not reconnecting (--ready).
    for probe, command in (("livenessProbe", HEALTH_COMMAND), ("startupProbe", HEALTH_COMMAND),
                           ("readinessProbe", [*HEALTH_COMMAND, "--max-age", "5", "--ready"])):
        assert probe in ctr, f"worker has no {probe}"
        assert ctr[probe]["exec"]["command"] == command, probe
        assert ctr[probe]["timeoutSeconds"] >= 2, f"{probe}: python start-up needs time"

    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be an emptyDir"
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True

    assert {"configMapRef": {"name": "ttg-worker-config"}} in ctr["envFrom"]
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in ctr["env"]}
    for key in ("TTG_REDIS_URL", "TTG_RABBITMQ_URL"):
        assert env[key] == {"name": "ttg-broker-credentials", "key": key}


def test_worker_config_and_broker_credentials() -> None:
    config = find("ConfigMap", "ttg-worker-config")["data"]
    assert config == {
        "TTG_BACKEND": "redis",
        "TTG_RUN_ID": "unset-run-id",
        "TTG_HEARTBEAT_FILE": "/tmp/ttg/heartbeat",
        "TTG_LIVENESS_S": "15",
        "TTG_KILL_ON_SIGTERM": "1",
    }
    assert config["TTG_HEARTBEAT_FILE"] == HEALTH_COMMAND[4]

    from ttg_lib.cluster.kubernetes.credentials import KEYS, generate_secret

    assert not [o for o in ALL_OBJECTS if o["kind"] == "Secret"], "no committed Secret"
    secret = generate_secret()
    assert secret["type"] == "Opaque"
    creds = secret["stringData"]
    assert set(creds) == set(KEYS)
    assert creds != generate_secret()["stringData"], "passwords are random"

    amqp = urlsplit(creds["TTG_RABBITMQ_URL"])
    assert unquote(amqp.username) == creds["RABBITMQ_DEFAULT_USER"]
    assert unquote(amqp.password) == creds["RABBITMQ_DEFAULT_PASS"]
    assert unquote(urlsplit(creds["TTG_REDIS_URL"]).password) == creds["REDIS_PASSWORD"]
    for url in (creds["TTG_REDIS_URL"], creds["TTG_RABBITMQ_URL"]):
        parts = urlsplit(url)
        service = find("Service", parts.hostname)
        assert parts.port in {p["port"] for p in service["spec"]["ports"]}, url


# --------------------------------------------------------------------------------------------
# NetworkPolicy
# --------------------------------------------------------------------------------------------


def policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def broker_ports(obj: dict[str, Any]) -> set[int]:
    return {p["containerPort"] for c in containers(obj) for p in c.get("ports", [])}


def test_base_policies_admit_only_ttg_pods_to_brokers() -> None:
    brokers = [
        w
        for w in workloads(BASE_OBJECTS)
        if w["metadata"]["labels"]["app.kubernetes.io/component"] == "broker"
    ]
    assert {object_id(b) for b in brokers} == {"Deployment/ttg-redis", "StatefulSet/ttg-rabbitmq"}
    for broker in brokers:
        covering = [
            p
            for p in policies(BASE_OBJECTS)
            if selects(p["spec"]["podSelector"]["matchLabels"], template_labels(broker))
        ]
        assert covering, f"no NetworkPolicy selects {object_id(broker)}"
        allowed_ports: set[int] = set()
        for policy in covering:
            assert "Ingress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("ingress", []):
                assert rule["from"] == [{"podSelector": {"matchLabels": {PART_OF: "ttg"}}}], (
                    f"{object_id(policy)}: base admits only part-of=ttg pods of this namespace"
                )
                allowed_ports |= {p["port"] for p in rule["ports"]}
        assert allowed_ports == broker_ports(broker), object_id(broker)


def test_kind_overlay_admits_host_traffic_on_broker_ports() -> None:
    # kindnetd matches pod IPs against ipBlocks too: the pod network must be excepted, or
    # every pod of every namespace reaches the brokers.
    (config,) = load_documents(KIND_CONFIG)
    pod_subnet = config["networking"]["podSubnet"]
    admitted: set[int] = set()
    for policy in policies(OVERLAY_OBJECTS):
        for rule in policy["spec"]["ingress"]:
            assert rule["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [pod_subnet]}}]
            admitted |= {p["port"] for p in rule["ports"]}
    assert admitted == {pod_port for _, pod_port in NODE_PORTS.values()}


# --------------------------------------------------------------------------------------------
# Kustomize layout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    kustomization_files(),
    ids=[str(p.relative_to(REPO_ROOT)) for p in kustomization_files()],
)
def test_kustomization_resources_exist_and_cover_directory(path: Path) -> None:
    (kustomization,) = load_documents(path)
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert resources, f"{path}: empty resources"
    assert len(resources) == len(set(resources)), f"{path}: duplicate resources"
    for entry in resources:
        target = (path.parent / entry).resolve()
        assert target.exists(), f"{path}: {entry} does not exist"
        if target.is_dir():
            assert any((target / n).is_file() for n in KUSTOMIZATION_NAMES), (
                f"{path}: {entry} is a directory without a kustomization"
            )
    listed = {(path.parent / e).resolve() for e in resources}
    for manifest in path.parent.glob("*.y*ml"):
        if manifest.name not in KUSTOMIZATION_NAMES:
            assert manifest.resolve() in listed, f"{path}: {manifest.name} is not listed"


def test_base_kustomization_only_lists_files() -> None:
    (kustomization,) = load_documents(BASE_DIR / "kustomization.yaml")
    assert set(kustomization) == {"apiVersion", "kind", "resources"}, (
        "the base must not rely on kustomize transformers"
    )


def test_kind_overlay_kustomization() -> None:
    (kustomization,) = load_documents(KIND_OVERLAY_DIR / "kustomization.yaml")
    assert "../../base" in kustomization["resources"]
    assert {"name": "ttg-worker", "newTag": "dev"} in kustomization["images"]
    base_images = {c["image"] for w in workloads(BASE_OBJECTS) for c in containers(w)}
    assert "ttg-worker:latest" in base_images


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.skipif(kustomize_command() is None, reason="neither kustomize nor kubectl on PATH")
def test_kustomize_build_of_kind_overlay_matches_plain_files() -> None:
    """Rendering the overlay gives the same objects as applying the YAML files one by one,
    except for the worker image, which the overlay sets to ttg-worker:dev."""
    result = subprocess.run(
        [*kustomize_command(), str(KIND_OVERLAY_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    expected = BASE_OBJECTS + OVERLAY_OBJECTS
    assert sorted(object_id(o) for o in rendered) == sorted(object_id(o) for o in expected)
    for obj in rendered:
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(obj, desired_version=version, strict=True)
        source = find(obj["kind"], obj["metadata"]["name"], expected)
        if object_id(obj) == "Deployment/ttg-worker":
            ctr = container(obj, "worker")
            assert ctr["image"] == "ttg-worker:dev"
            assert ctr["imagePullPolicy"] == "IfNotPresent"
            ctr["image"] = container(source, "worker")["image"]
        assert obj == source, f"kustomize changes {object_id(obj)}"


@pytest.mark.skipif(kustomize_command() is None, reason="neither kustomize nor kubectl on PATH")
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_kustomize_build_of_rbac_validates(version: str) -> None:
    result = subprocess.run([*kustomize_command(), str(RBAC_DIR)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    assert sorted(object_id(o) for o in rendered) == sorted(
        object_id(o) for _, o in load_manifests(RBAC_DIR))
    for obj in rendered:
        kubernetes_validate.validate(obj, desired_version=version, strict=True)


# --------------------------------------------------------------------------------------------
# kind
# --------------------------------------------------------------------------------------------


def test_kind_config() -> None:
    (config,) = load_documents(KIND_CONFIG)
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["name"] == "ttg"
    roles = [node["role"] for node in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") == 3
    assert len(roles) == 4

    images = {node.get("image") for node in config["nodes"]}
    assert len(images) == 1, "all nodes run the same node image"
    (image,) = images
    assert image.startswith(f"kindest/node:v{KUBERNETES_VERSION}."), image
    assert "@sha256:" in image, "node image pinned by digest"


def test_kind_port_mappings_match_node_port_services() -> None:
    (config,) = load_documents(KIND_CONFIG)
    (control_plane,) = [n for n in config["nodes"] if n["role"] == "control-plane"]
    mappings = control_plane["extraPortMappings"]
    assert {m["containerPort"] for m in mappings} == set(NODE_PORTS)
    for mapping in mappings:
        assert mapping["hostPort"] == mapping["containerPort"]
        assert mapping["listenAddress"] == "127.0.0.1", "publish on the host's loopback only"
        assert mapping.get("protocol", "TCP") == "TCP"
    assert not [n for n in config["nodes"] if n["role"] == "worker" and "extraPortMappings" in n]

    for node_port, (service_name, pod_port) in NODE_PORTS.items():
        service = find("Service", service_name, OVERLAY_OBJECTS)
        assert service["spec"]["type"] == "NodePort"
        (port,) = [p for p in service["spec"]["ports"] if p.get("nodePort") == node_port]
        (workload,) = [
            w for w in workloads() if selects(service["spec"]["selector"], template_labels(w))
        ]
        named = {p["name"]: p["containerPort"] for c in containers(workload) for p in c["ports"]}
        assert named[port["targetPort"]] == pod_port, service_name


# --------------------------------------------------------------------------------------------
# Credentials, probes
# --------------------------------------------------------------------------------------------


def test_no_password_is_committed() -> None:
    """`grep -rn "change-me\\|password" k8s/ kind/` finds nothing."""
    for path in [*K8S_DIR.rglob("*.yaml"), *KIND_CONFIG.parent.rglob("*.yaml")]:
        text = path.read_text()
        assert "change-me" not in text and "password" not in text, path


def test_redis_requires_the_generated_password() -> None:
    redis = find("Deployment", "ttg-redis")
    ctr = container(redis, "redis")
    assert ctr["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in ctr["env"]}
    # REDISCLI_AUTH: the probes' redis-cli authenticates without the secret in its argv
    assert env == {name: {"name": "ttg-broker-credentials", "key": "REDIS_PASSWORD"}
                   for name in ("REDIS_PASSWORD", "REDISCLI_AUTH")}


def test_readiness_rejects_a_reconnecting_worker(tmp_path: Path, monkeypatch) -> None:
    """A worker that cannot reach its broker is alive (no restart) but not ready."""
    import json
    import time

    from click.testing import CliRunner

    from ttg_lib.commands.health import health

    def probe(*args: str) -> int:
        return CliRunner().invoke(health, list(args)).exit_code

    beat = tmp_path / "heartbeat"
    beat.write_text(json.dumps({"state": "reconnecting", "last_heartbeat": time.time()}))
    assert probe("--file", str(beat)) == 0  # liveness
    assert probe("--file", str(beat), "--max-age", "5", "--ready") == 1
    beat.write_text(json.dumps({"state": "idle", "last_heartbeat": time.time() - 20}))
    monkeypatch.setenv("TTG_LIVENESS_S", "30")  # the ConfigMap's limit, read by the probe
    assert probe("--file", str(beat)) == 0
    monkeypatch.setenv("TTG_LIVENESS_S", "10")
    assert probe("--file", str(beat)) == 1


def test_rbac_is_least_privilege() -> None:
    """Only what the provider uses; never secrets or pods beyond its namespace, never
    escalate/bind/impersonate, no wildcards."""
    (role,) = [o for _, o in load_manifests(RBAC_DIR) if o["kind"] == "Role"]
    (cluster_role,) = [o for _, o in load_manifests(RBAC_DIR) if o["kind"] == "ClusterRole"]
    assert role["metadata"]["namespace"] == NAMESPACE
    for rule in role["rules"] + cluster_role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate", "update", "delete"} & set(rule["verbs"])
    assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {
        "namespaces", "nodes"}
    pods = [rule for rule in role["rules"] if rule["resources"] == ["pods"]]
    assert pods and "exec" not in str(role["rules"])


# --------------------------------------------------------------------------------------------
# The worker image (Dockerfile, pyproject's worker extra) and what the docs say of it
# --------------------------------------------------------------------------------------------
DOCKERFILE = REPO_ROOT / "Dockerfile"


def _pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    import re

    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def test_worker_extra_is_the_dependencies_without_the_orchestrators() -> None:
    """Workers write no Parquet (pyarrow), read no table back (pandas) and draw no progress
    bar (rich); every other dependency is the worker's too, and a new one must be put on one
    side or the other."""
    orchestrator = {"pyarrow", "rich", "pandas"}
    project = _pyproject()["project"]
    worker = project["optional-dependencies"]["worker"]
    core = [r for r in project["dependencies"] if _name(r) not in orchestrator]
    assert set(core) <= set(worker), "a dependency the workers need is not in the worker extra"
    assert not orchestrator & {_name(r) for r in worker}
    # beyond the project's own: only cloudpickle, which functions shipped by value need
    assert {_name(r) for r in worker} - {_name(r) for r in core} <= {"cloudpickle"}


def test_the_image_installs_the_worker_extra_not_the_project_dependencies() -> None:
    text = DOCKERFILE.read_text()
    assert "pip install --no-index --find-links /wheels --no-deps /wheels/ttg-*.whl" in text
    assert "-r /wheels/worker-requirements.txt" in text
    assert "not u.find_spec('pyarrow')" in text  # the build fails if pyarrow came in
    # The stage-1 snippet that writes worker-requirements.txt, run here on this pyproject.
    joined = text.replace("\\\n", "")
    start = joined.index('python -c "import tomllib')
    snippet = joined[start + len('python -c "'):joined.index('" >', start)]
    out = subprocess.run([sys.executable, "-c", snippet], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == _pyproject()["project"]["optional-dependencies"]["worker"]


def test_dockerfile_dependency_comment_names_the_worker_extra() -> None:
    header = DOCKERFILE.read_text().split("ARG PYTHON_IMAGE")[0]
    for requirement in _pyproject()["project"]["optional-dependencies"]["worker"]:
        assert _name(requirement).split("[")[0] in header.lower(), requirement
    assert "`worker`" in header and "pyarrow" in header  # and why pyarrow is left out


def test_the_image_runs_the_worker_under_tini() -> None:
    text = DOCKERFILE.read_text()
    assert "apt-get install -y --no-install-recommends tini" in text
    assert 'ENTRYPOINT ["tini", "--", "python", "-m", "ttg_lib.worker"]' in text


def test_kind_overlay_builds_with_the_dockerfile_header_flags() -> None:
    """kind#3795: an attestation makes `kind load` fail with the containerd image store."""
    (build,) = [line.lstrip("# ").strip() for line in DOCKERFILE.read_text().splitlines()[:6]
                if "docker buildx build" in line]
    overlay = (KIND_OVERLAY_DIR / "kustomization.yaml").read_text()
    assert build in overlay
    assert "docker build " not in overlay


def test_readme_liveness_limit_is_the_one_the_pods_get() -> None:
    """A run puts its --liveness-s (3 s by default) into the worker ConfigMap; the
    manifest's 15 s only applies without TTG."""
    from ttg_lib.config import RunConfig

    readme = (REPO_ROOT / "README.md").read_text()
    default = f"{RunConfig().liveness_s:g} s"
    assert f"`--liveness-s` ({default} by default)" in readme
    assert "liveness limit is `TTG_LIVENESS_S` in the worker ConfigMap (15 s)" not in readme


def test_readme_says_other_pods_reach_the_brokers_through_a_nodeport() -> None:
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert "any pod can reach a broker through a node's IP and its NodePort" in readme
    assert "Only TTG's pods may reach the brokers" not in readme


def test_worker_entry_points_run_without_the_orchestrators_dependencies() -> None:
    """The image has no pyarrow, rich or kubernetes: the worker, its probe and the preflight
    check must not import them."""
    probe = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'pyarrow', 'rich', 'kubernetes', 'pandas'}:\n"
        "            raise ImportError(f'{name} is not in the worker image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ttg_lib.worker, ttg_lib.health, ttg_lib.commands.worker\n"
        "from ttg_lib.cluster import check\n"
        "sys.exit(check.main(['ttg_lib.compute:placeholder']))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"ok": true' in done.stdout
