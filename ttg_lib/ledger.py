"""The data plane of a run: every result frame, from the broker's read to results.parquet.

:class:`Ledger` owns the collector (structure, duplicates), the verification plan, the
results writer and the timeline rows (``chunks.jsonl``), and on resume the restore from the
record and the recheck of restored chunks. It never talks to the broker: :class:`Run`
hands it the frames read (:meth:`Ledger.ingest`), publishes the tasks it asks for, and
settles the broker when :meth:`Ledger.flush_due` says the rows are on disk. It takes a
clock (the run's elapsed seconds), so it is unit-tested on frames alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .bundles import bundled, fresh_bundles, recheck_size
from .config import RunConfig
from .errors import disk_error, is_disk_error
from .eta import EtaModel
from .failures import FailureBook, FailureBudget, recheck_task, retry_failed_points
from .messages import Result, Task
from .record import RunRecord, read_jsonl
from .verify import ResultCollector, Verdict, VerifyMode, VerifyPlan

SETTLE_EVERY_S = 1.0  # results on disk this often; the broker's copies released then
IDLE_SETTLE_S = 0.2  # sooner when the run is idle, but not at every empty read (a part each)
READ_SLICE = 500  # results checked between publishing the recomputations they ask for
CLOSE_ATTEMPTS = 3
CLOSE_RETRY_S = 1.0


@dataclass
class Ingested:
    """What one read brought: chunks finished for the first time (written), and the tasks
    to publish (recomputations, chunks whose delivery the structural check refused)."""

    new: list[Result] = field(default_factory=list)
    asks: list[Task] = field(default_factory=list)


class Ledger:
    def __init__(self, config: RunConfig, space: Any, record: RunRecord,
                 clock: Callable[[], float], say: Callable[[str], None] = print,
                 shipped: Any = None, retry_failed: bool = False):
        self.config = config
        self.space = space
        self.record = record
        self.clock = clock
        self.say = say
        self.shipped = shipped  # the function, when it travels by value (byvalue.py)
        self.compute_ref = shipped.ref if shipped is not None else config.compute
        self.collector = ResultCollector(run_id=config.run_id, total_params=config.total_params,
                                         chunk_size=config.chunk_size, rtol=config.verify_rtol,
                                         compute_sha256=config.compute_sha256)
        self.eta = EtaModel(space, config.chunk_size, config.total_params)
        self.failures = FailureBook(record, config.total_params,  # failed points, and
                                    FailureBudget.parse(config.max_failures),  # the budget
                                    config.point_timeout)
        self.retry_failed = retry_failed  # --retry-failed: recompute the failed points too
        self.retrying: Any = None  # retryfailed.FailedPoints, when it does
        self.plan = VerifyPlan(VerifyMode(config.verify_mode), config.run_id)
        self.writer: Any = None  # opened by open(), once the record is this run's
        self.verify_s = 0.0  # the orchestrator's own checking (recomputation is the workers')
        self.retries = 0
        self.received_before: set[int] = set()  # read by a dead orchestrator, not on disk
        self.reuse: Any = None  # reuse.ReusePlan: points earlier runs computed already
        self._copying: Iterator[None] | None = None  # reused rows still to copy in
        self._next_flush = 0.0
        self._disk_said = False

    # -- opening and restoring ----------------------------------------------------------
    def open(self) -> None:
        """Open the results writer (continuing any parts on disk): the record is ours."""
        from .results import NoResults, ResultsWriter  # pyarrow: the orchestrator's alone

        if not self.config.keep_results:
            self.writer = NoResults()
            return
        self.writer = ResultsWriter(self.config.record_dir, self.space)

    def prepare_reuse(self) -> None:
        """A fresh run looks up what earlier runs here computed (after :meth:`open`)."""
        from .reuse import plan_reuse

        self.reuse = plan_reuse(self.config, self.space, self.say)
        if self.reuse is not None and self.reuse.final:
            self._settle_reuse()

    def _settle_reuse(self) -> list[Task]:
        """The verdict on reused points: their rows to copy in, chunks of reused points only
        finished, the others' tasks (their missing points) returned."""
        from .results import ResultsWriter

        plan = self.reuse
        if isinstance(self.writer, ResultsWriter):
            self.writer.reused = plan.map.new_ids
            self._copying = self._copy_reused(plan)
        asks = []
        for cid in plan.waiting.tolist():  # a rejected source's chunks are whole again
            if self.collector.chunk_state[cid]:
                continue
            if plan.only(cid) == ():
                self.collector.restore({cid}, set())
            else:
                asks.append(self.task(cid))
        return asks

    def _copy_reused(self, plan: Any) -> Iterator[None]:
        """The reused rows into this run's table, a row group of an earlier table per step
        (10^7 rows take seconds: the run's loop, and its broker lock, go on meanwhile)."""
        import numpy as np
        import pyarrow.parquet as pq

        from .results import ValueLayout
        from .reuse import reused_rows

        for index in np.unique(plan.map.src).tolist():  # the rejected ones are gone
            layout = ValueLayout.from_schema(pq.read_schema(plan.map.sources[index].table))
            for rows in reused_rows(plan.map, index):
                self.writer.add_rows(rows, layout)
                yield

    def copy_reused(self, budget_s: float = 0.2, until_done: bool = False) -> None:
        """Copy reused rows for about ``budget_s`` (all of them with ``until_done``)."""
        if self._copying is None:
            return
        deadline = time.monotonic() + budget_s
        for _ in self._copying:
            if not until_done and time.monotonic() > deadline:
                return
        self._copying = None

    def restore(self) -> str:
        """A resumed run counts what its record holds already; restored chunks the verify
        mode picks are recomputed and compared with their rows on disk. Returns the line to
        say."""
        from .results import failed_chunks, stored_chunks

        cfg = self.config
        done = stored_chunks(cfg.record_dir, cfg.chunk_size, cfg.total_params)
        failed = failed_chunks(cfg.record_dir, cfg.chunk_size, cfg.total_params)
        if self.retry_failed:  # their chunks are published again, for those points only
            self.retrying = retry_failed_points(cfg, self.writer, self.say)
            done, failed = done - self.retrying.chunks, failed - self.retrying.chunks
        else:  # failed points on disk stay failed: counted in this run's summary too
            from .failedpoints import failed_ids_errors

            self.failures.restore(*failed_ids_errors(cfg.record_dir))
        self.collector.restore(done, failed & done)
        self.eta.restore(done)  # no work left in them, and none of this run's throughput
        rechecked = self._recheck(done - failed)
        self.received_before = {row["chunk_id"] for row in
                                read_jsonl(cfg.record_dir / "chunks.jsonl")
                                if not row.get("duplicate") and "chunk_id" in row} - done
        return (f"resuming run {cfg.run_id}: {len(done):,} of {cfg.chunks_total:,} chunks "
                f"already in its results"
                + (f"; {rechecked:,} of them to recompute and compare with the rows on disk "
                   f"(--verify {self.plan.mode})" if rechecked else ""))

    def _recheck(self, chunks: set[int]) -> int:
        from .restored import DiskComparison, stored_values
        from .results import ResultsWriter

        if self.plan.mode is VerifyMode.NONE or not chunks:
            return 0
        if not isinstance(self.writer, ResultsWriter):
            return 0  # nothing on disk to compare with (results not kept)
        cfg = self.config
        stored = stored_values(cfg.record_dir, cfg.chunk_size, cfg.total_params, chunks,
                               self.plan.wants, keep_columns=bool(cfg.verify_rtol))
        self.collector.recheck(DiskComparison(stored, self.writer, cfg.verify_rtol),
                               {cid: chunk.worker for cid, chunk in stored.items()})
        return len(stored)

    @property
    def chunks_redone(self) -> int:
        """Chunks a dead orchestrator had read that are owed again (lost with its memory)."""
        return sum(1 for c in self.received_before if not self.collector.chunk_state[c])

    # -- the run ------------------------------------------------------------------------
    def ingest(self, frames: Iterable[Result | bytes], before: bool = False) -> Ingested:
        """Check, count and buffer the frames of one read; a read is one moment.
        ``before``: read before this run published anything (what a dead orchestrator left
        in the broker): chunks done, but not this run's throughput."""
        out = Ingested()
        collector, asked_s = self.collector, 0.0  # the asked chunks' measured compute time
        for frame in frames:
            checked = time.perf_counter()
            if isinstance(frame, Result) and frame.verify and self._reuse_check(frame):
                self.verify_s += time.perf_counter() - checked
                if self.reuse.final:  # the verdict: the chunks that waited go out
                    out.asks += self._settle_reuse()
                continue
            if isinstance(frame, Result) and frame.verify:
                collector.add_verification(frame)
                self.verify_s += time.perf_counter() - checked
                continue
            new = collector.add(frame)
            self.verify_s += time.perf_counter() - checked
            if not isinstance(frame, Result):
                continue
            if not new:
                self._timeline(frame, duplicate=True)
                continue
            result = self._as_written(frame)
            self.retries += max(0, result.attempt - 1)
            self._timeline(result, duplicate=False)
            self.writer.add(result)
            self.failures.add(result)
            self.eta.observe(result.chunk_id, result.started_at, result.finished_at,
                             failed=result.error is not None, before=before)
            out.new.append(result)
            if (result.error is None and len(result.failures) < result.count
                    and self.plan.wants(result.chunk_id, result.worker)):
                ask = recheck_task(self.task(result.chunk_id).verification(result.worker),
                                   result)
                collector.expect_verification(result.chunk_id, ask.only)
                out.asks.append(ask)
                asked_s += result.finished_at - result.started_at
        out.asks = list(bundled(out.asks, recheck_size(  # one worker's chunks: a message
            self.config.task_bundle, asked_s, len(out.asks))))
        out.asks += [self.task(cid) for cid in collector.take_republish()]
        return out

    def _reuse_check(self, result: Result) -> bool:
        """A recomputation of reused points (its chunk id past the last chunk), compared
        with their stored values here; a late copy of one is dropped."""
        total = self.config.chunks_total
        if (self.reuse is None or result.run_id != self.config.run_id
                or not total <= result.chunk_id < 2 * total):
            return False
        if self.reuse.awaits(result.chunk_id - total):
            from .results.writer import value_columns

            self.reuse.check(result.chunk_id - total, result,
                             getattr(self.writer, "value_columns", None)
                             or (lambda r: value_columns(r, self.space)))  # results not kept
        return True

    def _as_written(self, result: Result) -> Result:
        """A chunk the structural check refused too often is written as failed, at its own
        rows (a wrong start must not file values under other points)."""
        reason = self.collector.gave_up.get(result.chunk_id)
        if reason is None:
            return result
        task = self.task(result.chunk_id)
        return dataclasses.replace(result, start=task.start, count=task.count, values=[],
                                   error=reason)

    def _timeline(self, result: Result, duplicate: bool) -> None:
        self.record.append("chunks.jsonl", {
            "chunk_id": result.chunk_id, "worker": result.worker, "attempt": result.attempt,
            "started_at": result.started_at, "finished_at": result.finished_at,
            "received_s": round(self.clock(), 4), "redelivered": result.redelivered,
            "duplicate": duplicate, "error": result.error})

    def flush_due(self, idle: bool) -> bool:
        """Time to put results on disk (every SETTLE_EVERY_S, sooner when idle), and they
        went there: the broker may now drop its copies of every result read."""
        now = time.monotonic()
        if now < self._next_flush - (SETTLE_EVERY_S - IDLE_SETTLE_S if idle else 0.0):
            return False
        self._next_flush = now + SETTLE_EVERY_S
        return self.flush()

    def flush(self) -> bool:
        """Results to disk; a write the disk refuses is said once and tried again later (the
        broker keeps its copies meanwhile: nothing is settled that is not on disk)."""
        try:
            self.writer.flush()
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            if not self._disk_said:
                self._disk_said = True
                self.say(f"{disk_error(exc, self.config.record_dir)}; the broker keeps the "
                         f"results meanwhile, trying again")
            return False
        self._disk_said = False
        return True

    def close(self) -> None:
        """The final flush and merge, tried again when the disk refuses (space may be freed
        meanwhile); then one line naming the path. What is not on disk stays in the broker:
        nothing was settled past the last part written, so a --resume finds it."""
        self.copy_reused(until_done=True)  # a run that ended early: its table whole still
        for attempt in range(CLOSE_ATTEMPTS):
            try:
                self.writer.close()
                return
            except OSError as exc:
                if not is_disk_error(exc) or attempt == CLOSE_ATTEMPTS - 1:
                    raise disk_error(exc, self.config.record_dir) from None
                time.sleep(CLOSE_RETRY_S)

    # -- tasks ----------------------------------------------------------------------------
    def task(self, chunk_id: int) -> Task:
        cfg = self.config
        start = chunk_id * cfg.chunk_size
        task = Task(run_id=cfg.run_id, chunk_id=chunk_id, start=start,
                    count=min(cfg.chunk_size, cfg.total_params - start), work_ms=cfg.work_ms,
                    compute=self.compute_ref, max_retries=cfg.max_retries,
                    retry_delay_s=cfg.retry_delay_s, published_at=time.time(), space=cfg.space,
                    point_timeout_s=cfg.point_timeout_s, max_crashes=cfg.max_crashes,
                    recycle_after=cfg.recycle_after, max_worker_mib=cfg.max_worker_mib)
        if self.reuse is not None and self.reuse.final:
            only = self.reuse.only(chunk_id)
            if only is not None:  # its reused points are not computed again
                task = dataclasses.replace(task, only=only)
        return self.retrying.task(task) if self.retrying else task

    def tasks(self) -> Iterator[Task]:
        """Every chunk's task (a fresh run), bundled when chunks are many; with reuse, the
        checks of reused points first, then the chunks with missing points."""
        if self.reuse is None and self.retrying is None:
            return fresh_bundles(self.task, self.config)
        return bundled(self._reused_tasks(), self.config.task_bundle)

    def _reused_tasks(self) -> Iterator[Task]:
        """Read as the run's window moves: what is held back is decided at the start (the
        verdict asks for the held chunks itself, so they must not come out here later)."""
        reuse = self.reuse if self.reuse is not None and not self.reuse.final else None
        if reuse is not None:
            yield from reuse.verification_tasks(self.task, self.config.chunks_total)
        state = self.collector.chunk_state
        for chunk_id in range(self.config.chunks_total):
            if not state[chunk_id] and (reuse is None or not reuse.touches(chunk_id)):
                yield self.task(chunk_id)

    def unfinished(self) -> Iterator[Task]:
        """The tasks still owed: chunks without a result, then recomputations without an
        answer. Chunks come first: a recomputation skips the simulated work, and a worker
        that met those first would size its batches for them and hoard the real chunks
        (which the others then take over as stale: each computed twice)."""
        state, size, chunks = self.collector.chunk_state, self.config.task_bundle, range(
            self.config.chunks_total)  # bundled when chunks are many
        yield from bundled((self.task(c) for c in chunks if not state[c]), size)
        yield from bundled((self.task(c).verification(self.collector.worker_of(c))
                            for c in chunks if state[c] and self.collector.awaits(c)), size)

    # -- what it knows ------------------------------------------------------------------
    @property
    def all_done(self) -> bool:
        return (self.collector.all_done and (self.reuse is None or self.reuse.final)
                and self._copying is None)

    @property
    def points_reused(self) -> int:
        return len(self.reuse.map) if self.reuse is not None and self.reuse.final else 0

    def reuse_summary(self) -> dict[str, Any] | None:
        """What was reused from where, what was checked and rejected (summary.json)."""
        if self.config.reuse == "none":
            return None
        if self.reuse is None:
            return {"fingerprint": self.config.fingerprint, "sources": {}, "rejected": {},
                    "points_checked": 0, "verify": self.plan.mode.value}
        return self.reuse.summary(self.config.fingerprint)

    @property
    def seen(self) -> int:
        """Frames that changed the books: a drain reads until this stops moving."""
        return self.collector.finished + self.collector.duplicates

    @property
    def rows(self) -> int:
        return self.writer.rows_written if self.writer is not None else 0

    @property
    def results_file(self) -> str | None:
        path = getattr(self.writer, "path", None)
        return str(path) if path else None

    def verdict(self) -> Verdict:
        return self.collector.verdict()


def run_space(config: RunConfig, fn: Callable[..., Any]) -> Any:
    """The run's parameter space, its axes checked against the function's arguments."""
    if config.space is None:
        return None
    from .space import check_signature, load_space

    space = load_space(config.space)
    check_signature(space, fn, config.compute)
    return space

