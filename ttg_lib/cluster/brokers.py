"""Find the run's broker, or start a private one when nothing answers on loopback.

The private brokers themselves (what to start, how) belong to each backend
(:mod:`ttg_lib.backends.private`, named by the registry); this module decides when.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from ..backends import get_spec
from ..backends.private import PrivateBroker, answers, free_port
from ..errors import ClusterError

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

__all__ = ["LOOPBACK", "PrivateBroker", "answers", "ensure_broker", "free_port",
           "start_private"]


def ensure_broker(backend: str, url: str, *, allow_private: bool = True,
                  aof: bool = False) -> tuple[str, PrivateBroker | None]:
    """Return a URL that answers, starting a private broker if the loopback one is down."""
    if answers(url):
        return url, None
    parsed = urlparse(url)
    spec = get_spec(backend)
    if not allow_private or parsed.hostname not in LOOPBACK:
        raise ClusterError(f"no {backend} broker answers at {parsed.hostname}:{parsed.port}; "
                           f"start it or point {spec.url_env} at one that runs")
    broker = start_private(backend, aof=aof)
    return broker.url, broker


def start_private(backend: str, aof: bool = False, **options: Any) -> PrivateBroker:
    """A private broker of kind ``backend`` on a free loopback port (tests use it too);
    ``options`` go to the broker's starter (e.g. RabbitMQ's ``plugins``)."""
    return get_spec(backend).start_private(aof=aof, **options)
