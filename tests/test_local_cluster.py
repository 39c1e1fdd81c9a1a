"""The local cluster's supervisor: a worker that keeps crashing at start is restarted with
exponential backoff (like Kubernetes' CrashLoopBackOff), never in a tight loop."""

from __future__ import annotations

import time

import pytest

from ttg_lib.cluster.local import LocalCluster

pytestmark = pytest.mark.slow  # starts worker processes


def test_a_crash_loop_backs_off_exponentially(tmp_path):
    # an unknown backend: each worker exits at once with an error, before doing anything
    cluster = LocalCluster(backend="no-such-broker", broker_url="redis://127.0.0.1:1/0",
                           run_id="crashloop", record_dir=tmp_path / "runs" / "crashloop",
                           restart="always")
    try:
        cluster.start_workers(1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = cluster.events()
            if sum(e["event"] == "backoff" for e in events) >= 4:
                break
            time.sleep(0.1)  # the supervisor thread has no event to wait on
    finally:
        cluster.stop()
    backoffs = [e for e in events if e["event"] == "backoff"]
    assert [e["detail"] for e in backoffs[:4]] == [
        f"restart in {d:.1f}s (crash loop)" for d in (0.5, 1.0, 2.0, 4.0)]
    starts = [e["t"] for e in events if e["event"] in ("started", "replaced")]
    deaths = [e["t"] for e in events if e["event"] == "died"]
    assert len(starts) >= 4 and len(deaths) >= 4
    for i, delay in enumerate((0.5, 1.0, 2.0)):  # each replacement waited its backoff
        assert starts[i + 1] - deaths[i] >= delay - 0.05, (i, starts[i + 1] - deaths[i])
    log = (tmp_path / "runs" / "crashloop" / "workers" / "w1.log").read_text()
    assert "no-such-broker" in log  # the crash is the worker's own, reported in its log
