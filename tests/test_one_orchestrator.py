"""One orchestrator per run record (issue 19, finding 1 and 6): a second `ttg run` on a
record - a reused --run-id, a --resume of a live run, two resumes - is refused before it
touches anything, and a refused run closes no writer it did not open."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from test_run_unit import drive, memory_run

from ttg_lib import load_results
from ttg_lib.backends import RunLocked, open_producer
from ttg_lib.errors import RunError
from ttg_lib.run import Run


def _snapshot(record) -> dict[str, str]:
    return {str(p.relative_to(record)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(record.rglob("*.parquet"))}


def test_a_run_id_that_has_a_record_is_refused_without_resume(tmp_path):
    first = memory_run(tmp_path)
    summary = drive(first)
    assert summary["ok"]
    before = _snapshot(first.config.record_dir)
    again = Run(first.config, cluster=None,
                backend=open_producer("memory", first.config.broker_url))
    with pytest.raises(RunError, match="already has a record.*--resume"):
        again.start()
    assert _snapshot(first.config.record_dir) == before
    frame = load_results(summary["record_dir"])
    assert frame["param_id"].tolist() == list(range(60))  # not 120: every point once


def test_a_second_orchestrator_on_a_live_record_is_refused_and_changes_nothing(tmp_path):
    from inthread import ThreadCluster

    first = memory_run(tmp_path, work_ms=30.0)
    cfg = first.config
    with first:
        first.start()
        while first.ledger.rows < 10 and not first.done:
            first.step(0.02)
        first.ledger.flush()
        before = _snapshot(cfg.record_dir)
        assert before, "nothing on disk yet"
        second_cluster = ThreadCluster(cfg.broker_url, "second")
        second = Run(dataclasses.replace(cfg), cluster=second_cluster, resume=True,
                     backend=open_producer("memory", cfg.broker_url))
        with pytest.raises(RunLocked, match="record of run .* is in use by"):
            second.start()
        assert second_cluster.live == {}  # no worker started, none of the live run stopped
        assert _snapshot(cfg.record_dir) == before  # no part merged, moved or deleted
        while not first.done:
            first.step(0.02)
        summary = first.finish()
    assert summary["ok"] and summary["results_rows"] == 60
    assert load_results(summary["record_dir"])["param_id"].tolist() == list(range(60))


def test_a_summary_reads_back_typed_with_its_verdict_nested(tmp_path):
    from ttg_lib.record import load_summary
    from ttg_lib.summary import RunSummary

    summary = drive(memory_run(tmp_path))
    typed = load_summary(summary["record_dir"])
    assert isinstance(typed, RunSummary) and typed.to_dict() == summary
    assert typed.verdict.ok and typed.verdict.params_verified == 60
    older = {k: v for k, v in summary.items() if k not in ("resumed", "chunks_redone",
                                                           "runtime_s")}
    back = RunSummary.from_dict({**older, "a_key_from_the_future": 1})
    assert back.resumed is False and back.runtime_s is None
