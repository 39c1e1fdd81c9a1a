"""The ETA that knows the axes (issue 22, item 6): fitted on the chunks finished so far, it
forecasts a space whose duration grows with an axis, where the naive rate does not. The
simulated clock of benchmarks/eta.py; one real run per broker reads it from the progress."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ttg_lib.eta import Eta, EtaModel
from ttg_lib.space import load_space

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import eta as eta_bench  # noqa: E402  (benchmarks/eta.py)


def feed(model: EtaModel, durations: list[float],
         workers: int = 1) -> list[tuple[int, float, Eta]]:
    """Chunks in order on ``workers`` equal workers (each chunk observed when it is taken, a
    simplification); (chunks done, time, estimate) after each."""
    free = [0.0] * workers
    out = []
    for chunk, seconds in enumerate(durations):
        w = min(range(workers), key=free.__getitem__)
        start, free[w] = free[w], free[w] + seconds
        model.observe(chunk, start, free[w])
        estimate = model.estimate(free[w])
        if estimate is not None:
            out.append((model.chunks_done, free[w], estimate))
    return out


def test_a_duration_that_grows_with_an_axis_is_forecast_where_the_rate_is_not():
    result = eta_bench.simulate(xs=40, reps=50, chunk=50, workers=3, base_ms=1.0, slope_ms=0.5)
    assert result["chunks_done"] == 10 and result["eta"]["model"] == "axes"
    assert result["model_error"] <= 0.20 < result["naive_error"], result
    assert result["accepted"]
    # the naive ETA is too short: the cheap chunks came first
    assert result["eta"]["naive_s"] < 0.5 * result["true_remaining_s"]


def test_a_constant_duration_gives_the_rate_and_a_small_spread():
    space = load_space({"axes": {"x": {"range": [0, 100]}, "rep": {"range": [0, 10]}}})
    model = EtaModel(space, chunk_size=10, total_points=1000)
    estimates = feed(model, [0.5] * 100)
    _done, _t, quarter = estimates[24]
    assert quarter.model == "axes"
    assert quarter.remaining_s == pytest.approx(75 * 0.5, rel=1e-6)
    assert quarter.naive_s == pytest.approx(75 * 0.5, rel=1e-6)
    assert quarter.spread_s < 1e-3
    assert EtaModel(space, 10, 1000).estimate(1.0) is None  # nothing finished yet
    assert model.estimate(100.0) is None  # every chunk done


def test_parallel_workers_divide_the_remaining_work():
    space = load_space({"axes": {"x": {"range": [1, 101]}}})
    model = EtaModel(space, chunk_size=1, total_points=100)
    durations = [0.01 * x for x in range(1, 101)]
    done, _t, estimate = [e for e in feed(model, durations, workers=4) if e[0] == 20][0]
    assert estimate.model == "axes"
    remaining_work = sum(durations[done:])
    assert estimate.remaining_s == pytest.approx(remaining_work / 4, rel=0.15)


def test_noise_gives_a_spread_and_early_chunks_fall_back_to_the_rate():
    import random

    rng = random.Random(0)
    space = load_space({"axes": {"depth": {"range": [1, 51]}, "seed": {"range": [0, 20]}}})
    model = EtaModel(space, chunk_size=20, total_points=space.size)
    durations = [0.1 * (d + 1) * rng.uniform(0.8, 1.2) for d in range(1, 51)]
    estimates = feed(model, durations)
    assert estimates[0][2].model == "rate"  # one chunk fits no line
    late = estimates[20][2]
    assert late.model == "axes" and late.spread_s > 0
    assert "ETA" in late.label() and "±" in late.label()


def test_a_run_without_a_space_still_gets_an_eta():
    model = EtaModel(None, chunk_size=10, total_points=1000)
    estimates = feed(model, [0.2] * 100)
    assert estimates[49][2].remaining_s == pytest.approx(50 * 0.2, rel=1e-6)


def test_the_label_reads_like_a_clock():
    assert Eta(3725.0, 30.0, 10.0, "axes").label() == "ETA 1h02m ± 30s"
    assert Eta(95.4, 0.2, 10.0, "axes").label() == "ETA 1m35s"
    assert Eta(4.0, 0.0, 1.0, "rate").to_dict() == {"remaining_s": 4.0, "spread_s": 0.0,
                                                    "naive_s": 1.0, "model": "rate"}


def test_memory_and_cost_stay_flat_on_a_large_space():
    space = load_space({"axes": {"a": {"range": [0, 10_000]}, "b": {"range": [0, 10_000]}}})
    model = EtaModel(space, chunk_size=1000, total_points=space.size)
    assert len(model.sample) <= 256 and model.features().shape == (len(model.sample), 2)
    for chunk in range(0, 100_000, 7):
        model.observe(chunk, 0.0, 1.0 + chunk % 3)
    assert model.estimate(10.0) is not None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_run_shows_the_modelled_eta_in_its_progress(make_config, backend_name,
                                                           broker_url, tmp_path, monkeypatch):
    from ttg_lib.run import Run

    # benchmarks/eta.py's sleepy: 0.5 + 0.5 x ms a point, so the run lasts about 2 s
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "benchmarks"),
                                                      os.environ.get("PYTHONPATH", "")]))
    space = {"axes": {"x": {"range": [0, 30]}, "rep": {"range": [0, 4]}, "base_ms": [0.5],
                      "slope_ms": [0.5]}}
    config = make_config(backend=backend_name, space=space, compute="eta:sleepy",
                         chunk_size=4, workers=2, verify="none", output_dir=str(tmp_path))
    seen = []
    with Run(config) as run:
        run.start()
        while not run.done:
            progress = run.step(0.05)
            if progress.eta is not None:
                seen.append(progress.eta)
        summary = run.finish()
    assert summary["ok"] and summary["results_rows"] == 120
    assert seen, "no ETA in the progress of a 30-chunk run"
    assert all(e.remaining_s >= 0 and e.spread_s >= 0 for e in seen)
    assert any(e.model == "axes" for e in seen)


def test_the_live_chart_sample_carries_the_eta():
    from ttg_lib.notebook import sample_from_progress
    from ttg_lib.run import Progress, RunState

    progress = Progress(elapsed_s=3.0, chunks_total=10, chunks_completed=4, chunks_failed=0,
                        params_done=40, live_workers=2, stats=None, state=RunState.RUNNING,
                        eta=Eta(12.34, 1.26, 4.5, "axes"))
    row = sample_from_progress(progress)
    assert (row.eta_s, row.eta_spread_s) == (12.3, 1.3)
    assert sample_from_progress(Progress(**{**progress.__dict__, "eta": None})).eta_s is None


def test_a_failed_chunk_is_no_work_left_and_fits_nothing():
    model = EtaModel(None, chunk_size=10, total_points=40)
    model.observe(0, 0.0, 1.0)
    model.observe(1, 1.0, 30.0, failed=True)  # retries and an error: no duration to learn
    model.observe(2, 30.0, 31.0)
    estimate = model.estimate(31.0)
    assert estimate is not None and model.work_s == 2.0
    assert estimate.model == "rate" and estimate.remaining_s == pytest.approx(1.0 / (2 / 31))
    model.observe(3, 31.0, 32.0, failed=True)
    assert model.estimate(32.0) is None  # every chunk finished, one way or the other
