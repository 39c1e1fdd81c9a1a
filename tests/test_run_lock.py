"""Two runs never share queues (README): the run lock, held by real runs and real crashes.

test_contract.py checks the lock primitive; these check what a user sees: a second Run is
refused while one is live, even after the Redis lock's 15 s expiry (the run renews it), and
a crashed holder's lock goes away on its own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import REDIS_URL, _require
from test_faults import assert_verified

from ttg_lib.backends import RunLocked, open_producer
from ttg_lib.run import Run

REDIS_LOCK_TTL_S = 15.0  # the Redis lock's expiry; a live run renews it every few seconds


def _refused(make_config, backend_name: str) -> str:
    """Try to start a second run; returns the refusal. It must not touch the live run."""
    second = Run(make_config(backend=backend_name, total_params=10, chunk_size=5))
    with pytest.raises(RunLocked, match="in use by") as refusal:
        second.start()
    assert second.cluster is None or not second.cluster.live_workers(), "half-started"
    return str(refusal.value)


def _drive_until(run: Run, elapsed_s: float, action) -> dict:
    fired = False
    deadline = time.monotonic() + elapsed_s + 90
    while not run.done and time.monotonic() < deadline:
        run.step(0.05)
        if not fired and run.elapsed_s >= elapsed_s:
            assert not run.done, "the run ended before the second run tried to start"
            action()
            fired = True
    assert fired and run.done, (fired, run.state)
    return run.finish()


def test_a_second_run_is_refused_while_one_is_live(make_config, backend_name, broker_url):
    cfg = make_config(backend=backend_name, total_params=200, chunk_size=5, work_ms=20.0)
    refusals = []
    with Run(cfg) as run:
        run.start()
        summary = _drive_until(run, 0.3, lambda: refusals.append(
            _refused(make_config, backend_name)))
    assert_verified(summary)  # the refused run purged nothing of the live one
    assert refusals


@pytest.mark.slow
def test_the_redis_lock_is_renewed_past_its_expiry(make_config):
    """A run of ~20 s: 17 s in, past the lock's 15 s expiry, a second run is still refused."""
    _require(REDIS_URL)
    cfg = make_config(backend="redis", total_params=600, chunk_size=5, work_ms=100.0,
                      workers=3, timeout_s=120)
    assert cfg.ideal_runtime_s >= REDIS_LOCK_TTL_S + 4
    with Run(cfg) as run:
        run.start()
        summary = _drive_until(run, REDIS_LOCK_TTL_S + 2,
                               lambda: _refused(make_config, "redis"))
    assert_verified(summary)


@pytest.mark.slow
def test_a_crashed_holders_lock_expires(backend_name, broker_url):
    """SIGKILL the lock holder: Redis frees the lock at its expiry, RabbitMQ as soon as the
    holder's connection drops. Until then the lock is held."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from ttg_lib.backends import open_producer\n"
         "b = open_producer(sys.argv[1], sys.argv[2]); b.connect(); b.acquire_run('crashed')\n"
         "print('held', flush=True); time.sleep(300)", backend_name, broker_url],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        holder.kill()
    other = open_producer(backend_name, broker_url)
    other.connect()
    try:
        if backend_name == "redis":
            with pytest.raises(RunLocked):  # a crash is not a release
                other.acquire_run("next")
        deadline = killed + REDIS_LOCK_TTL_S + 10
        while True:
            try:
                other.acquire_run("next")
                break
            except RunLocked:
                assert time.monotonic() < deadline, "a crashed holder's lock never expired"
                time.sleep(0.2)  # expiry has no notification
        freed_after = time.monotonic() - killed
        other.release_run("next")
    finally:
        other.close()
    limit = REDIS_LOCK_TTL_S + 1 if backend_name == "redis" else 5.0
    assert freed_after <= limit, freed_after
