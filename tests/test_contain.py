"""A user's function cannot take a run down (issue 18): real runs on both brokers.

A point that raises, returns what cannot be stored, kills its process or hangs fails alone,
as its own row; its chunk mates are computed; the run ends with every point accounted for.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttg_lib import load_results
from ttg_lib.failures import FAILURES_FILE
from ttg_lib.run import execute


def space(n: int) -> dict:
    return {"axes": {"x": {"range": [0, n]}}}


def test_one_raising_point_in_a_chunk_of_8_is_exactly_one_failed_row(make_config,
                                                                    backend_name,
                                                                    broker_url):
    summary = execute(make_config(backend=backend_name, space=space(40), workers=2,
                                  compute="ttg_lib.misbehave:raises_at_13", chunk_size=8,
                                  max_retries=1, retry_delay_s=0.05))
    df = load_results(summary["record_dir"])
    assert len(df) == 40
    failed = df[df["error"].notna()]
    assert failed["x"].tolist() == [13]
    assert failed["error"].tolist() == ["ValueError: 13 is unlucky"]
    assert failed["attempt"].tolist() == [2]  # tried, then retried once
    assert df[df["error"].isna()]["value"].tolist() == [x * 0.5 for x in range(40) if x != 13]
    assert summary["lost_params"] == 0 and not summary["ok"]
    assert summary["failed_points"]["by_type"] == {
        "ValueError": {"count": 1, "first_param_ids": [13],
                       "example": "ValueError: 13 is unlucky"}}
    lines = Path(summary["record_dir"], FAILURES_FILE).read_text().splitlines()
    (line,) = [json.loads(x) for x in lines]
    assert line["param_id"] == 13 and "raise ValueError" in line["trace"]

    from click.testing import CliRunner

    from ttg_lib.cli import main
    cli = CliRunner()
    out = cli.invoke(main, ["results", summary["record_dir"], "--failed", "--format", "jsonl",
                            "--out", "-"])
    assert out.exit_code == 0, out.output
    (row,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert (row["param_id"], row["error_type"]) == (13, "ValueError")
    assert "raise ValueError" in row["trace"]
    shown = cli.invoke(main, ["repro", summary["record_dir"], "13"])
    assert shown.exit_code == 1
    assert "raises_at_13(x=13)" in shown.stdout and "ValueError: 13 is unlucky" in shown.stderr
    assert "Traceback (most recent call last)" in shown.stderr
    fine = cli.invoke(main, ["repro", summary["record_dir"], "12"])
    assert fine.exit_code == 0 and "returned: 6.0" in fine.stdout


def test_every_kind_of_return_value_is_stored_or_named(make_config, backend_name, broker_url):
    from ttg_lib.misbehave import any_type_cases

    n = len(any_type_cases())
    summary = execute(make_config(backend=backend_name, space=space(2 * n), workers=2,
                                  compute="ttg_lib.misbehave:any_type", chunk_size=n,
                                  verify="full"))
    df = load_results(summary["record_dir"]).set_index("x")
    assert len(df) == 2 * n and summary["lost_params"] == 0
    assert summary["workers_replaced"] == 0  # no worker exited
    assert summary["wrong_results"] == 0 and summary["params_verified"] == 2 * n
    failed = df[df["error"].notna()]
    assert failed["error"].tolist() == ["cannot store a value of type object"] * 2
    stored = {x: json.loads(v) if isinstance(v := df.loc[x, "value"], str) else None
              for x in range(n) if x not in failed.index}  # JSON text, null for None
    assert stored[0] == 0.25 and stored[1] == 1 and stored[2] == 2  # float32, int64, uint8
    assert stored[4] is False and stored[5] is None and math.isnan(stored[6])
    assert stored[7] == math.inf and stored[8] == "text-8" and stored[9] == "AP8="
    assert stored[10] == "1.10" and stored[11] == "2026-01-02T03:04:05"
    assert stored[12] == [12, 2] and stored[13] == [1.5, "a"] and stored[14] == [0, 1, 2]
    assert stored[15] == {"a": 1.5} and stored[16] == {"nested": {"deep": [1, 2]}}
    assert stored[17] == {"loss": 0.5, "steps": 17} and stored[18] == {"a": 1, "b": 2}
    assert stored[19] == {"real": 1.0, "imag": 2.0} and stored[20] == 2**70
    assert stored[21] == "name-\\udcff" and stored[22] == {"1": "one"}


def test_numpy_scalars_keep_typed_columns(make_config, broker_url):
    summary = execute(make_config(backend="redis", space=space(30), workers=2,
                                  compute="ttg_lib.misbehave:numpy_dict", chunk_size=7))
    df = load_results(summary["record_dir"])
    assert summary["ok"], summary["problems"]
    assert str(df["value.mean"].dtype) == "float64" and str(df["value.argmax"].dtype) == "int64"
    assert df["value.mean"].tolist() == [(x + 0.25) for x in range(30)]  # float32 exact
    assert df["value.argmax"].tolist() == [2] * 30


def test_a_point_that_kills_its_process_fails_alone(make_config, backend_name, broker_url):
    started = time.monotonic()
    summary = execute(make_config(backend=backend_name, space=space(40), workers=3,
                                  compute="ttg_lib.misbehave:kills_itself", chunk_size=8))
    assert time.monotonic() - started < 60
    df = load_results(summary["record_dir"]).set_index("x")
    assert len(df) == 40 and summary["lost_params"] == 0 and summary["state"] == "done"
    assert df.loc[7, "error"] == "crashed: signal 9 (SIGKILL)"
    assert df.loc[23, "error"] == "crashed: signal 11 (SIGSEGV)"
    assert df.loc[31, "error"] == "crashed: exit code 3"
    assert df.loc[7, "attempt"] == 2  # tried, and once more (max_crashes 1)
    good = df[df["error"].isna()]
    assert len(good) == 37 and good["value"].tolist() == [x * 0.5 for x in good.index]
    assert summary["workers_replaced"] == 0  # the workers never died: their compute did
    assert summary["failed_points"]["by_type"]["crashed"]["count"] == 3
    for x, how in [(7, "signal 9 (SIGKILL)"), (31, "exit code 3")]:  # repro says it too
        shown = subprocess.run([sys.executable, "-m", "ttg_lib.cli", "repro",
                                summary["record_dir"], str(x)], capture_output=True, text=True)
        assert shown.returncode == 1
        assert f"the point ended its process: crashed: {how}" in shown.stderr, shown.stderr


@pytest.mark.parametrize("limit", ["5", "auto"])
def test_a_point_that_hangs_is_timed_out_from_outside(make_config, backend_name, broker_url,
                                                      limit):
    started = time.monotonic()
    # auto learns from the points its worker finished: one worker has done 24 before x = 25
    summary = execute(make_config(backend=backend_name, space=space(30),
                                  workers=2 if limit == "5" else 1, verify="none",
                                  compute="ttg_lib.misbehave:hangs", chunk_size=6,
                                  point_timeout=limit))
    assert time.monotonic() - started < 45
    df = load_results(summary["record_dir"]).set_index("x")
    assert len(df) == 30 and summary["lost_params"] == 0 and summary["state"] == "done"
    expected = "timeout after 5 s" if limit == "5" else "timeout after 10 s"
    assert df.loc[25, "error"] == expected
    assert df["error"].notna().sum() == 1
    assert summary["failed_points"]["point_timeout"] == limit  # which limit was used
    if limit == "auto":
        assert summary["failed_points"]["auto_point_timeout_s"] == 10.0


def test_auto_limits_a_hang_in_a_workers_first_chunk(make_config, backend_name, broker_url):
    """Before a worker has finished points of its own, auto applies the limit another worker
    of the run learned (the orchestrator puts the first one on the broker)."""
    started = time.monotonic()
    summary = execute(make_config(backend=backend_name, space=space(30), workers=2,
                                  verify="none", compute="ttg_lib.misbehave:hangs_first",
                                  chunk_size=6, point_timeout="auto"))
    assert time.monotonic() - started < 45
    df = load_results(summary["record_dir"]).set_index("x")
    assert len(df) == 30 and summary["lost_params"] == 0 and summary["state"] == "done"
    assert df.loc[1, "error"] == "timeout after 10 s"
    assert df["error"].notna().sum() == 1
    assert df["value"].dropna().tolist() == [x * 0.5 for x in range(30) if x != 1]
    assert summary["failed_points"]["auto_point_timeout_s"] == 10.0


def test_max_failures_stops_the_run_and_retry_failed_mends_it(make_config, backend_name,
                                                              broker_url, monkeypatch):
    from ttg_lib.record import read_jsonl
    from ttg_lib.run import Run

    monkeypatch.delenv("TTG_DEMO_FIXED", raising=False)
    cfg = make_config(backend=backend_name, space=space(300), workers=2, chunk_size=4,
                      compute="ttg_lib.misbehave:broken_until_fixed", max_retries=0,
                      max_failures="5")
    summary = execute(cfg)
    ended = time.time()
    assert summary["state"] == "stopped" and not summary["ok"]
    failures = read_jsonl(cfg.record_dir / FAILURES_FILE)
    assert 6 <= len(failures) < 50  # of 100: stopped early, nothing more published
    sixth = sorted(failures, key=lambda f: f["at"])[5]
    computed = min(c["finished_at"] for c in read_jsonl(cfg.record_dir / "chunks.jsonl")
                   if c["chunk_id"] == sixth["chunk_id"])
    assert ended - computed < 2.0  # from the moment its worker had it (~0.6 s, loaded)
    # the count when it stopped: 6, or 7 when the chunk that crossed 5 held two failures
    # (every third x fails: a chunk of 4 has one or two; two workers, so any order)
    assert re.match(r"stopped: [67] points failed \(first: RuntimeError: not fixed",
                    summary["problems"][-1]), summary["problems"][-1]
    before = load_results(cfg.record_dir).set_index("param_id")
    assert before["error"].notna().sum() == len(failures)

    monkeypatch.setenv("TTG_DEMO_FIXED", "1")  # the user fixed the function: retry
    with Run(cfg, resume=True, retry_failed=True) as run:
        run.start()
        while not run.done:
            run.step(0.1)
        resumed = run.finish()
    assert resumed["state"] == "done" and resumed["lost_params"] == 0
    assert resumed["failed_points"]["retried"] == len(failures)
    after = load_results(cfg.record_dir).set_index("param_id")
    assert len(after) == 300 and after.index.is_unique and after["error"].isna().all()
    assert after["value"].tolist() == [x * 0.5 for x in range(300)]
    retried = [f["param_id"] for f in failures]
    assert (after.loc[retried, "attempt"] == 2).all()  # one more attempt than the failure
    kept = [p for p in before.index if p not in retried]  # computed once, never again
    assert kept and [(str(r.worker), r.attempt) for r in after.loc[kept].itertuples()] == [
        (str(r.worker), r.attempt) for r in before.loc[kept].itertuples()]


def test_the_compute_process_is_recycled_after_n_chunks(make_config, broker_url):
    summary = execute(make_config(backend="redis", space=space(40), workers=1, chunk_size=4,
                                  compute="ttg_lib.misbehave:raises_at_13", max_retries=0,
                                  recycle_after=3, verify="none"))
    assert summary["lost_params"] == 0 and summary["failed_points"]["count"] == 1
    assert summary["failed_points"]["compute_recycled"] == 3  # after chunks 3, 6 and 9
