"""Crash consistency (issue 19): the orchestrator dies at each step of flush, settle and
close (``TTG_CRASH_AT``, :mod:`ttg_lib.crashpoints`), then ``ttg run --resume`` finishes the
run. Every point is present exactly once, with its value, on both brokers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttg_lib import load_results
from ttg_lib.crashpoints import POINTS
from ttg_lib.examples import pi_estimate

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"axes": {"samples": [200], "seed": {"range": [0, 240]}}}


def _ttg(out: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TTG_CRASH_AT"}
    if crash:
        env["TTG_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor",
                           "none", "--output-dir", str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_death_at_any_step_then_resume_keeps_every_point_once(tmp_path, backend_name,
                                                                 broker_url, point):
    run_id = f"crash-{point}-{backend_name}"
    first = _ttg(tmp_path, "--backend", backend_name, "--run-id", run_id, "--space",
                 json.dumps(SPACE), "--compute", "ttg_lib.examples:pi_estimate",
                 "--chunk-size", "10", "--workers", "2", "--work-ms", "15",
                 "--verify", "none", crash=f"{point}:1")  # the first visit: a fast run
    # may flush only once
    assert first.returncode == 137, (first.returncode, first.stderr[-2000:])
    resumed = _ttg(tmp_path, "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["ok"] and summary["params_verified"] == 240, summary["problems"]
    assert summary["results_rows"] == 240
    frame = load_results(summary["record_dir"])
    assert frame["param_id"].tolist() == list(range(240))  # every point, once
    assert frame["error"].isna().all()
    expected = [pi_estimate(200, seed) for seed in range(240)]
    assert frame["value"].tolist() == expected  # with its value
