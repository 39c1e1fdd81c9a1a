"""The run's own logic on the in-memory backend with thread workers: verification, the
figures it reports, a killed worker, a broker outage, the run lock. No broker, no process."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest
from inthread import ThreadCluster

from ttg_lib.backends import RunLocked, open_producer
from ttg_lib.backends.memory import broker
from ttg_lib.config import RunConfig
from ttg_lib.run import Run, RunState, execute


def memory_run(tmp_path, **overrides) -> Run:
    url = f"memory://run-{uuid.uuid4().hex}"
    values = {"scale": "tiny", "workers": 2, "output_dir": str(tmp_path), "monitor": "none",
              "lease_s": 0.5, "sample_s": 0.05, **overrides}
    cfg = dataclasses.replace(RunConfig.build(**values), backend="memory", broker_url=url)
    return Run(cfg, cluster=ThreadCluster(url, cfg.run_id, lease_s=0.5),
               backend=open_producer("memory", url, lease_s=0.5))


def drive(run: Run, action=None, at: float = 0.3) -> dict:
    """The run on execute()'s loop (the CLI's), ``action(run)`` once at ``at`` of it."""
    pending = [action] if action is not None else []

    def act(progress) -> None:
        if pending and progress.fraction >= at:
            pending.pop()(run)

    return execute(run.config, act, step_s=0.02, run=run)


def test_a_run_verifies_and_its_figures_are_what_they_must_be(tmp_path):
    summary = drive(memory_run(tmp_path))
    assert summary["ok"] and summary["state"] == "done" and summary["lost_params"] == 0
    assert summary["params_verified"] == 60 and summary["chunks_completed"] == 12
    runtime, ideal = summary["runtime_s"], summary["ideal_runtime_s"]
    assert 0 < ideal <= runtime
    assert summary["efficiency"] == pytest.approx(ideal / runtime, rel=0.005)
    assert summary["efficiency"] <= 1
    assert summary["throughput_params_s"] == pytest.approx(60 / runtime, rel=0.01)


def test_a_killed_worker_loses_nothing(tmp_path):
    run = memory_run(tmp_path, work_ms=20.0)
    summary = drive(run, action=lambda r: r.kill_worker_now(reason="test"))
    assert summary["ok"], summary["problems"]
    assert summary["fault"]["killed_worker"] in ("t1", "t2")


def test_a_broker_outage_is_recorded_and_ridden_out(tmp_path):
    run = memory_run(tmp_path, work_ms=20.0)

    def outage(r: Run) -> None:
        b = broker(r.config.broker_url)
        b.down = True
        threading.Timer(0.4, lambda: setattr(b, "down", False)).start()

    summary = drive(run, action=outage)
    assert summary["ok"], summary["problems"]
    [outage_record] = summary["broker_outages"]
    assert outage_record["end_s"] > outage_record["start_s"]


def test_a_second_run_on_the_same_broker_is_refused_and_starts_nothing(tmp_path):
    first = memory_run(tmp_path)
    with first:
        first.start()
        second_cluster = ThreadCluster(first.config.broker_url, "second")
        cfg = dataclasses.replace(first.config, run_id="second")
        second = Run(cfg, cluster=second_cluster,
                     backend=open_producer("memory", first.config.broker_url))
        with pytest.raises(RunLocked):
            second.start()
        assert second_cluster.live == {}  # no worker of the refused run was started
        while not first.done:
            first.step(0.02)
        assert first.finish()["ok"]


def test_stop_ends_the_run_unverified(tmp_path):
    run = memory_run(tmp_path, work_ms=50.0)
    summary = drive(run, action=lambda r: r.stop(), at=0.1)
    assert summary["state"] == RunState.STOPPED and not summary["ok"]
    assert "run ended in state 'stopped'" in summary["problems"]
