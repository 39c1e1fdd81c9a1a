"""Tests run against the real Redis and RabbitMQ (TTG_REDIS_URL / TTG_RABBITMQ_URL).

A missing broker is a failure, not a skip: scripts/test.sh starts both. Tests that need a
broker or run a sweep are marked ``slow``; ``pytest -m "not slow"`` is the unit layer, which
needs no broker (the in-memory backend stands in where a contract test needs one).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ttg_lib.backends import backend_names, env_urls, open_producer
from ttg_lib.config import RunConfig

URLS = env_urls()
REDIS_URL, RABBITMQ_URL = URLS["redis"], URLS["rabbitmq"]
BROKERS = backend_names(runnable=True)
BROKER_FIXTURES = {"broker_url", "backend", "real_broker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a real broker is slow by definition: not in the unit layer."""
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _require(url: str) -> None:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 0), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"broker at {parsed.hostname}:{parsed.port} is not running ({exc}); "
                    f"scripts/test.sh starts it", pytrace=False)


@pytest.fixture(params=BROKERS)
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
    b = open_producer(backend_name, broker_url, lease_s=0.6)
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
