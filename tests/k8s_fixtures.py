"""The stand-in API server and a client on it, shared by the Kubernetes test modules: each
keeps thin fixtures of its own (``yield from served()`` / ``yield from client_on(server)``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from k8s_standin import FakeKube

from ttg_lib.cluster.kubernetes import KubernetesCluster

if TYPE_CHECKING:  # the client is imported by the tests that use it, not at collection
    from kubernetes import client


def served(**options: Any) -> Iterator[FakeKube]:
    """A started stand-in, stopped after its test."""
    server = FakeKube(**options)
    server.host = server.start()
    yield server
    server.stop()


def served_live() -> Iterator[FakeKube]:
    """The stand-in with a kubelet that runs the worker and Redis containers for real
    (worker grace 10 s -> 5 s) and Redis's NodePort published on this host."""
    for server in served(run_containers=True, grace_scale=0.5):
        server.publish_node_ports([30379])
        yield server


def client_on(server: FakeKube) -> Iterator[client.ApiClient]:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = server.host
    api = client.ApiClient(configuration)
    yield api
    api.close()


def make_cluster(api_client: client.ApiClient, run_id: str, **kwargs: Any) -> KubernetesCluster:
    """A cluster on the stand-in with fast polls and no host-port probe."""
    values = {"flavor": "kind", "backend": "redis", "run_id": run_id, "workers": 3,
              "api_client": api_client, "poll_s": 0.02, "watch_timeout_s": 1,
              "check_host_ports": False, **kwargs}
    return KubernetesCluster(**values)
