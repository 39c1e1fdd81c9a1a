"""Port-forward for clusters other than Kind: a host port relayed to a broker pod."""

from __future__ import annotations

import selectors
import socket
import threading

from .api import Api
from .labels import NAMESPACE


class PortForwarder:
    """127.0.0.1:<port> on the host relayed to a pod port through the API server's
    portforward subresource (the client's websocket support), one stream per connection."""

    def __init__(self, api: Api, pod: str, remote_port: int):
        self.api, self.pod, self.remote_port = api, pod, remote_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"ttg-forward-{pod}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        from kubernetes.stream import portforward

        try:
            forward = portforward(self.api.core.connect_get_namespaced_pod_portforward,
                                  self.pod, NAMESPACE, ports=str(self.remote_port))
            remote = forward.socket(self.remote_port)
            remote.setblocking(True)
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

    def close(self) -> None:
        self._closed.set()
        self._server.close()
