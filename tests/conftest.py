"""Tests run against the real Redis and RabbitMQ (TTG_REDIS_URL / TTG_RABBITMQ_URL).

A missing broker is a failure, not a skip: scripts/test.sh starts both. Tests that need a
broker or run a sweep are marked ``slow``; ``pytest -m "not slow"`` is the unit layer, which
needs no broker (the in-memory backend stands in where a contract test needs one).

In CI (``CI=true``) every skip is a failure too - a browser, an extra or a tool that failed
to install must not turn into a quietly green run - except the real-Kind tests on a machine
with no Docker engine (ALLOWED_SKIPS), which still show their reason.
"""

from __future__ import annotations

import os
import re
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
# The browser the report and demo tests drive (scripts/setup.sh --browser installs it).
CHROMIUM = Path(os.environ.get("TTG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
# (marker, reason pattern): the only skips CI accepts. A Kind cluster needs a Docker engine,
# which a CI runner may not have; everything else the tests need, setup.sh installs.
ALLOWED_SKIPS = (("kind", re.compile(r"docker", re.IGNORECASE)),)


def _skip_allowed(item: pytest.Item | None, reason: str) -> bool:
    return item is not None and any(
        item.get_closest_marker(marker) is not None and pattern.search(reason)
        for marker, pattern in ALLOWED_SKIPS)


def _skip_reason(longrepr: object) -> str:
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def _fail_in_ci(report: pytest.TestReport | pytest.CollectReport, reason: str) -> None:
    report.outcome = "failed"
    report.longrepr = (f"unexpected skip in CI (CI=true): {reason}\n"
                       "Only the real-Kind tests may skip, and only without a Docker engine; "
                       "install what is missing (scripts/setup.sh) or unset CI.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report.longrepr)
        if not _skip_allowed(item, reason):
            _fail_in_ci(report, reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module skipped whole (``importorskip`` of a missing extra) fails in CI as well."""
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped:
        _fail_in_ci(report, _skip_reason(report.longrepr))


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
