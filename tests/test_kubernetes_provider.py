"""The Kubernetes provider at the API boundary: the REAL kubernetes client against a local
HTTP stand-in of the API server (tests/k8s_standin.py), so every assertion is about the
requests that would reach a cluster. No cluster, Docker or broker is needed (none is used).
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest
from conftest import require_package

pytestmark = pytest.mark.slow  # a stand-in API server whose kubelet runs real processes

require_package("kubernetes", "the k8s extra is not installed (pip install 'ttg[k8s]')")

import k8s_standin as standin  # noqa: E402
from k8s_fixtures import client_on, served, served_live  # noqa: E402
from k8s_fixtures import make_cluster as shared_make_cluster  # noqa: E402
from k8s_standin import FakeKube, Request  # noqa: E402
from polling import wait_for  # noqa: E402

from ttg_lib.cleanup import CleanupReport  # noqa: E402
from ttg_lib.cluster import kind as ttg_kind  # noqa: E402
from ttg_lib.cluster.base import ClusterError  # noqa: E402
from ttg_lib.cluster.kubernetes import (  # noqa: E402
    NAMESPACE,
    TTG_SELECTOR,
    KubernetesCluster,
    cleanup_kubernetes,
    dry_run_plan,
    format_plan,
)
from ttg_lib.cluster.kubernetes.labels import PART_OF, RUN_LABEL  # noqa: E402
from ttg_lib.cluster.kubernetes.manifests import check_ours, render_objects  # noqa: E402
from ttg_lib.config import RunConfig  # noqa: E402

RUN_ID = "20250101-000000-redis-abc123"


@pytest.fixture
def fake():
    yield from served()


@pytest.fixture
def api_client(fake):
    yield from client_on(fake)


def make_cluster(api_client, **kwargs) -> KubernetesCluster:
    return shared_make_cluster(api_client, **{"run_id": RUN_ID, "workers": 3, **kwargs})


@pytest.fixture
def cluster(api_client):
    c = make_cluster(api_client)
    yield c
    c.stop(timeout=1)


def body_labels(req: Request) -> dict[str, str]:
    return ((req.body or {}).get("metadata") or {}).get("labels") or {}


def path_namespace(req: Request) -> str | None:
    parts = req.path.split("/")
    if "namespaces" in parts:
        i = parts.index("namespaces")
        return parts[i + 1] if len(parts) > i + 1 else None
    return None


def writes(fake: FakeKube) -> list[Request]:
    return [r for r in fake.calls() if r.method in ("POST", "PATCH", "PUT")]


# -- applying -----------------------------------------------------------------------
def test_creates_only_ttg_labelled_objects_in_namespace_ttg(fake, cluster):
    url = cluster.ensure_brokers(timeout=5)
    cluster.start_workers(3)
    cluster.wait_ready(3, timeout=5)

    # the Kind NodePort, published on loopback; the password generated at deploy time
    assert re.fullmatch(r"redis://:[\w-]{32}@127\.0\.0\.1:30379/0", url)
    assert re.fullmatch(r"amqp://ttg:[\w-]{32}@127\.0\.0\.1:30672/%2F",
                        cluster.broker_url_for("rabbitmq"))
    creates = [r for r in fake.calls("POST")] + [r for r in fake.calls("PATCH")
                                                 if not r.path.endswith("/scale")]
    assert creates, "nothing was created"
    for req in writes(fake):
        if req.path.endswith("/scale"):
            continue
        assert body_labels(req).get(PART_OF) == "ttg", req
        if req.body["kind"] == "Namespace":
            assert req.body["metadata"]["name"] == NAMESPACE
        else:
            assert path_namespace(req) == NAMESPACE, req
            assert req.body["metadata"]["namespace"] == NAMESPACE
    created = {(r.body["kind"], r.body["metadata"]["name"]) for r in creates}
    expected = {(o["kind"], o["metadata"]["name"]) for o in render_objects(
        flavor="kind", backend="redis", run_id=RUN_ID, workers=3)}
    expected.add(("Secret", "ttg-broker-credentials"))
    assert created == expected
    assert ("Service", "ttg-redis-nodeport") in created  # the Kind overlay is applied

    config = fake.get("configmaps", NAMESPACE, "ttg-worker-config")
    assert config["data"]["TTG_BACKEND"] == "redis"
    assert config["data"]["TTG_RUN_ID"] == RUN_ID
    assert config["metadata"]["labels"][RUN_LABEL] == RUN_ID
    deployment = fake.get("deployments", NAMESPACE, "ttg-worker")
    assert deployment["spec"]["replicas"] == 3
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"][RUN_LABEL] == RUN_ID
    assert template["spec"]["containers"][0]["image"] == "ttg-worker:dev"
    assert template["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_liveness_limit_reaches_the_worker_configmap(fake, api_client):
    """One limit for local workers and pods: the probes read TTG_LIVENESS_S."""
    c = make_cluster(api_client, liveness_s=6.0)
    c.apply([o for o in c.objects() if o["kind"] == "Namespace"])
    c.apply([o for o in c.objects() if o["metadata"]["name"] == "ttg-worker-config"])
    assert fake.get("configmaps", NAMESPACE, "ttg-worker-config")["data"]["TTG_LIVENESS_S"] == "6"
    default = render_objects(flavor="kind", backend="redis", run_id=RUN_ID, workers=1)
    (config,) = [o for o in default if o["metadata"]["name"] == "ttg-worker-config"]
    assert config["data"]["TTG_LIVENESS_S"] == "15"


def test_rabbitmq_backend_sets_configmap_and_url(fake, api_client):
    c = make_cluster(api_client, backend="rabbitmq", workers=2)
    try:
        assert re.fullmatch(r"amqp://ttg:[\w-]{32}@127\.0\.0\.1:30672/%2F",
                            c.ensure_brokers(timeout=5))
        # unacked counts come from the cluster's management API, not the host's 15672
        assert os.environ["TTG_RABBITMQ_MANAGEMENT_URL"] == "http://127.0.0.1:31672"
        c.release_brokers()
        assert "TTG_RABBITMQ_MANAGEMENT_URL" not in os.environ
        c.start_workers(2)
        c.wait_ready(2, timeout=5)
        assert fake.get("configmaps", NAMESPACE, "ttg-worker-config")["data"][
            "TTG_BACKEND"] == "rabbitmq"
        assert len(c.live_workers()) == 2
    finally:
        c.stop(timeout=1)


def test_reapply_patches_ttg_objects_but_keeps_secret_and_pvc(fake, cluster, api_client):
    cluster.ensure_brokers(timeout=5)
    fake.requests.clear()
    again = make_cluster(api_client, run_id="second-run")
    done = again.apply(again.objects())
    patched = [r for r in fake.calls("PATCH")]
    assert patched and all(r.content_type == "application/apply-patch+yaml"
                           and r.query["fieldManager"] == "ttg" and r.query["force"] == "true"
                           for r in patched)
    patched_paths = {r.path for r in patched}
    assert not any("/secrets/" in p or "/persistentvolumeclaims/" in p for p in patched_paths)
    first = fake.get("secrets", NAMESPACE, "ttg-broker-credentials")["stringData"]
    assert again.ensure_secret() == "kept Secret ttg/ttg-broker-credentials (exists)"
    assert again.credentials() == first  # the generated passwords are reused by the next run
    assert not [r for r in done if "Secret" in r]
    assert fake.get("configmaps", NAMESPACE, "ttg-worker-config")["data"][
        "TTG_RUN_ID"] == "second-run"


def test_never_modifies_an_object_that_is_not_ttgs(fake, cluster):
    foreign = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "ttg-worker-config", "namespace": NAMESPACE,
                            "labels": {"owner": "someone-else"}},
               "data": {"keep": "me"}}
    fake.put(foreign)
    with pytest.raises(ClusterError, match="ConfigMap ttg/ttg-worker-config exists but is not "
                                           "TTG's"):
        cluster.start_workers(3)
    assert fake.get("configmaps", NAMESPACE, "ttg-worker-config")["data"] == {"keep": "me"}
    assert not [r for r in fake.calls("PATCH") if "configmaps" in r.path]


def test_refuses_objects_outside_ttg_or_unlabelled():
    obj = {"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default",
                                             "labels": {PART_OF: "ttg"}}}
    with pytest.raises(ClusterError, match="outside namespace ttg"):
        check_ours(obj)
    obj["metadata"].update(namespace=NAMESPACE, labels={})
    with pytest.raises(ClusterError, match="not labelled app.kubernetes.io/part-of=ttg"):
        check_ours(obj)
    with pytest.raises(ClusterError, match="TTG applies only"):
        check_ours({"kind": "ClusterRole", "metadata": {"name": "x"}})


# -- selectors -------------------------------------------------------------------------
def test_every_list_and_delete_uses_the_ttg_label_selector(fake, cluster, api_client):
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(3)
    cluster.wait_ready(3, timeout=5)
    cluster.kill_worker()
    wait_for(lambda: any(e["event"] == "replaced" for e in cluster.events()))
    victim = cluster.live_workers()[0].name
    assert list(cluster.stream_logs(victim))
    cluster.health()
    cluster.stop(timeout=2)
    report = CleanupReport(dry_run=False)
    cleanup_kubernetes(report=report, api_client=api_client)

    lists = [r for r in fake.calls("GET") if r.is_collection and r.plural != "nodes"]
    deletes = fake.calls("DELETE")
    assert lists and deletes
    for req in lists + deletes:
        assert TTG_SELECTOR in req.query.get("labelSelector", "").split(","), req
    assert all(r.is_collection for r in deletes), "a delete by name bypasses the selector"
    watches = [r for r in lists if r.query.get("watch") in ("true", "True")]
    assert watches and all(f"{RUN_LABEL}={RUN_ID}" in r.query["labelSelector"]
                           for r in watches)


# -- faults, readiness, stop -------------------------------------------------------------
def test_fault_injection_deletes_exactly_one_worker_pod_with_grace_zero(fake, cluster):
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(3)
    cluster.wait_ready(3, timeout=5)
    brokers_before = [n for n in fake.names("pods", NAMESPACE) if "worker" not in n]
    workers_before = [n for n in fake.names("pods", NAMESPACE) if "worker" in n]
    assert len(workers_before) == 3
    fake.requests.clear()

    victim = cluster.kill_worker()

    deletes = fake.calls("DELETE")
    assert len(deletes) == 1
    (req,) = deletes
    assert req.path == f"/api/v1/namespaces/{NAMESPACE}/pods"
    assert req.query["fieldSelector"] == f"metadata.name={victim.name}"
    assert req.query["gracePeriodSeconds"] == "0"
    assert req.body["gracePeriodSeconds"] == 0
    assert req.query["labelSelector"].split(",") == [
        TTG_SELECTOR, "app.kubernetes.io/component=worker", f"{RUN_LABEL}={RUN_ID}"]
    after = fake.names("pods", NAMESPACE)
    assert victim.name not in after
    assert set(workers_before) - {victim.name} <= set(after)
    assert set(brokers_before) <= set(after)
    replaced = wait_for(lambda: [e for e in cluster.events() if e["event"] == "replaced"])
    events = [e["event"] for e in cluster.events()]
    assert events.index("killed") < events.index("replaced")
    assert replaced[0]["detail"].startswith(f"replaces {victim.name}")
    cluster.wait_ready(3, timeout=5)
    states = {w.name: w.state for w in cluster.workers()}
    assert states[victim.name] == "dead"
    assert sum(1 for s in states.values() if s == "running") == 3


def test_kill_unknown_worker_is_a_clear_error(fake, cluster):
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(2)
    cluster.wait_ready(2, timeout=5)
    with pytest.raises(ClusterError, match="no live worker pod named 'nope'"):
        cluster.kill_worker("nope")
    assert not fake.calls("DELETE")


def test_worker_readiness_timeout_names_the_unready_pods(fake, cluster):
    cluster.ensure_brokers(timeout=5)
    fake.set_pods_ready(False)
    cluster.start_workers(2)
    with pytest.raises(ClusterError) as err:
        cluster.wait_ready(2, timeout=0.3)
    message = str(err.value)
    assert message.startswith("workers not ready after 0.3s: deployment ttg/ttg-worker has "
                              "0/2 ready pods")
    for name in (n for n in fake.names("pods", NAMESPACE) if n.startswith("ttg-worker")):
        assert f"pod {name}: Pending, not scheduled: Unschedulable" in message


def test_broker_readiness_timeout_names_the_broker(fake, cluster):
    fake.set_pods_ready(False)
    with pytest.raises(ClusterError) as err:
        cluster.ensure_brokers(timeout=0.3)
    message = str(err.value)
    assert "brokers not ready after 0.3s: deployment ttg/ttg-redis 0/1 ready" in message
    assert "Insufficient cpu" in message


def test_stop_scales_the_worker_deployment_to_zero(fake, cluster):
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(3)
    cluster.wait_ready(3, timeout=5)
    fake.requests.clear()
    cluster.stop(timeout=2)
    scale = [r for r in fake.calls("PATCH") if r.path.endswith("/deployments/ttg-worker/scale")]
    assert len(scale) == 1 and scale[0].body == {"spec": {"replicas": 0}}
    assert not fake.calls("DELETE")
    assert fake.get("deployments", NAMESPACE, "ttg-worker") is not None
    assert not [n for n in fake.names("pods", NAMESPACE) if n.startswith("ttg-worker")]
    assert sum(1 for e in cluster.events() if e["event"] == "stopped") == 3
    assert fake.get("deployments", NAMESPACE, "ttg-redis") is not None  # brokers stay


def test_logs_and_health(fake, cluster):
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(2)
    cluster.wait_ready(2, timeout=5)
    worker = cluster.live_workers()[0]
    assert worker.node.startswith("ttg-worker")
    assert list(cluster.stream_logs(worker.name)) == [f"{worker.name} started",
                                                      f"{worker.name} chunk 0 done"]
    with pytest.raises(ClusterError, match="no TTG worker pod named 'other'"):
        list(cluster.stream_logs("other"))
    health = cluster.health()
    assert len(health["nodes"]) == 4 and all(n["ready"] for n in health["nodes"])
    assert {p["component"] for p in health["pods"]} == {"broker", "worker"}


def test_unreachable_api_is_a_clear_error(tmp_path):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: nothing listens
    configuration.retries = 0
    api = client.ApiClient(configuration)
    c = make_cluster(api)
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API at "
                                           "http://127.0.0.1:9"):
        c.start_workers(1)
    report = CleanupReport(dry_run=False)
    cleanup_kubernetes(report=report, api_client=api)
    assert report.skipped and "cannot reach the Kubernetes API" in report.skipped[0]


def test_missing_kubeconfig_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("TTG_KUBE_CONTEXT", raising=False)
    c = KubernetesCluster(flavor="kind", run_id="x")
    with pytest.raises(ClusterError, match="cannot load kubeconfig .*create the Kind cluster "
                                           "first"):
        c.start_workers(1)
    report = CleanupReport(dry_run=True)
    cleanup_kubernetes(report=report)
    assert report.skipped and report.skipped[0].startswith("kubernetes: cannot load kubeconfig")


# -- cleanup -------------------------------------------------------------------------------
def test_cleanup_deletes_only_ttg_labelled_objects(fake, cluster, api_client):
    fake.put({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "bystander", "namespace": "other"},
              "spec": {"containers": [{"name": "c", "image": "pause"}]}, "status": {}})
    fake.put({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "user-config", "namespace": NAMESPACE}, "data": {}})
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(2)
    cluster.wait_ready(2, timeout=5)

    dry = CleanupReport(dry_run=True)
    cleanup_kubernetes(dry_run=True, report=dry, api_client=api_client)
    assert not fake.calls("DELETE")
    assert any("Deployment ttg/ttg-worker" in line for line in dry.removed)

    run_only = CleanupReport(dry_run=False)
    cleanup_kubernetes(run_id=RUN_ID, report=run_only, api_client=api_client)
    assert fake.get("deployments", NAMESPACE, "ttg-worker") is None
    assert fake.get("deployments", NAMESPACE, "ttg-redis") is not None  # not this run's
    assert all(RUN_LABEL + "=" in r.query["labelSelector"] for r in fake.calls("DELETE"))

    report = CleanupReport(dry_run=False)
    cleanup_kubernetes(report=report, api_client=api_client)
    left = {(p, n) for (p, s, n) in fake.objects if s == NAMESPACE}
    assert left == {("configmaps", "user-config")}
    assert fake.get("pods", "other", "bystander") is not None
    assert fake.get("namespaces", "", NAMESPACE) is not None
    assert any("Namespace ttg: kept" in line for line in report.skipped)
    assert sorted(dry.removed) == sorted(run_only.removed + report.removed)


# -- dry run -------------------------------------------------------------------------------
def test_dry_run_plan_lists_every_operation(monkeypatch, tmp_path, fake, api_client):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # planning needs no cluster
    config = RunConfig.build(cluster="kind", backend="redis", workers=3, fault_demo=True,
                             run_id=RUN_ID, output_dir=str(tmp_path))
    plan = dry_run_plan(config)
    for op in plan:
        assert set(op) >= {"verb", "kind", "name", "namespace", "labels"}
        if op["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert op["namespace"] == NAMESPACE
    applies = [op for op in plan if op["verb"] in ("create-if-absent", "server-side-apply")]
    assert all(op["labels"].get(PART_OF) == "ttg" for op in applies)
    for op in plan:
        if op["verb"] in ("list", "watch", "deletecollection"):
            assert TTG_SELECTOR in op["selector"].split(",")
            assert op["labels"][PART_OF] == "ttg"
    fault = [op for op in plan if op["verb"] == "deletecollection" and op["step"] == "fault"]
    assert len(fault) == 1 and "gracePeriodSeconds=0" in fault[0]["detail"]
    assert "HARD KILL" in fault[0]["detail"] and "TTG_KILL_ON_SIGTERM=1" in fault[0]["detail"]
    rbac = {(op["kind"], op["name"]) for op in plan if op["step"] == "rbac"}
    assert rbac == {(k, "ttg-orchestrator") for k in ("ServiceAccount", "Role", "RoleBinding",
                                                      "ClusterRole", "ClusterRoleBinding")}
    assert all(op["verb"] == "not applied by TTG" for op in plan if op["step"] == "rbac")
    assert any(op["verb"] == "patch" and op["kind"] == "Deployment/scale" for op in plan)

    # The plan names exactly the objects a real run creates.
    c = make_cluster(api_client)
    try:
        c.ensure_brokers(timeout=5)
        c.start_workers(3)
    finally:
        c.stop(timeout=1)
    created = [(r.body["kind"], r.body["metadata"]["name"]) for r in fake.calls()
               if r.method == "POST" or (r.method == "PATCH" and not r.path.endswith("/scale"))]
    assert created == [(op["kind"], op["name"]) for op in applies]

    text = format_plan(plan, config)
    assert "context kind-ttg" in text
    for op in applies:
        assert f"{op['kind']} " in text and op["name"] in text
    assert "labelSelector: app.kubernetes.io/part-of=ttg" in text
    assert "replicas=3, image ttg-worker:dev" in text


def test_make_cluster_builds_the_kind_provider_without_api_calls(tmp_path):
    from ttg_lib.run import make_cluster as run_make_cluster  # = cluster.registry

    config = RunConfig.build(cluster="kind", run_id="mk-1", output_dir=str(tmp_path))
    c = run_make_cluster(config, config.broker_url)
    assert isinstance(c, KubernetesCluster)
    assert (c.flavor, c.context, c.worker_selector.split(",")[-1]) == (
        "kind", "kind-ttg", f"{RUN_LABEL}=mk-1")
    k8s = KubernetesCluster.for_run(RunConfig.build(
        cluster="k8s", kube_context="prod", image="registry.example.com/ttg-worker:1.0",
        run_id="mk-2", output_dir=str(tmp_path)))
    assert (k8s.flavor, k8s.context) == ("k8s", "prod")
    container = k8s.objects()[-1]["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == (
        "registry.example.com/ttg-worker:1.0", "Always")


# -- kind / docker CLIs ------------------------------------------------------------------
def _fake_tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_missing_docker_and_kind_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither tool on PATH
    with pytest.raises(ClusterError) as err:
        ttg_kind.require("docker", "kind")
    message = str(err.value)
    assert "docker: MISSING - the docker CLI is not on PATH" in message
    assert "https://docs.docker.com/engine/install/" in message
    assert "kind: MISSING - the kind CLI is not on PATH" in message
    assert "kind.sigs.k8s.io" in message
    for action in (ttg_kind.create_cluster, ttg_kind.delete_cluster, ttg_kind.build_image,
                   ttg_kind.load_image):
        with pytest.raises(ClusterError, match="MISSING"):
            action()
    lines = ttg_kind.provision("status")  # never raises: the notebook's default action
    assert any("docker and kind missing" in line for line in lines)


def test_docker_without_engine_is_detected_by_docker_info(monkeypatch, tmp_path):
    _fake_tool(tmp_path, "docker", 'echo "Cannot connect to the Docker daemon at '
                                   'unix:///var/run/docker.sock" >&2; exit 1')
    _fake_tool(tmp_path, "kind", 'echo "kind v0.24.0 go1.22 linux/amd64"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    docker, kind = ttg_kind.check_tools()
    assert not docker.ok and "`docker info` failed" in docker.detail
    assert "Cannot connect to the Docker daemon" in docker.detail
    assert kind.ok
    with pytest.raises(ClusterError, match="docker: MISSING"):
        ttg_kind.up()


def test_delete_cluster_refuses_a_cluster_ttg_did_not_create(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _fake_tool(bin_dir, "docker", f'echo "docker $*" >> {log}\n'
                                  'case "$1" in info) echo 27.0.3;; inspect) echo cp-id-2;; esac')
    _fake_tool(bin_dir, "kind", f'echo "kind $*" >> {log}\n'
                                'case "$1" in get) echo ttg;; version) echo kind v0.24.0;; esac')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("TTG_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(ClusterError, match="was not created by TTG"):
        ttg_kind.delete_cluster()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kind-ttg.json").write_text('{"control_plane_id": "cp-id-1"}')
    with pytest.raises(ClusterError, match="was not created by TTG"):
        ttg_kind.delete_cluster()  # same name, but another cluster than the one TTG made
    assert "kind delete" not in log.read_text()
    (tmp_path / "state" / "kind-ttg.json").write_text('{"control_plane_id": "cp-id-2"}')
    assert ttg_kind.delete_cluster() == "Kind cluster 'ttg' deleted"
    assert "kind delete cluster --name ttg" in log.read_text()


def test_docker_without_buildx_is_detected(monkeypatch, tmp_path):
    """The Dockerfile's RUN --mount needs BuildKit; a CLI without buildx fails the build."""
    _fake_tool(tmp_path, "docker", 'case "$1" in info) echo 27.0.3;; buildx) '
                                   'echo "docker: \'buildx\' is not a docker command." >&2; '
                                   'exit 1;; esac')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    docker = ttg_kind.check_docker()
    assert not docker.ok and "`docker buildx version` failed" in docker.detail
    assert "docker-buildx-plugin" in docker.line()


def test_kind_must_be_a_release_ttg_has_a_node_image_for(monkeypatch, tmp_path):
    monkeypatch.delenv(ttg_kind.NODE_IMAGE_ENV, raising=False)
    _fake_tool(tmp_path, "kind", 'echo "kind v0.28.0 go1.24.2 linux/amd64"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    kind = ttg_kind.check_kind()
    assert not kind.ok and "v0.28.0 is not a release TTG has a node image for" in kind.detail
    assert "v0.24.0" in kind.detail and "TTG_KIND_NODE_IMAGE" in kind.line()
    config = (Path(ttg_kind.KIND_CONFIG)).read_text()
    assert f"kind {ttg_kind.KIND_VERSION}" in config
    assert ttg_kind.KIND_NODE_IMAGES[ttg_kind.KIND_VERSION] in config


def test_image_is_built_without_attestations_and_loaded(monkeypatch, tmp_path):
    """Provenance/SBOM attestations break `kind load` with the containerd image store."""
    log = tmp_path / "calls.log"
    _fake_tool(tmp_path, "docker", f'echo "docker $*" >> {log}\n'
                                   'case "$1" in info) echo 27.0.3;; esac')
    _fake_tool(tmp_path, "kind", f'echo "kind $*" >> {log}\n'
                                 'case "$1" in version) echo kind v0.24.0;; esac')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    ttg_kind.build_image()
    ttg_kind.load_image()
    calls = log.read_text()
    assert "docker buildx build --load --provenance=false --sbom=false -t ttg-worker:dev" in calls
    assert "kind load docker-image ttg-worker:dev --name ttg" in calls


def test_kind_credentials_action_shows_the_generated_secret(fake, api_client, monkeypatch):
    monkeypatch.setattr(ttg_kind, "require", lambda *names: None)
    monkeypatch.setattr(ttg_kind, "_provider", lambda backend: make_cluster(api_client))
    with pytest.raises(ClusterError, match="no Secret ttg/ttg-broker-credentials yet"):
        ttg_kind.provision("credentials")
    make_cluster(api_client).ensure_brokers(timeout=5)
    lines = ttg_kind.provision("credentials")
    password = fake.get("secrets", NAMESPACE, "ttg-broker-credentials")["stringData"][
        "REDIS_PASSWORD"]
    assert f"  REDIS_PASSWORD={password}" in lines
    assert any(line.startswith("  host URL (redis): redis://:") for line in lines)


# -- first contact: lifecycles the stand-in models like an API server ----------------------
# Differences from a real API server, one line each:
# - containers ARE PID 1 of their own PID namespace (unshare --pid --fork), as in a pod; but
#   a `tini --` prefix is dropped (no init), so the worker itself is PID 1: the harder case;
# - containers run as local processes (worker, redis-server); other images (RabbitMQ) are
#   virtual containers that are Running+Ready without a process, and end on SIGTERM;
# - cluster DNS is a rewrite of <service>:<port> in env values; NodePorts are local relays;
# - grace periods and back-off are scaled by grace_scale (seconds of stand-in time per second);
# - server-side apply tracks one applied config per object (no managedFields, no conflicts
#   between managers), strategic merge knows only the merge keys of lists TTG uses;
# - no finalizers or garbage collection for objects other than pods; no admission (PSA);
# - RBAC is checked against the rules of k8s/rbac only (no bindings, one subject);
# - watches end after at most 5 s; a bookmark is sent only when a watch ends.
# - a RollingUpdate starts all new pods at once (no maxSurge/maxUnavailable); StatefulSets
#   roll like Recreate; there are no ReplicaSets (pods are owned by the Deployment).
# - scheduling is round-robin over the worker nodes, no resource accounting; "Unschedulable"
#   is a switch (set_pods_ready(False)).
# - pod logs are two fixed lines; log parameters are ignored; field selectors accept any path.
# - probes run in-process (ttg_lib.health) or as a local redis-cli, every 0.2 s, not on the
#   manifest's periods; liveness and startup probes are not run.
# - no port-forward websocket: the port-forward is tested with a socket in its place
#   (tests/test_k8s_defects.py); a watch request can be made to fail with HTTP 500.
@pytest.fixture
def live():
    yield from served_live()


@pytest.fixture
def live_api(live):
    yield from client_on(live)


def live_cluster(fake, api_client, extra_ports: dict[str, int] | None = None,
                 **kwargs) -> KubernetesCluster:
    return make_cluster(api_client, check_host_ports=True,
                        host_ports={"redis": fake.node_ports[30379], **(extra_ports or {})},
                        **kwargs)


def seed_rabbitmq_secret(live: FakeKube) -> dict[str, int]:
    """RabbitMQ is a virtual container in the stand-in: the Secret TTG keeps (create-only)
    points the worker pods and the host at the test's own RabbitMQ vhost instead; returns
    the host ports the provider should use for it."""
    from urllib.parse import urlsplit

    from ttg_lib.cluster.kubernetes.credentials import generate_secret

    url = os.environ.get("TTG_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    secret = generate_secret()
    secret["stringData"]["TTG_RABBITMQ_URL"] = url
    secret["metadata"]["resourceVersion"] = "1"
    live.put({**secret, "metadata": {**secret["metadata"], "uid": "seeded"}})
    return {"rabbitmq": urlsplit(url).port or 5672, "rabbitmq-management": 15672}


@pytest.mark.skipif(not standin.PID1, reason="unshare --pid --fork is not allowed here: the "
                                             "stand-in cannot run containers as PID 1")
@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_fault_demo_hard_kill_redelivers_the_victims_chunk(live, live_api, tmp_path, backend):
    """The pod kill ends the worker mid-chunk although the kubelet sends SIGTERM and grants a
    grace period (force delete, kubernetes#120449), and although the worker is its
    container's PID 1, where a self-SIGKILL is dropped: its chunk comes back, recovery is
    timed. (With the old self-SIGKILL the victim finishes its chunk and exits 0.)"""
    from ttg_lib.run import Run

    api = live_api
    host_ports = seed_rabbitmq_secret(live) if backend == "rabbitmq" else {}
    config = RunConfig.build(cluster="kind", backend=backend, workers=3, fault_demo=True,
                             kill_at=0.3, total_params=60, chunk_size=2, work_ms=100.0,
                             run_id=f"20250101-000000-{backend}-fault1",
                             output_dir=str(tmp_path))
    cluster = live_cluster(live, api, run_id=config.run_id, workers=3, lease_s=config.lease_s,
                           backend=backend, extra_ports=host_ports)
    with Run(config, cluster=cluster) as run:
        run.start()
        deadline = time.monotonic() + 120
        while not run.done and time.monotonic() < deadline:
            run.step(0.1)
        summary = run.finish()
    fault = summary["fault"]
    assert fault is not None and fault["killed_worker"].startswith("ttg-worker-")
    assert fault["recovered_after_s"] is not None, (fault, cluster.events(), live.terminations)
    assert fault["recovered_by"] != fault["killed_worker"]
    assert summary["ok"], summary["problems"]
    assert summary["lost_params"] == 0 and summary["wrong_results"] == 0
    (killed,) = [e for e in cluster.events() if e["event"] == "killed"]
    if backend == "redis":  # RabbitMQ's holders come from a management sample, maybe stale
        assert "holding 1 chunk(s)" in killed["detail"]  # the victim was picked by the broker
    # The victim's process (PID 1 of its namespace) ended at the SIGTERM, killed (137), not
    # after finishing its chunk (exit 0) nor at the end of its grace period (5 s here).
    wait_for(lambda: live.terminations)
    (end,) = [t for t in live.terminations if t["pod"] == fault["killed_worker"]]
    assert end["exit_code"] == 137 and not end["killed_at_grace_end"], end
    assert end["after_sigterm_s"] < 1.0, end
    events = [e["event"] for e in cluster.events()]
    assert "killed" in events and "replaced" in events
    password = cluster.credentials()["REDIS_PASSWORD"]
    for path in tmp_path.rglob("*"):  # the generated password is in no run record file
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path


def test_generated_credentials_are_reused_and_redis_refuses_anonymous(live, live_api):
    import redis

    api_client = live_api
    first = live_cluster(live, api_client)
    try:
        url = first.ensure_brokers(timeout=30)
        secret = first.credentials()
    finally:
        first.stop(timeout=1)
    assert "change-me" not in str(secret) and len(secret["REDIS_PASSWORD"]) == 32
    anonymous = redis.Redis(port=live.node_ports[30379], socket_timeout=3)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    assert redis.Redis.from_url(url, socket_timeout=3).ping()
    second = live_cluster(live, api_client, run_id="second-run")
    try:
        assert second.ensure_brokers(timeout=30) == url  # the same Secret, the same password
        assert second.ensure_secret() == "kept Secret ttg/ttg-broker-credentials (exists)"
    finally:
        second.stop(timeout=1)
    assert len([r for r in live.calls("POST") if r.path.endswith("/secrets")]) == 1


def test_host_check_is_a_broker_handshake_not_a_tcp_connect(fake, api_client):
    """Docker's proxy accepts TCP on a published port with nothing behind it; the provider
    must not take that for a broker."""
    fake.publish_node_ports([30379])  # relays to nothing: virtual Redis has no process
    c = make_cluster(api_client, check_host_ports=True,
                     host_ports={"redis": fake.node_ports[30379]})
    try:
        with pytest.raises(ClusterError, match="redis broker does not answer on "
                                               r"127.0.0.1:\d+ .*extraPortMappings"):
            c.ensure_brokers(timeout=1)
    finally:
        c.stop(timeout=1)


def test_pod_deleted_while_the_watch_was_expired_is_one_death(fake, cluster):
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(3)
    cluster.wait_ready(3, timeout=5)
    wait_for(lambda: cluster._synced)
    victim = sorted(w.name for w in cluster.live_workers())[0]
    fake.delete_pod_behind_the_watch(victim)
    fake.expire_watches()  # the watch is dropped; resuming it gets 410 Gone
    wait_for(lambda: victim not in {w.name for w in cluster.live_workers()})
    deaths = [e for e in cluster.events() if e["event"] == "died" and e["worker"] == victim]
    assert len(deaths) == 1
    wait_for(lambda: len(cluster.live_workers()) == 3)  # the replacement is seen
    time.sleep(0.3)
    assert len([e for e in cluster.events() if e["event"] == "died"]) == 1
    watches = [r for r in fake.calls("GET") if r.query.get("watch") in ("true", "True")]
    assert all(r.query.get("allowWatchBookmarks") in ("true", "True") for r in watches)


def test_reapply_removes_what_the_manifest_dropped(fake, cluster, api_client, tmp_path):
    """Server-side apply: an env var and a ConfigMap key dropped from the manifests leave the
    objects (a strategic-merge patch would keep them forever)."""
    import shutil as sh

    import yaml

    from ttg_lib.cluster.kubernetes.manifests import manifests_dir

    k8s = tmp_path / "k8s"
    sh.copytree(manifests_dir(), k8s)
    dep_path = k8s / "base" / "worker-deployment.yaml"
    dep = yaml.safe_load(dep_path.read_text())
    dep["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "TTG_OLD_SETTING", "value": "1"})
    dep_path.write_text(yaml.safe_dump(dep))
    cm_path = k8s / "base" / "worker-configmap.yaml"
    cm = yaml.safe_load(cm_path.read_text())
    cm["data"]["TTG_OLD_KEY"] = "x"
    cm_path.write_text(yaml.safe_dump(cm))
    first = make_cluster(api_client, k8s_dir=k8s)
    first.apply(first.objects())
    names = [e["name"] for e in fake.get("deployments", NAMESPACE, "ttg-worker")["spec"][
        "template"]["spec"]["containers"][0]["env"]]
    assert "TTG_OLD_SETTING" in names
    cluster.apply(cluster.objects())  # the committed manifests, without them
    deployment = fake.get("deployments", NAMESPACE, "ttg-worker")
    names = [e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "TTG_OLD_SETTING" not in names and "TTG_WORKER_NAME" in names
    assert "TTG_OLD_KEY" not in fake.get("configmaps", NAMESPACE, "ttg-worker-config")["data"]


def test_a_new_runs_workers_start_after_the_previous_runs_are_gone(fake, api_client):
    """A worker dead-letters tasks of another run: no pod of a crashed earlier run may still
    fetch when the new run's pods start (Recreate; a RollingUpdate overlaps them)."""
    first = make_cluster(api_client, run_id="run-a")
    first.ensure_brokers(timeout=5)
    first.start_workers(2)
    first.wait_ready(2, timeout=5)  # run-a "crashes": its workers are never stopped
    second = make_cluster(api_client, run_id="run-b")
    try:
        second.start_workers(2)
        second.wait_ready(2, timeout=10)
    finally:
        second.stop(timeout=2)
        first.stop(timeout=1)
    runs = [(etype, pod["metadata"]["labels"][RUN_LABEL]) for _rv, etype, pod in
            fake.pod_events if pod["metadata"]["labels"].get(RUN_LABEL)]
    last_a_gone = max(i for i, e in enumerate(runs) if e == ("DELETED", "run-a"))
    first_b = min(i for i, e in enumerate(runs) if e == ("ADDED", "run-b"))
    assert last_a_gone < first_b, runs


def test_status_is_a_subresource_and_selectors_are_immutable(fake, cluster, api_client):
    cluster.ensure_brokers(timeout=5)
    status = fake.get("deployments", NAMESPACE, "ttg-redis")["status"]
    generation = fake.get("deployments", NAMESPACE, "ttg-redis")["metadata"]["generation"]
    cluster.apply([o for o in cluster.objects() if o["metadata"]["name"] == "ttg-redis"
                   and o["kind"] == "Deployment"])
    after = fake.get("deployments", NAMESPACE, "ttg-redis")
    assert after["status"]["readyReplicas"] == status["readyReplicas"] == 1
    assert after["metadata"]["generation"] == generation  # the same spec: no new generation
    changed = [o for o in cluster.objects() if o["kind"] == "Deployment"
               and o["metadata"]["name"] == "ttg-redis"][0]
    changed["spec"]["selector"]["matchLabels"]["extra"] = "x"
    with pytest.raises(ClusterError, match=r"HTTP 422: .*spec.selector: field is immutable"):
        cluster.apply([changed])


def test_rbac_of_k8s_rbac_covers_everything_the_provider_does(fake, api_client):
    """The stand-in answers 403 for anything k8s/rbac does not grant; a whole run with a
    kill, logs, health and cleanup still works."""
    from ttg_lib.cluster.kubernetes.manifests import manifests_dir

    fake.load_rbac(manifests_dir() / "rbac")
    c = make_cluster(api_client, compute="ttg_lib.compute:placeholder")  # with the preflight
    try:
        c.ensure_brokers(timeout=5)
        c.start_workers(2)
        c.wait_ready(2, timeout=5)
        c.kill_worker()
        assert list(c.stream_logs(c.live_workers()[0].name))
        c.health()
    finally:
        c.stop(timeout=2)
    report = CleanupReport(dry_run=False)
    cleanup_kubernetes(report=report, api_client=api_client)
    assert not report.skipped or "Namespace ttg: kept" in report.skipped[0]
    assert fake.denied == []  # not even the watch thread, which retries quietly
    # Least privilege: every rule was needed (port-forwards serve the k8s flavour only).
    rules = {(res, verb) for r in fake.rbac for res in r["resources"] for verb in r["verbs"]}
    assert rules - fake.granted == {("pods/portforward", "get"), ("pods/portforward", "create")}
    fake.rbac = [r for r in fake.rbac if "pods" not in r["resources"]]
    with pytest.raises(ClusterError, match=r"HTTP 403: .*cannot list resource \"pods\""):
        make_cluster(api_client).workers()


def test_pod_states_reach_the_error_messages(fake, cluster):
    """ContainerCreating, ErrImagePull/ImagePullBackOff, restarts, CrashLoopBackOff and
    Running-but-not-Ready, as the kubelet reports them, reach TTG's messages and events."""
    def reasons() -> str:
        return " | ".join(p["reason"] for p in cluster.pods() if p["component"] == "worker")

    fake.images = {"redis:7.2-alpine", "rabbitmq:3.13-management-alpine"}  # worker not loaded
    cluster.ensure_brokers(timeout=5)
    cluster.start_workers(1)
    with pytest.raises(ClusterError) as err:
        cluster.wait_ready(1, timeout=1)
    assert re.search(r"waiting: (ErrImagePull|ImagePullBackOff) \(failed to pull image",
                     str(err.value)), str(err.value)
    assert "python -m ttg_lib.cluster.kind up" in str(err.value)  # the hint how to load it
    assert any(p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
               == "ContainerCreating" for _rv, _t, p in fake.pod_events
               if "worker" in p["metadata"]["name"] and p["status"].get("containerStatuses"))
    fake.images = None  # `kind load` done: the kubelet starts the container
    cluster.wait_ready(1, timeout=5)
    pod = cluster.live_workers()[0].name
    fake.readiness = False
    fake.crash(pod)
    wait_for(lambda: any(e["event"] == "died" and "restart #1" in e["detail"]
                         for e in cluster.events()))
    assert any(((p["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get(
        "waiting", {}).get("reason") == "CrashLoopBackOff"
        for _rv, _t, p in fake.pod_events if p["metadata"]["name"] == pod)
    assert wait_for(lambda: "Running, not ready (readiness probe failing)" in reasons())
    assert [p["restarts"] for p in cluster.pods() if p["pod"] == pod] == [1]


def test_api_errors_are_named_with_their_status(fake, api_client):
    """404 (missing_ok), 409 AlreadyExists, 422 Invalid, as the API server answers them."""
    from ttg_lib.cluster.kubernetes.api import Api

    api = Api(api_client)
    core = api.core
    assert api.call("read", core.read_namespaced_config_map, "absent", NAMESPACE,
                    missing_ok=True) is None
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {
        PART_OF: "ttg"}}}
    api.call("create", core.create_namespaced_config_map, NAMESPACE, cm)
    with pytest.raises(ClusterError, match=r"HTTP 409: configmaps \"x\" already exists"):
        api.call("create x", core.create_namespaced_config_map, NAMESPACE, cm)
    bad = {**cm, "metadata": {"name": "Not_Valid", "labels": {PART_OF: "ttg"}}}
    with pytest.raises(ClusterError, match=r"HTTP 422: .*metadata.name: Invalid value"):
        api.call("create", core.create_namespaced_config_map, NAMESPACE, bad)


def test_in_cluster_config_when_there_is_no_kubeconfig(monkeypatch, tmp_path):
    from kubernetes.config import incluster_config

    from ttg_lib.cluster.kubernetes.api import make_api_client

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    cert.write_text("cert")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    api = make_api_client(None)
    assert api.configuration.host == "https://10.96.0.1:443"
    assert "sa-token" in str(api.configuration.api_key)
