"""The data plane on frames alone (issue 19): no broker, no cluster, a clock of our own.

:class:`ttg_lib.ledger.Ledger` checks, counts and writes the frames it is handed, says what to
publish, and restores a record for a resume."""

from __future__ import annotations

import dataclasses

from ttg_lib import load_results
from ttg_lib.config import RunConfig
from ttg_lib.ledger import Ledger
from ttg_lib.messages import Result
from ttg_lib.record import RunRecord, read_jsonl


def config(tmp_path, **overrides) -> RunConfig:
    values = {"total_params": 20, "chunk_size": 5, "work_ms": 0.0, "verify": "none",
              "output_dir": str(tmp_path), "monitor": "none", **overrides}
    return RunConfig.build(**values)


def ledger(cfg: RunConfig, now: list[float] | None = None) -> Ledger:
    clock = now or [0.0]
    book = Ledger(cfg, None, RunRecord(cfg.record_dir), lambda: clock[0], say=lambda _l: None)
    book.open()
    return book


def frame(cfg: RunConfig, chunk: int, worker: str = "w1", **changes) -> Result:
    start = chunk * cfg.chunk_size
    r = Result(run_id=cfg.run_id, chunk_id=chunk, start=start, count=cfg.chunk_size,
               worker=worker, attempt=1, started_at=1.0 + chunk, finished_at=2.0 + chunk,
               values=[float(p) for p in range(start, start + cfg.chunk_size)])
    return dataclasses.replace(r, **changes)


def test_frames_in_rows_out_and_every_chunk_once(tmp_path):
    cfg = config(tmp_path)
    book = ledger(cfg)
    got = book.ingest([frame(cfg, 0), frame(cfg, 1), frame(cfg, 1, worker="w2")])
    assert [r.chunk_id for r in got.new] == [0, 1] and got.asks == []
    assert [t.chunk_id for t in book.unfinished()] == [2, 3]
    book.ingest([frame(cfg, 2), frame(cfg, 3)])
    assert book.all_done and book.flush()
    book.close()
    verdict = book.verdict()
    assert verdict.ok and verdict.duplicate_deliveries == 1
    assert load_results(cfg.record_dir)["value"].tolist() == [float(p) for p in range(20)]
    book.record.flush()
    timeline = read_jsonl(cfg.record_dir / "chunks.jsonl")
    assert [(row["chunk_id"], row["duplicate"]) for row in timeline] == [
        (0, False), (1, False), (1, True), (2, False), (3, False)]


def test_a_corrupt_frame_is_asked_for_again_not_written(tmp_path):
    cfg = config(tmp_path)
    book = ledger(cfg)
    got = book.ingest([frame(cfg, 0, corrupt=True)])
    assert got.new == [] and [t.chunk_id for t in got.asks] == [0]
    assert [t.chunk_id for t in book.unfinished()] == [0, 1, 2, 3]


def test_recomputations_are_asked_for_and_come_after_the_chunks(tmp_path):
    cfg = config(tmp_path, verify="full")
    book = ledger(cfg)
    got = book.ingest([frame(cfg, 1)])
    assert [(t.chunk_id, t.verify_of) for t in got.asks] == [(1, "w1")]
    owed = [(t.chunk_id, t.verify_of) for t in book.unfinished()]
    assert owed == [(0, ""), (2, ""), (3, ""), (1, "w1")]  # chunks first
    book.ingest([frame(cfg, 1, worker="w2", verify=True)])
    assert book.verdict().values_recomputed == 5


def test_flush_is_due_every_second_and_sooner_when_idle(tmp_path, monkeypatch):
    import ttg_lib.ledger as ledger_module

    now = [100.0]
    monkeypatch.setattr(ledger_module.time, "monotonic", lambda: now[0])
    cfg = config(tmp_path)
    book = ledger(cfg)
    book.ingest([frame(cfg, 0)])
    assert book.flush_due(idle=False)  # the first one at once
    now[0] += 0.5
    assert not book.flush_due(idle=False)
    assert book.flush_due(idle=True)  # idle: after IDLE_SETTLE_S
    now[0] += 0.5
    assert not book.flush_due(idle=False)
    now[0] += 0.6
    assert book.flush_due(idle=False)


def test_restore_counts_the_record_and_the_torn_timeline(tmp_path):
    cfg = config(tmp_path)
    first = ledger(cfg)
    first.ingest([frame(cfg, 0), frame(cfg, 1)])
    first.flush()
    first.ingest([frame(cfg, 2)])  # read, never on disk: the orchestrator died here
    first.record.close()
    with open(cfg.record_dir / "chunks.jsonl", "a") as timeline:
        timeline.write('{"chunk_id": 3, "wor')  # torn by the death
    resumed = ledger(cfg)
    line = resumed.restore()
    assert "2 of 4 chunks already in its results" in line
    assert [t.chunk_id for t in resumed.unfinished()] == [2, 3]
    assert resumed.chunks_redone == 1 and resumed.rows == 10


def test_many_cheap_chunks_travel_in_bundles_and_their_checks_too(tmp_path):
    cfg = config(tmp_path, total_params=40, chunk_size=1, workers=2, verify="full",
                 chunks_per_task=4)
    book = ledger(cfg)
    sent = list(book.tasks())
    assert [t.chunks for t in sent] == [4] * 10
    assert [p.chunk_id for t in sent for p in t.parts()] == list(range(40))
    got = book.ingest([frame(cfg, c, worker="w1" if c < 5 else "w2") for c in range(8)])
    asks = [(t.verify_of, [p.chunk_id for p in t.parts()]) for t in got.asks]
    assert asks == [("w1", [0, 1, 2, 3]), ("w1", [4]), ("w2", [5, 6, 7])]  # never mixed
    owed = [(t.verify_of, t.chunks) for t in book.unfinished()]
    assert owed[:8] == [("", 4)] * 8 and sum(n for _w, n in owed[8:]) == 8
