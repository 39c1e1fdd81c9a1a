"""Many cheap chunks travel in bundles (several chunks a task message) on the real brokers:
every point still verified once, results one per chunk, and a worker killed mid-bundle
loses nothing."""

from __future__ import annotations

import pytest
from test_faults import assert_verified, drive

from ttg_lib import load_results
from ttg_lib.record import read_jsonl
from ttg_lib.run import Run

pytestmark = pytest.mark.slow  # real brokers and worker processes

# 600 chunks of 2 params x 1 ms in bundles of 8: 75 messages, ~16 ms of work each
BUNDLED = {"total_params": 1_200, "chunk_size": 2, "work_ms": 1.0, "chunks_per_task": 8,
           "verify": "full"}


def test_bundled_chunks_are_each_stored_and_recomputed_once(make_config, backend_name,
                                                            broker_url):
    cfg = make_config(backend=backend_name, **BUNDLED)
    summary = drive(Run(cfg))
    assert_verified(summary)
    assert summary["values_recomputed"] == 1_200 and summary["duplicate_deliveries"] == 0
    table = load_results(cfg.record_dir)
    assert sorted(table["param_id"].tolist()) == list(range(1_200))
    timeline = read_jsonl(cfg.record_dir / "chunks.jsonl")
    assert sorted(row["chunk_id"] for row in timeline) == list(range(600))


def test_a_worker_killed_mid_bundle_loses_nothing(make_config, backend_name, broker_url):
    cfg = make_config(backend=backend_name, **{**BUNDLED, "work_ms": 4.0}, fault_demo=True,
                      kill_at=0.3, restart="never")
    summary = drive(Run(cfg))
    assert_verified(summary)
    assert summary["fault"]["killed_worker"]
