"""Tests run against the real Redis and RabbitMQ (TTG_REDIS_URL / TTG_RABBITMQ_URL).

A missing broker is a failure, not a skip: scripts/test.sh starts both.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ttg_lib.backends import make_backend
from ttg_lib.config import DEFAULT_RABBITMQ_URL, DEFAULT_REDIS_URL, RunConfig

REDIS_URL = os.environ.get("TTG_REDIS_URL", DEFAULT_REDIS_URL)
RABBITMQ_URL = os.environ.get("TTG_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
URLS = {"redis": REDIS_URL, "rabbitmq": RABBITMQ_URL}


def _require(url: str) -> None:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 0), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"broker at {parsed.hostname}:{parsed.port} is not running ({exc}); "
                    f"scripts/test.sh starts it", pytrace=False)


@pytest.fixture(params=["redis", "rabbitmq"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def broker_url(backend_name: str) -> str:
    url = URLS[backend_name]
    _require(url)
    return url


@pytest.fixture
def backend(backend_name: str, broker_url: str):
    """A connected backend with the TTG queues emptied before and after (TTG names only)."""
    b = make_backend(backend_name, broker_url, lease_s=0.6)
    b.connect()
    hold_run_lock(b, TEST_LOCK)
    b.purge()
    b.declare()
    yield b
    b.reconnect()
    b.purge()
    b.release_run(TEST_LOCK)
    b.close()


TEST_LOCK = "pytest-backend-tests"


def hold_run_lock(b, run_id: str, timeout: float = 300.0) -> None:
    """Wait for any live TTG run on this broker to end: tests must not purge its queues."""
    import time

    from ttg_lib.backends import RunLocked

    deadline = time.monotonic() + timeout
    while True:
        try:
            b.acquire_run(run_id)
            return
        except RunLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the lock holder is another process; nothing to wait on


@pytest.fixture
def make_config(tmp_path: Path):
    def build(**overrides) -> RunConfig:
        values = {"scale": "tiny", "output_dir": str(tmp_path / "outputs"), "monitor": "none"}
        values.update(overrides)
        return RunConfig.build(**values)

    return build
