"""TLS to a broker on another host: ``rediss://`` and ``amqps://`` URLs, verified against a CA.

The system's CAs verify a broker whose certificate a public CA signed; a broker with a
certificate of your own CA needs that CA's file, named by TTG_TLS_CA (every process: the
orchestrator and each worker host). Read here only, and only for TLS URLs.
"""

from __future__ import annotations

import os
import ssl

TLS_CA_ENV = "TTG_TLS_CA"


def ca_file() -> str | None:
    """The CA file to verify brokers with, or None for the system's CAs."""
    return os.environ.get(TLS_CA_ENV) or None


def context() -> ssl.SSLContext:
    """A verifying client context: TTG_TLS_CA's CA, else the system's."""
    return ssl.create_default_context(cafile=ca_file())
