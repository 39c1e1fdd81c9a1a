"""The worker probe (`python -m ttg_lib.health`, used by Kubernetes and the image's
HEALTHCHECK): healthy while a live worker's heartbeat is fresh, unhealthy otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttg_lib.cluster.local import LocalCluster
from ttg_lib.health import check


def probe(path: Path, max_age: float = 15.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttg_lib.health", "--file", str(path),
                           "--max-age", str(max_age)], capture_output=True, text=True,
                          timeout=30)


def beat(path: Path, age_s: float, state: str = "idle") -> Path:
    path.write_text(json.dumps({"last_heartbeat": time.time() - age_s, "state": state}))
    return path


@pytest.mark.parametrize("age,state,healthy,says", [
    (1.0, "idle", True, "ok: idle"),
    (1.0, "busy", True, "ok: busy"),
    (20.0, "busy", False, "s old (limit 15s), state busy"),  # 20.0 s, or a bit more
    (1.0, "stopped", False, "worker state is stopped"),
    (1.0, "starting", False, "worker state is starting"),
])
def test_probe_judges_age_and_state(tmp_path, age, state, healthy, says):
    path = beat(tmp_path / "hb.json", age, state)
    ok, message = check(path, 15.0)
    assert ok is healthy and says in message
    result = probe(path)
    assert result.returncode == (0 if healthy else 1)
    assert says in (result.stdout if healthy else result.stderr)


def test_probe_without_a_readable_heartbeat_fails(tmp_path):
    missing = probe(tmp_path / "none.json")
    assert missing.returncode == 1 and "no heartbeat file" in missing.stderr
    (tmp_path / "torn.json").write_text('{"last_heartbeat": ')
    torn = probe(tmp_path / "torn.json")
    assert torn.returncode == 1 and "unreadable heartbeat file" in torn.stderr
    assert "Traceback" not in missing.stderr + torn.stderr


def test_probe_follows_a_real_worker(tmp_path, backend_name, broker_url):
    """Healthy once the worker is ready; unhealthy once it has stopped."""
    cluster = LocalCluster(backend=backend_name, broker_url=broker_url, run_id="probe",
                           record_dir=tmp_path / "runs" / "probe")
    try:
        (info,) = cluster.start_workers(1)
        cluster.wait_ready(1, 30)
        heartbeat = tmp_path / "runs" / "probe" / "workers" / f"{info.name}.json"
        alive = probe(heartbeat)
        assert alive.returncode == 0 and alive.stdout.startswith("ok: "), alive.stderr
    finally:
        cluster.stop()
    stopped = probe(heartbeat)
    assert stopped.returncode == 1 and "worker state is stopped" in stopped.stderr
