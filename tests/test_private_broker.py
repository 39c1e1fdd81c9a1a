"""No broker at the configured loopback URL: the run starts a private one, then stops it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ttg_lib.cluster.brokers import answers, free_port
from ttg_lib.run import Run


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["redis", "rabbitmq"])
def test_run_starts_and_stops_a_private_broker(make_config, backend_name):
    port = free_port()
    url = (f"redis://127.0.0.1:{port}/0" if backend_name == "redis"
           else f"amqp://guest:guest@127.0.0.1:{port}/%2F")
    cfg = make_config(backend=backend_name, **{f"{backend_name}_url": url})
    with Run(cfg) as run:
        run.start()
        private_url = run.broker_url
        assert private_url != url and answers(private_url)
        while not run.done:
            run.step(0.1)
        summary = run.finish()
    assert summary["ok"], summary["problems"]
    assert not answers(private_url), "the private broker was left running"


def test_missing_broker_binary_is_one_clear_error(tmp_path):
    if os.path.exists("/usr/sbin/redis-server") or os.path.exists("/usr/local/sbin/redis-server"):
        pytest.skip("redis-server is installed outside PATH here; cannot hide it")
    env = {**os.environ, "PATH": str(tmp_path),
           "TTG_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc = subprocess.run([sys.executable, "-m", "ttg_lib.cli", "run", "--scale", "tiny",
                           "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "redis-server is not installed" in proc.stderr
    assert "apt-get install redis-server" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_restart_retries_a_start_up_refusal_and_keeps_the_data(monkeypatch):
    """RabbitMQ refuses to start (and exits 0) while its old node name is still registered
    with epmd: the restart tries again instead of failing the run and deleting its data."""
    from ttg_lib.backends import private

    broker = private.start_redis(aof=True)
    try:
        real_launch, launches = private._launch, []

        def refuse_once(args, env, data_dir):
            launches.append(args)
            if len(launches) == 1:
                return subprocess.Popen(["true"])  # what the clashing node does
            return real_launch(args, env, data_dir)

        monkeypatch.setattr(private, "_launch", refuse_once)
        broker.restart(timeout=30)
        assert len(launches) == 2
        assert os.path.isdir(broker.data_dir) and answers(broker.url)
    finally:
        broker.stop()
