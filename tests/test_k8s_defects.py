"""The second Kubernetes review's defects (shared/reviews/kubernetes-and-scale-out.md, item 4
of issue 21), one test each; every test fails with its fix reverted. The provider talks to
the stand-in API server (tests/k8s_standin.py) through the real kubernetes client."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import require_package

require_package("kubernetes", "the k8s extra is not installed (pip install 'ttg[k8s]')")

from k8s_fixtures import client_on, served  # noqa: E402
from k8s_fixtures import make_cluster as shared_make_cluster  # noqa: E402
from polling import wait_for  # noqa: E402

from ttg_lib.cluster.kubernetes import KubernetesCluster  # noqa: E402
from ttg_lib.cluster.kubernetes.portforward import PortForwarder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN_ID = "20250101-000000-redis-defect"


@pytest.fixture
def fake():
    yield from served()


@pytest.fixture
def api_client(fake):
    yield from client_on(fake)


def make_cluster(api_client, **kwargs) -> KubernetesCluster:
    return shared_make_cluster(api_client, **{"run_id": RUN_ID, "workers": 2, **kwargs})


# -- port-forward: the pod is picked again when it was replaced ---------------------------
def echo_server() -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_port_forward_picks_the_pod_again_when_its_pod_was_replaced():
    """The broker's pod is replaced (new name): a forward pinned to the first name fails
    every reconnect and the run stalls; it must pick the (new) ready pod instead."""
    echo = echo_server()
    ready = ["ttg-redis-old"]
    opened: list[str] = []

    def open_stream(pod: str, port: int) -> socket.socket:
        opened.append(pod)
        if pod not in ready:
            raise ConnectionError(f"pods {pod!r} not found")  # the API server's 404
        return socket.create_connection(echo.getsockname())

    forward = PortForwarder(None, lambda: ready[0], 6379, open_stream=open_stream)
    try:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=5) as conn:
            conn.sendall(b"one")
            assert conn.recv(16) == b"one"
        ready[0] = "ttg-redis-new"  # the Deployment replaced the pod
        with socket.create_connection(("127.0.0.1", forward.port), timeout=5) as conn:
            conn.sendall(b"two")
            assert conn.recv(16) == b"two"
        assert opened == ["ttg-redis-old", "ttg-redis-old", "ttg-redis-new"]
        assert forward.pod == "ttg-redis-new" and forward.repicks == 1
    finally:
        forward.close()
        echo.close()


# -- a Terminating PVC is not an existing one ---------------------------------------------
@pytest.mark.slow
def test_terminating_pvc_is_waited_for_then_created_again(fake, api_client):
    """`down` then `up` at once: the Redis claim is still Terminating. Keeping it would leave
    Redis Pending on a claim being deleted; the provider waits for it to go and creates it."""
    pvc = yaml.safe_load((REPO / "k8s/base/redis-pvc.yaml").read_text())
    pvc["metadata"].update(uid="old", resourceVersion="1",
                           deletionTimestamp="2025-01-01T00:00:00Z")
    fake.put(pvc)
    key = ("persistentvolumeclaims", "ttg", pvc["metadata"]["name"])

    def finalizer_done() -> None:  # the claim goes 0.3 s after the provider first read it
        wait_for(lambda: [r for r in fake.calls("GET") if r.path.endswith(key[2])], 20)
        time.sleep(0.3)
        with fake.lock:
            fake.objects.pop(key, None)

    threading.Thread(target=finalizer_done, daemon=True).start()
    cluster = make_cluster(api_client)
    try:
        cluster.ensure_brokers(timeout=10)
    finally:
        cluster.stop(timeout=1)
    created = fake.objects[key]
    assert not created["metadata"].get("deletionTimestamp"), created["metadata"]
    assert [r for r in fake.calls("POST") if r.path.endswith("/persistentvolumeclaims")]


# -- a watch error other than 410 ends in a new list --------------------------------------
@pytest.mark.slow
def test_watch_errors_other_than_410_lead_to_a_new_list(fake, api_client):
    cluster = make_cluster(api_client)
    try:
        cluster.ensure_brokers(timeout=5)
        cluster.start_workers(2)
        wait_for(lambda: cluster._synced)

        def lists() -> int:
            return len([r for r in fake.calls("GET") if r.path.endswith("/pods")
                        and r.query.get("watch") not in ("true", "True")
                        and "ttg.dev/run-id" in r.query.get("labelSelector", "")])

        before = lists()
        with fake.lock:
            fake.watch_errors = 1000  # the server keeps refusing the watch (HTTP 500)
        wait_for(lambda: lists() > before, timeout=5)
    finally:
        with fake.lock:
            fake.watch_errors = 0
        cluster.stop(timeout=1)


# -- cleanup leaves an in-cluster orchestrator alone ----------------------------------------
@pytest.mark.slow
def test_cleanup_keeps_the_in_cluster_orchestrator(fake, api_client):
    """k8s/rbac tells an in-cluster orchestrator to wear part-of=ttg (the brokers'
    NetworkPolicies admit it) and component=orchestrator: `ttg cleanup --kubernetes` must not
    delete the process that may be running it."""
    from ttg_lib.cleanup import CleanupReport
    from ttg_lib.cluster.kubernetes import cleanup_kubernetes

    cluster = make_cluster(api_client)
    try:
        cluster.ensure_brokers(timeout=5)
        cluster.start_workers(1)
        cluster.wait_ready(1, timeout=5)
    finally:
        cluster.stop(timeout=1)
    fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "ttg-orchestrator", "namespace": "ttg", "uid": "orch", "resourceVersion": "1",
        "labels": {"app.kubernetes.io/part-of": "ttg",
                   "app.kubernetes.io/component": "orchestrator"}},
        "spec": {"containers": [{"name": "ttg", "image": "ttg-worker:dev"}]},
        "status": {"phase": "Running"}})
    report = CleanupReport(dry_run=False)
    cleanup_kubernetes(report=report, api_client=api_client)
    assert "ttg-orchestrator" in fake.names("pods", "ttg")
    assert not [n for n in fake.names("pods", "ttg") if n.startswith("ttg-worker")]
    assert not any("ttg-orchestrator" in line for line in report.removed)
