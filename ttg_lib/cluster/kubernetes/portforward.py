"""Port-forward for clusters other than Kind: a host port relayed to a broker pod.

The pod is picked again when a connection to it fails: a broker Deployment's pod replaced
(rescheduled, evicted, its node drained) has a new name, and a forward pinned to the old name
would fail every reconnect while the run stalls.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from .api import Api
from .labels import NAMESPACE

# Opens one stream to a pod's port: returns a connected socket-like object.
OpenStream = Callable[[str, int], Any]


class PortForwarder:
    """127.0.0.1:<port> on the host relayed to a pod port through the API server's
    portforward subresource (the client's websocket support), one stream per connection.
    ``pick_pod`` names the pod to use; it is called at the start and again whenever opening a
    stream to the current pod fails."""

    def __init__(self, api: Api | None, pick_pod: Callable[[], str], remote_port: int,
                 open_stream: OpenStream | None = None):
        self.api, self.pick_pod, self.remote_port = api, pick_pod, remote_port
        self._open_stream = open_stream or self._portforward
        self.pod = pick_pod()
        self.repicks = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"ttg-forward-{self.pod}",
                         daemon=True).start()

    def _portforward(self, pod: str, port: int) -> Any:
        from kubernetes.stream import portforward

        assert self.api is not None
        forward = portforward(self.api.core.connect_get_namespaced_pod_portforward,
                              pod, NAMESPACE, ports=str(port))
        remote = forward.socket(port)
        remote.setblocking(True)
        return remote

    def _remote(self) -> Any:
        """A stream to the current pod; on failure the pod is picked again, once."""
        with self._lock:
            pod = self.pod
        try:
            return self._open_stream(pod, self.remote_port)
        except Exception:
            fresh = self.pick_pod()  # a ClusterError here ends this connection only
            with self._lock:
                self.pod = fresh
                self.repicks += 1
            return self._open_stream(fresh, self.remote_port)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        remote = None
        try:
            remote = self._remote()
            sel = selectors.DefaultSelector()
            sel.register(conn, selectors.EVENT_READ, remote)
            sel.register(remote, selectors.EVENT_READ, conn)
            while not self._closed.is_set():
                for key, _ in sel.select(1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except Exception:
            return  # the client sees its connection close and reconnects
        finally:
            conn.close()
            if remote is not None:
                try:
                    remote.close()
                except Exception:  # already closed by the server side
                    pass

    def close(self) -> None:
        self._closed.set()
        self._server.close()
