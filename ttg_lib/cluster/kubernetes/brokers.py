"""The brokers' side of the provider: apply them with their credentials, wait until they are
ready and answer from the host, and give the host URLs (NodePorts on Kind, port-forwards
elsewhere)."""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..base import ClusterError
from .credentials import check_complete, decode, generate_secret
from .labels import BROKER_SECRET, BROKERS, MANAGEMENT, NAMESPACE, broker_selector
from .manifests import is_worker_object
from .pods import pod_ready, pod_reason, workload_ready
from .portforward import PortForwarder


def _with_host(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{port}"))



class BrokerSide:
    """Mixed into :class:`~.provider.KubernetesCluster` (its attributes are the provider's)."""

    api: Any
    backend: str
    flavor: str
    poll_s: float
    check_host_ports: bool
    host_ports: dict[str, int]
    _forwards: dict[str, PortForwarder]
    _env_before: dict[str, str | None]
    _probe: Any

    def ensure_brokers(self, timeout: float = 300.0) -> str:
        """Apply namespace, credentials, brokers, Services and NetworkPolicies; wait until the
        run's broker is ready and answers from the host at the protocol level (a TCP connect
        proves nothing on Kind: Docker's proxy accepts it as soon as the node is up); point
        the management API at the cluster's; return the broker's host URL."""
        objects = [o for o in self.objects() if not is_worker_object(o)]
        self.apply([o for o in objects if o["kind"] == "Namespace"])
        self.ensure_secret()  # before the brokers: they read their credentials from it
        self.apply([o for o in objects if o["kind"] != "Namespace"])
        self.wait_brokers(timeout)
        deadline = time.monotonic() + timeout
        url = self.broker_url_for(self.backend)
        if self.check_host_ports:
            self._probe.wait_answers(url, deadline)
        self._point_management()
        return url

    def ensure_secret(self) -> str:
        """Create the credentials Secret with random passwords when absent; keep it otherwise
        (the brokers' stored users were made with it); refuse one that lacks keys."""
        secret = self._read_secret()
        if secret is None:
            return self._apply_one(generate_secret())
        check_complete(decode(secret))
        return f"kept Secret {NAMESPACE}/{BROKER_SECRET} (exists)"

    def _read_secret(self) -> dict[str, Any] | None:
        return self.api.call(f"read Secret {NAMESPACE}/{BROKER_SECRET}",
                             self.api.core.read_namespaced_secret, BROKER_SECRET, NAMESPACE,
                             missing_ok=True)

    def credentials(self) -> dict[str, str]:
        """The Secret's values (what `ttg kind credentials` shows); ClusterError if absent."""
        secret = self._read_secret()
        if secret is None:
            raise ClusterError(f"no Secret {NAMESPACE}/{BROKER_SECRET} yet: the first deploy "
                               f"(python -m ttg_lib.cluster.kind up, or a run) generates it")
        return decode(secret)

    def wait_brokers(self, timeout: float, backends: tuple[str, ...] | None = None) -> None:
        wanted = [BROKERS[b] for b in (backends or (self.backend,))]
        deadline = time.monotonic() + timeout
        while True:
            laggards = []
            for broker in wanted:
                read, _ = self.api.method("read", broker["kind"])
                obj = self.api.call(f"read {broker['kind']} {broker['name']}", read,
                                    broker["name"], NAMESPACE, missing_ok=True)
                ready, want = workload_ready(obj)
                if obj is None or ready < want:
                    laggards.append((broker, obj, ready, want))
            if not laggards:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        parts = []
        for broker, obj, ready, want in laggards:
            what = f"{broker['kind'].lower()} {NAMESPACE}/{broker['name']}"
            if obj is None:
                parts.append(f"{what} does not exist")
                continue
            pods = self.api.list("Pod", broker_selector(next(
                b for b, v in BROKERS.items() if v is broker)))
            detail = "; ".join(f"pod {p['metadata']['name']}: {pod_reason(p)}" for p in pods
                               if not pod_ready(p)) or "no pods yet"
            parts.append(f"{what} {ready}/{want} ready ({detail})")
        raise ClusterError(f"brokers not ready after {timeout:g}s: {', '.join(parts)}")

    def broker_url_for(self, backend: str | None = None) -> str:
        """The URL the host (the run's backend, a notebook, the monitor) uses for a broker."""
        backend = backend or self.backend
        broker = BROKERS[backend]
        url = self.credentials()[broker["secret_key"]]
        return _with_host(url, "127.0.0.1", self._host_port(backend, broker["port"]))

    def _host_port(self, key: str, pod_port: int) -> int:
        """The host port reaching a broker port: Kind's published NodePort, or a port-forward
        (``key`` is a backend, or ``<backend>-management``)."""
        if self.flavor == "kind":
            return self.host_ports[key]
        backend = key.split("-", 1)[0]
        forward = self._forwards.get(key)
        if forward is None:
            forward = PortForwarder(self.api, lambda: self._ready_broker_pod(backend), pod_port)
            self._forwards[key] = forward
        return forward.port

    def _ready_broker_pod(self, backend: str) -> str:
        """A ready pod of the broker, picked afresh each time (its pod may be replaced)."""
        pods = [p for p in self.api.list("Pod", broker_selector(backend)) if pod_ready(p)]
        if not pods:
            raise ClusterError(f"no ready {BROKERS[backend]['app']} pod in namespace "
                               f"{NAMESPACE} to port-forward to")
        return pods[0]["metadata"]["name"]

    def _point_management(self) -> None:
        """The backend reads its management API at <env>; on Kubernetes that is the cluster's
        broker (Kind: the published NodePort), not whatever answers on the host's default
        port. A value the user set is kept; ours is undone by release_brokers()."""
        management = MANAGEMENT.get(self.backend)
        if management is None or os.environ.get(management["env"]):
            return
        port = self._host_port(f"{self.backend}-management", management["port"])
        self._env_before[management["env"]] = os.environ.get(management["env"])
        os.environ[management["env"]] = f"http://127.0.0.1:{port}"

    def release_brokers(self) -> None:
        for name, value in self._env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._env_before.clear()
        self._probe.close()

    @property
    def broker_url(self) -> str:
        return self.broker_url_for(self.backend)
