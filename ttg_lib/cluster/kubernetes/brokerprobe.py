"""The host's own look at a broker in the cluster: does it answer at the protocol level, and
which consumer (worker pod) holds how many chunks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..base import ClusterError


class BrokerProbe:
    """One backend connection, opened when first asked, closed by :meth:`close`."""

    def __init__(self, backend: str, lease_s: float, poll_s: float, flavor: str):
        self.backend, self.lease_s, self.poll_s, self.flavor = backend, lease_s, poll_s, flavor
        self._conn: Any = None

    def wait_answers(self, url: str, deadline: float) -> None:
        """Connect with the run's own backend (a Redis PING, an AMQP handshake) until it
        succeeds or the deadline passes: a TCP connect proves nothing on Kind, where Docker's
        proxy accepts it as soon as the node is up."""
        from ...backends import BrokerUnavailable, open_inspector

        port = urlsplit(url).port
        while True:
            backend = open_inspector(self.backend, url, lease_s=self.lease_s)
            try:
                backend.connect()
                backend.close()
                return
            except BrokerUnavailable as exc:
                if time.monotonic() >= deadline:
                    where = ("was the Kind cluster created from kind/kind-config.yaml "
                             "(extraPortMappings)?" if self.flavor == "kind" else
                             "is the port-forward to the broker pod working?")
                    raise ClusterError(f"the {self.backend} broker does not answer on "
                                       f"127.0.0.1:{port} ({exc}): {where}") from None
            time.sleep(self.poll_s)

    def chunks_held(self, url: Callable[[], str]) -> dict[str, int] | None:
        """Unacked chunks per consumer, from the broker; None when the backend does not say
        (its workers() rows have no ``pending``) or cannot be reached."""
        from ...backends import BrokerUnavailable, ListsConsumers, open_inspector

        try:
            if self._conn is None:
                conn = open_inspector(self.backend, url(), lease_s=self.lease_s)
                if not isinstance(conn, ListsConsumers):
                    return None  # this backend reports no consumers: no connection for it
                conn.connect()
                self._conn = conn
            rows = self._conn.consumers()
        except (BrokerUnavailable, ClusterError):
            self.close()
            return None
        return {c.name: c.pending for c in rows} if rows else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
