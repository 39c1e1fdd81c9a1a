"""Tests run against the real Redis and RabbitMQ (TTG_REDIS_URL / TTG_RABBITMQ_URL).

A missing broker is a failure, not a skip: scripts/test.sh starts both. Tests that need a
broker or run a sweep are marked ``slow``; ``pytest -m "not slow"`` is the unit layer, which
needs no broker (the in-memory backend stands in where a contract test needs one).

In CI (``CI=true``) every skip is a failure too - a browser, an extra or a tool that failed
to install must not turn into a quietly green run - except the real-Kind tests on a machine
with no Docker engine and the side-by-side run of the original system without its checkout
(ALLOWED_SKIPS), which still show their reason.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pytest

from ttg_lib.backends import backend_names, env_urls, open_producer
from ttg_lib.config import RunConfig

# --- pytest-xdist (scripts/test.sh: -n 2) ----------------------------------------------------
# Each xdist worker gets brokers of its own on the same servers, before any URL is read (its
# subprocesses - `ttg run`, workers, notebook kernels - inherit them): Redis database N+1+k for
# worker gwk (N: the database of TTG_REDIS_URL) and a RabbitMQ vhost of its own, named here,
# created after collection when a test that may use it is selected, deleted when the worker
# ends. Tests that purge queues or take the run lock thus never
# meet the other worker's runs.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
XDIST_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8]
_OWN_VHOST: str | None = None
_WANTED_VHOST: tuple[str, str] | None = None  # (vhost, user): made after collection, if needed


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    proc = subprocess.run([ctl, "-q", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr or proc.stdout}")


def _isolate_xdist_worker() -> None:
    global _WANTED_VHOST
    index = int(XDIST_WORKER.removeprefix("gw"))
    urls = env_urls()
    redis_url = urlparse(urls["redis"])
    db = int(redis_url.path.strip("/") or 0) + 1 + index
    if db > 15:
        raise RuntimeError(f"{XDIST_WORKER}: no Redis database {db} (use fewer xdist workers)")
    os.environ["TTG_REDIS_URL"] = redis_url._replace(path=f"/{db}").geturl()
    amqp = urlparse(urls["rabbitmq"])
    base = unquote(amqp.path[1:]) or "/"
    vhost = f"{base.strip('/') or 'ttg'}-{XDIST_RUN}-{XDIST_WORKER}"
    if amqp.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"{XDIST_WORKER}: a vhost of its own needs the local rabbitmqctl; "
                           f"{amqp.hostname} is not this machine (run without -n)")
    _WANTED_VHOST = (vhost, unquote(amqp.username or "guest"))
    os.environ["TTG_RABBITMQ_URL"] = amqp._replace(path="/" + quote(vhost, safe="")).geturl()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The worker's vhost is made once the tests are known, and only if a slow one (which
    may use a broker) is among them: the unit layer needs none, and each rabbitmqctl call
    starts an Erlang VM (~1 s)."""
    global _OWN_VHOST
    if _WANTED_VHOST is None or not any(i.get_closest_marker("slow") for i in session.items):
        return
    vhost, user = _WANTED_VHOST
    _rabbitmqctl("add_vhost", vhost)
    _OWN_VHOST = vhost
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_VHOST:
        _rabbitmqctl("delete_vhost", _OWN_VHOST)


if XDIST_WORKER:
    _isolate_xdist_worker()

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
# A contract test of a capability skips (pytest.skip) on a backend that does not claim it.
ALLOWED_SKIPS = (("kind", re.compile(r"docker", re.IGNORECASE)),
                 ("capability", re.compile(r"does not claim")),
                 # the original system's worker is not ours to ship: a person provides it
                 ("original", re.compile(r"TTG_ORIGINAL_DIR")))


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


# Under xdist, what may run beside what. CPU_HEAVY tests (a benchmark, Ray and Dask,
# chromium, JupyterLab, notebook kernels) take both cores, so they run alone: no other
# CPU_HEAVY or TIMING test beside them (an exclusive lock). TIMING tests assert run times,
# lease, expiry or recovery delays, or ratios to a baseline run; they are light (their
# workers sleep), so two may share the machine (a shared lock). Any other test - a fault test
# that asserts no duration, or only lower bounds - takes no lock and may run beside anything.
# No test acts on a whole broker server (the Redis connection cut kills its own database's
# clients only). Tests that stop and restart a private broker are TIMING: their runs' time
# limits include the broker's restart. Entries are node id prefixes ("module.py::" is the
# whole module).
CPU_HEAVY = ("test_bench_smoke.py::test_quick_benchmark_suite", "test_peers_bench.py::",
             "test_browser_demo.py::", "test_notebooks.py::", "test_notebooks_results.py::",
             "test_notebooks_own_function.py::",
             "test_plotly_sharing.py::test_page_draws_its_charts_offline_in_chromium")
TIMING = ("test_faults_round_two.py::test_redis_connections_cut_cost_little",
          "test_faults_round_two.py::test_hung_worker_is_killed_and_replaced",
          "test_faults_round_two.py::test_dead_worker_chunk_moves_on_within_half_a_second",
          "test_faults_round_two.py::test_rabbitmq_app_stopped_for_3_s_costs_the_outage",
          "test_faults_round_two.py::test_rabbitmq_monitor_matches_rabbitmqctl_or_says_unknown",
          "test_faults_round_two.py::test_redis_monitor_matches_xinfo",
          "test_faults.py::test_one_worker_killed",
          "test_faults.py::test_frozen_worker_loses_its_chunk_within_seconds",
          "test_faults.py::test_redis_restarted_without_its_data",
          "test_faults.py::test_broker_restarted_mid_run",
          "test_contract.py::", "test_kubernetes_provider.py::", "test_local_cluster.py::",
          "test_pid1_kill.py::", "test_k8s_preflight.py::", "test_k8s_defects.py::",
          "test_run_lock.py::", "test_sweeps.py::test_resume_after_the_orchestrator_was_killed",
          "test_worker_unit.py::", "test_run_unit.py::", "test_run_figures.py::",
          "test_bench_smoke.py::")


def _load_class(item: pytest.Item) -> int:
    """0 CPU_HEAVY, 1 untimed, 2 TIMING: the order xdist hands them out in (see above)."""
    path, _, rest = item.nodeid.partition("::")
    name = f"{Path(path).name}::{rest}"
    if name.startswith(CPU_HEAVY):
        return 0
    return 2 if name.startswith(TIMING) else 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a real broker is slow by definition: not in the unit layer. Under
    xdist the CPU_HEAVY tests come first, so that untimed ones fill the other core while they
    run, and the TIMING ones last, in pairs (a stable sort: modules stay in one piece)."""
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if XDIST_WORKER:
        items.sort(key=_load_class)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Under xdist: the lock of the test's class (above) around its set-up, call and
    teardown, module fixtures included (a notebook run is set up by its first test)."""
    kind = _load_class(item)
    if not XDIST_WORKER or kind == 1:
        yield
        return
    shared = item.config._tmp_path_factory.getbasetemp().parent  # one per xdist run
    with open(shared / "ttg-load.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if kind == 0 else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def require_package(name: str, reason: str) -> None:
    """Skip the calling test module where ``name`` is not installed, as importorskip would,
    but without importing it: kubernetes and papermill load jsonschema's format grammars
    (~2 s of CPU), which every pytest process would pay at collection even when none of
    the module's tests is selected (the tests import what they use)."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(reason, allow_module_level=True)


def ttg_in_process(*args: str, env: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess:
    """``ttg ARGS`` in this process (click's CliRunner), ``env`` set for the call: its exit
    code, stdout and stderr as a subprocess gives them, without a new interpreter's start-up
    (~0.3 s of CPU). An exception escaping the command propagates (a subprocess would print
    its traceback)."""
    from click.testing import CliRunner

    from ttg_lib.cli import main

    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return subprocess.CompletedProcess(["ttg", *args], result.exit_code, result.stdout,
                                       result.stderr)


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
