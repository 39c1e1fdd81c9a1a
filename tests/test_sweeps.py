"""Real sweeps against the real brokers: named spaces, results.parquet, verification on the
workers, and resuming a run whose orchestrator died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ttg_in_process

from ttg_lib import load_results
from ttg_lib.examples import train
from ttg_lib.run import execute

ROOT = Path(__file__).resolve().parents[1]
GRID = {"axes": {"lr": {"logspace": [-3, -1, 5]}, "depth": [2, 4, 6, 8],
                 "seed": {"range": [0, 3]}}}


def test_a_grid_over_named_axes_keeps_every_value_as_a_typed_table(make_config, backend_name,
                                                                    broker_url):
    summary = execute(make_config(backend=backend_name, space=GRID, workers=2,
                                  compute="ttg_lib.examples:train", chunk_size=5))
    assert summary["ok"], summary["problems"]
    assert summary["verify_mode"] == "sample" and summary["results_rows"] == 60
    assert 5 <= summary["values_recomputed"] < 60  # a sample: at least a chunk per worker
    assert summary["results_queue"] == 0  # on disk, so the broker let go of its copies
    df = load_results(summary["record_dir"])
    assert list(df.columns[:4]) == ["param_id", "lr", "depth", "seed"]
    assert len(df) == 60 and df["param_id"].tolist() == list(range(60))
    assert sorted(df["depth"].unique()) == [2, 4, 6, 8] and df["lr"].nunique() == 5
    for row in df.itertuples():
        expected = train(row.lr, row.depth, row.seed)
        assert (row._5, row._6) == (expected["loss"],
                                                            expected["accuracy"])
    assert str(df["value.loss"].dtype) == "float64"


def test_a_failing_point_appears_with_its_error(make_config, broker_url):
    summary = execute(make_config(backend="redis", space={"axes": {"x": {"range": [0, 20]}}},
                                  compute="ttg_lib.examples:fragile", chunk_size=4,
                                  max_retries=0))
    df = load_results(summary["record_dir"])
    failed = df[df["error"].notna()]
    assert failed["x"].tolist() == [13]  # alone: its chunk mates 12, 14 and 15 have values
    assert failed["error"].tolist() == ["ValueError: 13 is unlucky"]
    assert df[df["error"].isna()]["value"].tolist() == [x * x for x in range(20) if x != 13]
    assert summary["chunks_failed"] == 0 and not summary["ok"]
    assert summary["failed_points"]["count"] == 1


def test_full_verification_recomputes_every_value_on_another_worker(make_config, backend_name,
                                                                     broker_url):
    summary = execute(make_config(backend=backend_name, workers=3, verify="full"))
    assert summary["ok"] and summary["values_recomputed"] == summary["total_params"]


def test_verify_none_checks_structure_only_and_says_so(make_config, broker_url):
    from ttg_lib.report import milestone_rows

    summary = execute(make_config(backend="redis", verify="none"))
    assert summary["ok"] and summary["values_recomputed"] == 0
    rows = {metric: (target, observed) for metric, target, observed in milestone_rows(summary)}
    assert rows["Values recomputed by another worker (none)"] == (
        "0 (structure checked only)", "0")


@pytest.mark.parametrize("space,needle", [
    ({"axes": {"a": []}}, "axes.a"),
    ({"mode": "spiral", "axes": {"a": [1]}}, "mode"),
    ({"axes": {"a": {"range": ["x", 3]}}}, "axes.a"),
    ({"axes": {f"a{i}": {"range": [0, 1000]} for i in range(4)}}, "at most 1,000,000,000"),
])
def test_a_bad_space_is_one_clear_error_and_starts_nothing(tmp_path, space, needle):
    out = tmp_path / "outputs"
    proc = ttg_in_process("run", "--output-dir", str(out), "--space", json.dumps(space),
                          "--compute", "ttg_lib.examples:train")
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (out / "runs").exists()


def test_a_function_that_does_not_take_the_axes_is_refused(tmp_path):
    proc = ttg_in_process("run", "--output-dir", str(tmp_path), "--space",
                          '{"axes": {"x": [1, 2]}}', "--compute", "ttg_lib.examples:train")
    assert proc.returncode == 2 and "x" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_resume_after_the_orchestrator_was_killed(tmp_path, backend_name, broker_url):
    """SIGKILL `ttg run` at about 50 % of a small run; `ttg run --resume` finishes it: every
    point verified, at most 10 % of the chunks computed again."""
    run_id = f"resume-{backend_name}"
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--backend", backend_name,
            "--scale", "small", "--output-dir", str(tmp_path), "--json", "--monitor", "none"]
    first = subprocess.Popen([*args, "--run-id", run_id], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    chunks = tmp_path / "runs" / run_id / "chunks.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if chunks.exists() and len(chunks.read_text().splitlines()) >= 50:
            break
        time.sleep(0.1)  # another process writes the record
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    resumed = subprocess.run([*args, "--resume", run_id], cwd=ROOT, capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["ok"] and summary["resumed"] and summary["params_verified"] == 1000
    assert summary["chunks_redone"] <= 10, summary["chunks_redone"]  # ≤ 10 % of 100
    assert "resuming run" in resumed.stderr
    # --verify full (the default for TTG's own functions) covers the chunks restored from
    # disk too: each recomputed by another worker and compared with its stored rows
    assert summary["values_recomputed"] == 1000, summary["values_recomputed"]
    assert "to recompute and compare with the rows on disk (--verify full)" in resumed.stderr
    df = load_results(summary["record_dir"])
    assert df["param_id"].tolist() == list(range(1000))  # every point once
