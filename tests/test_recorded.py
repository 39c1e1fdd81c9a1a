"""The record read back, typed (ttg_lib/recorded.py, load_summary): a record this version
writes, one an older TTG wrote (fields missing), and one a newer TTG wrote (fields and
words this version does not know) all load, and the reports and charts draw from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_run_unit import drive, memory_run

from ttg_lib import report
from ttg_lib.record import load_summary
from ttg_lib.recorded import (
    Activity,
    EventKind,
    Fault,
    FaultReason,
    Outage,
    QueueDepth,
    QueueRole,
    Sample,
    load_events,
    load_heartbeats,
    load_samples,
)
from ttg_lib.summary import RunSummary

# summary.json as the first typed TTG wrote it (e9bdf74): no verify_mode, values_recomputed,
# results_rows, resumed, failed_points...; its fault without reason or victim_chunk.
OLD_SUMMARY = {
    "run_id": "old-1", "started_at": "2026-11-29T10:00:00", "record_dir": "", "compute":
    "ttg_lib.compute:placeholder", "backend": "redis", "cluster": "local", "scale": "small",
    "workers": 3, "total_params": 100, "chunk_size": 10, "work_ms": 1.0, "chunks_total": 10,
    "chunks_completed": 10, "chunks_failed": 0, "params_verified": 100, "lost_params": 0,
    "wrong_results": 0, "duplicate_deliveries": 1, "foreign_results": 0, "retry_count": 0,
    "dlq_count": 0, "retry_queue": 0, "results_queue": 0, "tasks_queue": 0, "runtime_s": 2.0,
    "throughput_params_s": 50.0, "ideal_runtime_s": 0.04, "efficiency": 0.02,
    "fault": {"kill_at": 0.3, "killed_worker": "w2", "killed_at_s": 0.7,
              "killed_at_fraction": 0.3, "recovered_after_s": 0.25},
    "workers_started": 3, "orchestrator_peak_rss_mib": 80.0, "verify_s": 0.1,
    "worker_peak_rss_mib": None, "cpu_s": {"orchestrator": 0.5}, "workers_replaced": 1,
    "restart": "always", "broker_outages": [{"start_s": 1.0, "end_s": 1.5}], "state": "done",
    "verified": True, "ok": True, "problems": []}
OLD_SAMPLES = [  # no broker_up, *_unacked, eta; wall on the second only
    {"t": 0.0, "completed": 0, "failed": 0, "params_done": 0, "live_workers": 3, "tasks": 10,
     "tasks_ready": 7, "results": 0, "results_ready": 0, "consumers": 3},
    {"t": 1.0, "completed": 6, "failed": 0, "params_done": 60, "live_workers": 3, "tasks": 4,
     "tasks_ready": 4, "results": None, "results_ready": 0, "consumers": 3, "wall": 101.0}]
OLD_EVENTS = {"workers": [{"t": 100.7, "event": "killed", "worker": "w2"},
                          {"t": 101.0, "event": "replaced", "worker": "w4",
                           "detail": "pid 9, replaces w2"}],
              "fault": OLD_SUMMARY["fault"], "broker_outages": OLD_SUMMARY["broker_outages"]}
OLD_WORKERS = [{"name": "w1", "pid": 7, "state": "stopped", "chunks_done": 4}]


def write_record(path: Path, summary: dict, samples: list, events: dict, workers: list) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps({**summary, "record_dir": str(path)}))
    (path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (path / "events.json").write_text(json.dumps(events))
    (path / "workers.json").write_text(json.dumps(workers))
    return path


@pytest.fixture
def old_record(tmp_path: Path) -> Path:
    return write_record(tmp_path / "runs" / "old-1", OLD_SUMMARY, OLD_SAMPLES, OLD_EVENTS,
                        OLD_WORKERS)


def test_a_record_an_older_ttg_wrote_loads_typed(old_record: Path):
    summary = load_summary(old_record)
    assert isinstance(summary, RunSummary) and summary.verify_mode == "full"
    assert summary.values_recomputed == 0 and summary.failed_points is None
    assert summary.fault == Fault(killed_worker="w2", killed_at_s=0.7, killed_at_fraction=0.3,
                                  kill_at=0.3, recovered_after_s=0.25)
    assert summary.fault.reason is FaultReason.DEMO and summary.fault.victim_chunk is None
    assert summary.broker_outages == [Outage(start_s=1.0, end_s=1.5)]
    assert summary.broker_outages[0].duration_s == 0.5
    samples = load_samples(old_record)
    assert samples[0].queues[QueueRole.TASKS] == QueueDepth(10, 7, None)
    assert samples[1].column("results") is None and samples[1].column("results_ready") == 0
    assert samples[0].wall is None and samples[0].broker_up and samples[0].eta_s is None
    events = load_events(old_record)
    assert [e.kind for e in events.workers] == [EventKind.KILLED, EventKind.REPLACED]
    assert events.workers[0].detail == "" and events.fault == summary.fault
    [worker] = load_heartbeats(old_record)
    assert (worker.ident, worker.state, worker.activity) == ("7", Activity.STOPPED, None)


def test_reports_and_charts_read_an_old_record(old_record: Path):
    pytest.importorskip("plotly")
    from ttg_lib.notebook import figure_from_record, milestone_table, run_title, verdict_html

    rows = dict((metric, observed) for metric, _target, observed in
                report.milestone_rows(load_summary(old_record)))
    assert rows["Worker killed"] == "1 (w2) at ~30%" and rows["Data loss"] == "ZERO"
    assert rows["Chunk recovered after kill"] == "0.25 s"
    assert "fault: w2 killed at 0.7s" in run_title(load_summary(old_record))
    assert "VERIFIED" in verdict_html(load_summary(old_record))
    assert "w2" in milestone_table(json.loads((old_record / "summary.json").read_text()))
    fig = figure_from_record(old_record)
    labels = [a.text for a in fig.layout.annotations]
    assert "fault: w2 killed" in labels and "broker down" in labels
    assert any(s.x0 == 1.0 and s.x1 == 1.5 for s in fig.layout.shapes if s.type == "rect")


def test_a_record_a_newer_ttg_wrote_loads_and_keeps_what_it_does_not_know(tmp_path: Path):
    summary = {**OLD_SUMMARY, "a_later_field": 1,
               "fault": {**OLD_SUMMARY["fault"], "reason": "a reason of tomorrow"}}
    row = {**OLD_SAMPLES[0], "wall": 99.0, "tasks_unacked": 3, "results_in_flight": 5}
    events = {**OLD_EVENTS, "workers": [{"t": 1.0, "event": "teleported", "worker": "w1"}]}
    workers = [{"name": "w1", "ident": "8", "state": "running", "activity": "dreaming"}]
    path = write_record(tmp_path / "new", summary, [row], events, workers)
    typed = load_summary(path)
    assert typed.fault.reason is FaultReason.OTHER
    assert typed.to_dict()["fault"]["reason"] == "a reason of tomorrow"  # never rewritten
    [sample] = load_samples(path)
    assert sample.extra == {"results_in_flight": 5} and sample.column("results_in_flight") == 5
    assert sample.queues[QueueRole.TASKS].unacked == 3 and sample.has("results_in_flight")
    assert Sample.from_dict(sample.to_dict()) == sample and sample.to_dict().items() >= row.items()
    assert load_events(path).workers[0].kind is EventKind.OTHER
    assert load_heartbeats(path)[0].activity is Activity.OTHER


def test_the_summary_writes_back_every_field_of_the_fault_and_the_outages():
    """Typing the fault and the outages drops nothing summary.json held (what a Faults and
    a BrokerSession write, and a field of tomorrow's)."""
    fault = {"kill_at": None, "killed_worker": "w1", "killed_at_s": 1.2,
             "killed_at_fraction": 0.4, "victim_chunk": 7, "recovered_after_s": 0.3,
             "reason": "test", "recovered_chunk": 7, "recovered_by": "w2", "later": [1]}
    outage = {"start_s": 1.0, "end_s": 2.0, "republished_chunks": 3, "republished_checks": 0,
              "broker_kept_chunks": 5, "later": True}
    written = {**OLD_SUMMARY, "fault": fault, "broker_outages": [outage]}
    again = RunSummary.from_dict(written).to_dict()
    assert again["fault"] == fault and again["broker_outages"] == [outage]
    assert json.loads(json.dumps(again))["fault"] == fault
    before_recovery = {k: v for k, v in fault.items() if k not in ("recovered_chunk",
                                                                      "recovered_by")}
    still_down = {"start_s": 1.0, "end_s": None}  # nothing added that was not written
    again = RunSummary.from_dict({**written, "fault": before_recovery,
                                  "broker_outages": [still_down]}).to_dict()
    assert again["fault"] == before_recovery and again["broker_outages"] == [still_down]


def test_a_record_this_version_writes_loads_typed(tmp_path: Path):
    written = drive(memory_run(tmp_path, work_ms=20.0),
                    action=lambda r: r.kill_worker_now(reason="manual"))
    path = Path(written["record_dir"])
    summary = load_summary(path)
    assert summary.to_dict() == json.loads((path / "summary.json").read_text())
    assert summary.fault.reason is FaultReason.MANUAL and summary.fault.killed_worker
    assert not summary.fault.extra  # every field the run writes is known here
    assert summary.verdict.ok
    samples = load_samples(path)
    assert samples and all(isinstance(s.wall, float) for s in samples)
    assert samples[-1].completed == summary.chunks_completed
    assert not any(s.extra for s in samples)  # every field the sampler writes is known here
    kinds = {e.kind for e in load_events(path).workers}
    assert EventKind.KILLED in kinds and EventKind.OTHER not in kinds
    beats = load_heartbeats(path)
    assert beats and all(isinstance(b.state, Activity) for b in beats)


def test_the_summary_carries_the_verdicts_counts_and_nests_them_again(tmp_path: Path):
    from dataclasses import fields

    from ttg_lib.config import RunConfig
    from ttg_lib.summary import VERDICT_COUNTS, Timing, build_summary
    from ttg_lib.verify import Verdict

    config = RunConfig.build(backend="redis", total_params=100, chunk_size=10,
                             output_dir=str(tmp_path))
    shared = {f.name for f in fields(Verdict)} & set(RunSummary.keys())
    assert set(VERDICT_COUNTS) == shared - {"total_params", "chunks_total", "problems"}
    counts = {name: 11 + i for i, name in enumerate(VERDICT_COUNTS)}  # each its own figure
    verdict = Verdict(total_params=100, chunks_total=10, **counts, problems=["one"])
    summary = build_summary(config=config, started_at="now", state="done", verdict=verdict,
                            timing=Timing(runtime_s=1.0, orchestrator_cpu_s=0.1), stats=None,
                            dead_letters=0, retries=0, fault=None, workers=[],
                            workers_started=1, workers_replaced=0, outages=[],
                            peak_rss_mib=1.0, verify_s=0.0, verify_mode="full",
                            results_rows=0, results_file=None)
    assert {name: getattr(summary, name) for name in VERDICT_COUNTS} == counts
    assert summary.verdict == verdict
    assert RunSummary.from_dict(summary.to_dict()).verdict == verdict
