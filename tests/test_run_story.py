"""The queue chart tells the run's story (issue 22, item 5) and `ttg monitor` the ETA (item 6):
each sample carries the ledger's figures (chunks left, recomputations queued, points on disk),
drawn apart from the broker's own; a resumed run's ETA counts only its own throughput."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_ledger import config, frame, ledger
from test_run_unit import drive, memory_run

from ttg_lib.eta import EtaModel
from ttg_lib.monitor import last_sample, progress_line, run_progress
from ttg_lib.record import read_jsonl
from ttg_lib.runstate import Progress, RunState
from ttg_lib.sampling import sample_row

STORY = ["chunks left to compute", "recomputations queued", "points on disk"]


def test_a_sample_has_the_ledgers_figures_beside_the_brokers():
    progress = Progress(elapsed_s=2.0, chunks_total=100, chunks_completed=33, chunks_failed=2,
                        params_done=330, live_workers=3, state=RunState.RUNNING,
                        stats={"tasks": {"messages": 100, "ready": 97, "unacked": 3,
                                         "consumers": 3}},
                        verify_queued=31, rows_on_disk=320)
    row = sample_row(progress)
    assert (row["chunks_left"], row["verify_queued"], row["rows"]) == (65, 31, 320)
    assert (row["tasks"], row["tasks_ready"], row["consumers"]) == (100, 97, 3)  # the broker's
    kept_nothing = sample_row(dataclasses.replace(progress, rows_on_disk=None, stats=None))
    assert kept_nothing["rows"] is None and "tasks" not in kept_nothing


def test_a_verified_runs_samples_show_chunks_falling_and_recomputations_queued(tmp_path):
    summary = drive(memory_run(tmp_path, work_ms=20.0, verify="full"))
    assert summary["ok"], summary["problems"]
    samples = read_jsonl(tmp_path / "runs" / summary["run_id"] / "samples.jsonl")
    left = [s["chunks_left"] for s in samples]
    rows = [s["rows"] for s in samples]
    assert left == sorted(left, reverse=True) and left[0] > left[-1] == 0
    assert rows == sorted(rows) and rows[-1] == 60
    assert max(s["verify_queued"] for s in samples) > 0 and samples[-1]["verify_queued"] == 0
    assert any(s.get("eta_s") is not None for s in samples)  # what `ttg monitor` shows


def test_the_chart_draws_the_story_and_labels_the_brokers_figures(tmp_path):
    from ttg_lib.notebook.charts import figure_from_record

    summary = drive(memory_run(tmp_path, work_ms=10.0, verify="full"))
    fig = figure_from_record(summary["record_dir"])
    names = [trace.name for trace in fig.data]
    assert names[:3] == STORY
    assert "broker: ttg.tasks messages" in names and "broker: consumers" in names  # memory
    left = list(fig.data[0].y)
    assert left[0] > left[-1] == 0 and left == sorted(left, reverse=True)
    assert fig.data[2].y[-1] == 60  # points on disk at the end


def test_an_old_record_without_the_story_still_draws_chunks_left(tmp_path):
    from ttg_lib.notebook.charts import figure_from_record

    record = tmp_path / "old"
    record.mkdir()
    (record / "summary.json").write_text(json.dumps({"run_id": "old", "chunks_total": 10,
                                                     "backend": "redis"}))
    (record / "samples.jsonl").write_text("\n".join(json.dumps(
        {"t": t, "completed": done, "failed": 0, "params_done": done * 10, "live_workers": 2,
         "tasks": 10, "tasks_ready": 8}) for t, done in ((0.0, 0), (1.0, 4), (2.0, 10))))
    fig = figure_from_record(record)
    assert list(fig.data[0].y) == [10, 6, 0]  # derived from the chunks finished
    assert not any(fig.data[1].y) and not any(fig.data[2].y)  # never sampled: no line
    assert list(fig.data[3].y) == [10, 10, 10]


def test_monitor_reads_the_story_and_eta_from_the_records_last_sample(tmp_path):
    record = tmp_path / "r1"
    record.mkdir()
    rows = [{"t": float(i), "chunks_left": 40 - i, "verify_queued": i, "rows": 10 * i,
             "eta_s": 65.0, "eta_spread_s": 12.0} for i in range(2000)]
    (record / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                          + '{"t": 2000.0, "chunks_l')  # torn by the writer
    assert last_sample(record / "samples.jsonl")["t"] == 1999.0
    run = run_progress(record)
    assert run["chunks_left"] == -1959 and not run["ended"]
    line = progress_line({**run, "chunks_left": 3, "verify_queued": 5, "rows": 120})
    assert line == ("run r1 at 1999.0s: 3 chunks left to compute, 5 recomputations queued, "
                    "120 points on disk, ETA 1m05s ± 12s")
    (record / "summary.json").write_text("{}")
    assert progress_line(run_progress(record)).endswith(", ended")
    assert run_progress(tmp_path) is None and progress_line(None) == "run: no sample yet"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ttg_monitor_once_shows_where_the_run_is(backend, tmp_path):
    from test_cli_user import ttg

    record = tmp_path / "runs" / "r7"
    record.mkdir(parents=True)
    (record / "samples.jsonl").write_text(json.dumps(
        {"t": 4.0, "chunks_left": 7, "verify_queued": 2, "rows": 30, "eta_s": 9.0,
         "eta_spread_s": 0.0}) + "\n")
    shown = ttg("monitor", "--backend", backend.name, "--once", "--run", "r7",
                "--output-dir", str(tmp_path), env={"COLUMNS": "200"}, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert ("run r7 at 4.0s: 7 chunks left to compute, 2 recomputations queued, 30 points "
            "on disk, ETA 9s") in shown.stdout
    snap = json.loads(ttg("monitor", "--backend", backend.name, "--once", "--json", "--run",
                          "r7", "--output-dir", str(tmp_path), timeout=60).stdout)
    assert snap["run"]["eta_s"] == 9.0 and snap["run"]["chunks_left"] == 7


# -- the ETA of a resumed run -------------------------------------------------------------

def test_restored_chunks_are_no_work_left_and_no_throughput():
    model = EtaModel(None, chunk_size=10, total_points=100)
    model.restore(range(6))  # on disk before the run: their time is not this run's
    model.observe(6, 0.0, 2.0)
    estimate = model.estimate(2.0)
    assert estimate is not None and estimate.model == "rate"
    assert estimate.remaining_s == pytest.approx(3 * 2.0)  # 3 chunks left, 2 s each
    assert estimate.naive_s == pytest.approx(2.0 * 3 / 1)  # this run's pace: 1 chunk in 2 s


def test_chunks_read_before_the_run_started_fit_but_are_not_throughput():
    model = EtaModel(None, chunk_size=10, total_points=100)
    model.observe(0, -500.0, -499.0, before=True)  # the dead orchestrator's last results
    model.observe(1, -400.0, -399.0, before=True)
    assert model.estimate(1.0) is None  # nothing computed by this run yet: no rate
    model.observe(2, 0.0, 1.0)
    estimate = model.estimate(1.0)
    assert estimate.remaining_s == pytest.approx(7 * 1.0)  # not stretched over the 500 s gap
    assert estimate.naive_s == pytest.approx(7.0)


def test_a_resumed_ledger_restores_its_chunks_into_the_eta(tmp_path):
    cfg = config(tmp_path)
    first = ledger(cfg)
    first.ingest([frame(cfg, 0), frame(cfg, 1)])
    first.flush()
    first.record.close()
    resumed = ledger(cfg)
    resumed.restore()
    assert resumed.eta.chunks_done == 2 and resumed.eta.chunks_timed == 0
    resumed.ingest([frame(cfg, 2, started_at=0.0, finished_at=1.0)], before=True)
    assert resumed.eta.chunks_timed == 0 and resumed.eta.estimate(5.0) is None
    resumed.ingest([frame(cfg, 3, started_at=10.0, finished_at=11.0)])
    assert resumed.eta.chunks_timed == 1


def test_the_notebook_status_line_shows_the_eta():
    from ttg_lib.config import RunConfig
    from ttg_lib.eta import Eta
    from ttg_lib.notebook.live import status_line

    progress = Progress(elapsed_s=2.0, chunks_total=100, chunks_completed=33, chunks_failed=0,
                        params_done=330, live_workers=3, stats=None, state=RunState.RUNNING,
                        eta=Eta(65.0, 12.0, 40.0, "axes"))
    line = status_line(progress, RunConfig.build(run_id="r1"))
    assert line.endswith("3 workers live, ETA 1m05s ± 12s")
    assert "ETA" not in status_line(dataclasses.replace(progress, eta=None),
                                    RunConfig.build(run_id="r1"))
