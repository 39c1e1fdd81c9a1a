"""Run orchestration: seed tasks, start workers, watch, inject the fault (faults.py), verify,
record.

:class:`Run` is a step-wise object so that every front end drives the same
code: the CLI loops over :meth:`Run.step` behind a progress bar, a notebook
loops over it while it redraws a chart, and the demo's buttons call
:meth:`Run.kill_worker_now` between steps. The broker side of a run (lock, outages,
final state) is :class:`ttg_lib.session.BrokerSession`; the summary it ends in is
:class:`ttg_lib.summary.RunSummary`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from . import byvalue
from .backends import Producer, QueueStats, get_spec
from .cluster import Cluster, ClusterError, WorkerState
from .config import RunConfig
from .errors import RunError
from .eta import Eta, EtaModel
from .failures import FailureBook, FailureBudget, recheck_task, retry_failed_points
from .faults import Faults
from .joined import JoinedWorkers, join_hint
from .messages import Result, Task
from .procs import peak_rss_mib
from .record import RunRecord, environment
from .runlock import LockOwner, stop_leftover_workers
from .session import BrokerSession
from .summary import RunSummary, Timing, build_summary
from .textenum import TextEnum
from .verify import ResultCollector, VerifyMode, VerifyPlan

READY_TIMEOUT_S = 60.0
SETTLE_EVERY_S = 1.0  # results on disk this often; the broker's copies released then
IDLE_SETTLE_S = 0.2  # sooner when the run is idle, but not at every empty read (a part each)
CLUSTER_READY_TIMEOUT_S = 180.0  # pods: image pulls and scheduling
BROKER_READY_TIMEOUT_S = 600.0  # first pull of broker images on a fresh Kind cluster
JOIN_TIMEOUT_S = 3600.0  # --expect-workers: how long workers from other hosts may take


class RunState(TextEnum):
    """Where a run is."""

    CREATED = "created"
    WAITING = "waiting"  # for another live run to let go of the broker (--wait)
    STARTING = "starting"
    RUNNING = "running"
    BROKER_DOWN = "broker-down"  # shown in progress while an outage lasts
    DONE = "done"
    TIMED_OUT = "timed-out"
    STALLED = "stalled"
    STOPPED = "stopped"

    @property
    def ended(self) -> bool:
        return self in (RunState.DONE, RunState.TIMED_OUT, RunState.STALLED, RunState.STOPPED)


@dataclass
class Progress:
    elapsed_s: float
    chunks_total: int
    chunks_completed: int
    chunks_failed: int
    params_done: int
    live_workers: int
    stats: dict[str, Any] | None
    state: RunState
    events: list[dict[str, Any]] = field(default_factory=list)
    eta: Eta | None = None  # time left, modelled on the axes (ttg_lib.eta)

    @property
    def fraction(self) -> float:
        return (self.chunks_completed + self.chunks_failed) / max(1, self.chunks_total)


class Run:
    def __init__(self, config: RunConfig, *, cluster: Cluster | None = None,
                 backend: Producer | None = None, say: Callable[[str], None] | None = None,
                 resume: bool = False, function: Callable[..., Any] | None = None,
                 retry_failed: bool = False):
        # issue 20: the function, shipped by value when workers may not import it
        self.fn, self.shipped = byvalue.for_run(config, function)  # errors: ConfigErrors
        if self.shipped is not None:
            config = replace(config, compute_sha256=self.shipped.sha256)
        self.config = config
        self.joined: JoinedWorkers | None = None  # workers from other hosts (expect_workers)
        self.resume = resume  # continue a run whose orchestrator died (its record is here)
        self.retry_failed = retry_failed  # ... and recompute its failed points
        self.retrying: Any = None  # retryfailed.FailedPoints, when it does
        self.chunks_redone = 0
        self._received_before: set[int] = set()
        self.say = say or _say  # one-line notices before the run starts (lock taken over, ...)
        self.owner = LockOwner.this_process(config.run_id, config.output_dir)
        self.space = _space(config, self.fn)  # a SpaceError (a ConfigError) starts nothing
        self.eta = EtaModel(self.space, config.chunk_size, config.total_params)
        self.record = RunRecord(config.record_dir)
        self.collector = ResultCollector(run_id=config.run_id, total_params=config.total_params,
                                         chunk_size=config.chunk_size, rtol=config.verify_rtol,
                                         compute_sha256=config.compute_sha256)
        self.plan = VerifyPlan(VerifyMode(config.verify_mode), config.run_id)
        self.failures = FailureBook(self.record, config.total_params,  # failed points, and
                                    FailureBudget.parse(config.max_failures),  # the budget
                                    config.point_timeout)
        self.writer: Any = None  # results.parquet (ResultsWriter), opened by start()
        self._to_verify: list[Task] = []
        self._verify_s = 0.0  # the orchestrator's own checking (recomputation is the workers')
        self._next_settle = 0.0
        self.broker_url = config.broker_url
        self._backend = backend
        self._cluster = cluster
        self.session: BrokerSession | None = None
        self.started_at = ""
        self.state = RunState.CREATED
        self.t0: float | None = None
        self.t_last: float | None = None
        self.t_complete: float | None = None  # every result and recomputation in, on disk
        self._cpu0 = self._cpu_last = 0.0  # process CPU at t0 and at the last new result
        self.faults = Faults(config.kill_at if config.fault_demo else None,
                             config.chunks_total)
        self._next_sample = 0.0
        self._last_stats: QueueStats | None = None
        self._retries = 0
        self._stalled_since: float | None = None
        self._workers_started = 0
        self._summary: dict[str, Any] | None = None

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            raise RunError("the run has no cluster yet: call start() first")
        return self._cluster

    @property
    def broker(self) -> BrokerSession:
        if self.session is None:
            raise RunError("the run has no broker connection yet: call start() first")
        return self.session

    @property
    def backend(self) -> Producer:
        return self.broker.producer

    # -- start -------------------------------------------------------------
    def start(self) -> None:
        """Everything up to the first task published; on failure nothing stays running."""
        try:
            self._start()
        except BaseException:
            self.abort()
            raise

    def _start(self) -> None:
        cfg = self.config
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.record.write_json("config.json", cfg.to_dict())
        if self.shipped is not None:
            self.shipped.save(cfg.record_dir)
        from .results import ResultsWriter  # pyarrow: only the orchestrator needs it

        self.writer = (ResultsWriter(cfg.record_dir, self.space) if cfg.keep_results
                       else _NoResults())
        if self.resume:
            self._restore_from_record()
        if self._cluster is None:
            self._cluster = make_cluster(cfg, self.broker_url)
        try:
            self.broker_url = self.cluster.ensure_brokers(BROKER_READY_TIMEOUT_S)
        except ClusterError as exc:
            raise RunError(str(exc)) from None
        producer = self._backend or get_spec(cfg.backend).producer(self.broker_url,
                                                                    lease_s=cfg.lease_s)
        self.session = BrokerSession(producer, self.owner, lambda: self.elapsed_s)
        self.state = RunState.WAITING
        self.session.open(wait=cfg.wait, say=self.say,
                          before_purge=self._drain_leftovers if self.resume else None)
        self.record.write_json("environment.json",
                               environment(producer.server_version(), cfg.backend))
        if self.shipped is not None:
            self.session.store_blob(self.shipped.sha256, self.shipped.payload)
        self.cluster.start_workers(cfg.workers)
        self.state = RunState.STARTING
        self.cluster.wait_ready(cfg.workers, READY_TIMEOUT_S if cfg.cluster == "local"
                                else CLUSTER_READY_TIMEOUT_S)
        self._workers_started = sum(1 for w in self.cluster.workers()
                                    if w.state == WorkerState.RUNNING)
        if cfg.expect_workers:
            self.joined = JoinedWorkers(producer, cfg.expect_workers, join_hint(cfg))
            self.joined.wait(cfg.timeout_s or JOIN_TIMEOUT_S, self.say, self.session.keep_lock)
        self.t0, self._cpu0 = time.monotonic(), time.process_time()
        published = producer.publish_tasks(self._tasks(only_unfinished=self.resume))
        if self.resume:  # computed once already, lost with the dead orchestrator's memory
            self.chunks_redone = len({c for c in self._received_before
                                      if not self.collector.chunk_state[c]})
            self.say(f"published {published:,} chunks; {self.chunks_redone} of them had "
                     f"been computed before")
        self.state = RunState.RUNNING

    def _restore_from_record(self) -> None:
        """A resumed run counts what its record holds already."""
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
        rechecked = self._recheck_restored(done - failed)
        self._received_before = _chunks_received(cfg.record_dir) - done
        stopped = stop_leftover_workers(self.owner)  # the dead run's, by its process ledger
        self.say(f"resuming run {cfg.run_id}: {len(done):,} of {cfg.chunks_total:,} chunks "
                 f"already in its results"
                 + (f"; {rechecked:,} of them to recompute and compare with the rows on disk "
                    f"(--verify {self.plan.mode})" if rechecked else "")
                 + (f"; stopped {stopped} of its old workers" if stopped else ""))

    def _recheck_restored(self, chunks: set[int]) -> int:
        """Restored chunks are verified like fresh ones: those the verify mode picks are
        recomputed by the workers and compared with their rows on disk."""
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

    def _drain_leftovers(self) -> None:
        """Results the dead orchestrator left in the broker (read, not yet on disk) count too:
        read them all before the queues are emptied."""
        for _ in range(10_000):
            before = self.collector.finished
            self._read(0.3)
            if self.collector.finished == before:
                break
        self.writer.flush()
        self.t_last = None  # the runtime is this run's own

    def _tasks(self, only_unfinished: bool = False) -> Iterator[Task]:
        """Every chunk's task; ``only_unfinished``: those still owed (chunks without a result,
        recomputations without an answer), e.g. after the broker lost its data."""
        for chunk_id in range(self.config.chunks_total):
            if not only_unfinished or not self.collector.chunk_state[chunk_id]:
                yield self._task(chunk_id)
            elif self.collector.awaits(chunk_id):
                yield self._task(chunk_id).verification(self.collector.worker_of(chunk_id))

    def _task(self, chunk_id: int) -> Task:
        cfg = self.config
        start = chunk_id * cfg.chunk_size
        task = Task(run_id=cfg.run_id, chunk_id=chunk_id, start=start,
                    count=min(cfg.chunk_size, cfg.total_params - start), work_ms=cfg.work_ms,
                    compute=self.shipped.ref if self.shipped else cfg.compute,
                    max_retries=cfg.max_retries,
                    retry_delay_s=cfg.retry_delay_s, published_at=time.time(), space=cfg.space,
                    point_timeout_s=cfg.point_timeout_s, max_crashes=cfg.max_crashes,
                    recycle_after=cfg.recycle_after, max_worker_mib=cfg.max_worker_mib)
        return self.retrying.task(task) if self.retrying else task

    # -- watch -------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state.ended

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def step(self, timeout: float = 0.1) -> Progress:
        """Read results for up to ``timeout`` seconds, sample, inject the fault; never raises
        for a broker outage (it is recorded and ridden out)."""
        if self.state == RunState.RUNNING:
            self._read(timeout)
            self._maybe_sample()
            self.broker.keep_lock()
            self.faults.maybe_demo(self.cluster, self.collector, self.elapsed_s)
            self._free_exited_workers()
            self._check_end()
            if self.done:
                self._maybe_sample(force=True)  # the chart's last point is the end state
            self.record.flush()  # a step is a moment: readers of the record see it
        return self.progress()

    def _read(self, timeout: float) -> None:
        results = self.broker.read(timeout, lambda: self._tasks(only_unfinished=True),
                                    self.collector.completed)
        fresh = False
        for result in results:
            checked = time.perf_counter()
            if isinstance(result, Result) and result.verify:
                self.collector.add_verification(result)
                self._verify_s += time.perf_counter() - checked
                continue
            new = self.collector.add(result)
            self._verify_s += time.perf_counter() - checked
            if new and isinstance(result, Result):
                fresh = True
                self._on_new_result(result)
            elif isinstance(result, Result):
                self._timeline(result, duplicate=True)
        if fresh:  # once per read, not per result: a read is one moment
            self.t_last, self._cpu_last = time.monotonic(), time.process_time()
        self._ask_verifications()
        self._keep_results(idle=not results)

    def _on_new_result(self, result: Result) -> None:
        self._retries += max(0, result.attempt - 1)
        self._timeline(result, duplicate=False)
        self.faults.on_result(result)
        self.writer.add(result)
        self.failures.add(result)
        self.eta.observe(result.chunk_id, result.started_at, result.finished_at,
                         failed=result.error is not None)
        if (result.error is None and len(result.failures) < result.count
                and self.plan.wants(result.chunk_id, result.worker)):
            self.collector.expect_verification(result.chunk_id)
            self._to_verify.append(recheck_task(
                self._task(result.chunk_id).verification(result.worker), result))

    def _ask_verifications(self) -> None:
        """Publish the recomputations asked for since the last read, in one batch."""
        if self._to_verify and self.state == RunState.RUNNING and not self.broker.down:
            asked, self._to_verify = self._to_verify, []
            if not self.broker.publish(asked):
                self._to_verify = asked + self._to_verify  # the broker went down: later

    def _keep_results(self, idle: bool) -> None:
        """Results go to disk when the run is idle or every SETTLE_EVERY_S; once every result
        read is on disk, the broker may drop its copies."""
        now = time.monotonic()
        due = self._next_settle - (SETTLE_EVERY_S - IDLE_SETTLE_S if idle else 0.0)
        if now < due:
            return
        self._next_settle = now + SETTLE_EVERY_S
        self.writer.flush()
        self.broker.settle()

    def _timeline(self, result: Result, duplicate: bool) -> None:
        self.record.append("chunks.jsonl", {
            "chunk_id": result.chunk_id, "worker": result.worker, "attempt": result.attempt,
            "started_at": result.started_at, "finished_at": result.finished_at,
            "received_s": round(self.elapsed_s, 4), "redelivered": result.redelivered,
            "duplicate": duplicate, "error": result.error})

    def _maybe_sample(self, force: bool = False) -> None:
        """Queue depths every ``sample_s`` (0 turns sampling off, e.g. to measure its cost)."""
        now = time.monotonic()
        if not force and (now < self._next_sample or not self.config.sample_s):
            return
        self._next_sample = now + self.config.sample_s
        stats = self.broker.stats()
        if stats is not None:
            self._last_stats = stats
        row: dict[str, Any] = {"t": round(self.elapsed_s, 3), "wall": time.time(),
                               "completed": self.collector.completed,
                               "failed": self.collector.failed,
                               "params_done": self.collector.params_done,
                               "live_workers": len(self.cluster.live_workers()),
                               "broker_up": stats is not None}
        if stats is not None:
            for role, q in stats.to_dict().items():
                row[role] = q["messages"]
                row[f"{role}_ready"] = q["ready"]
                row[f"{role}_unacked"] = q["unacked"]
            row["consumers"] = stats.tasks.consumers
        self.record.append("samples.jsonl", row)

    def _free_exited_workers(self) -> None:
        """A worker the cluster saw end (died, killed, hung) gives its tasks to the others at
        once, instead of when its lease runs out."""
        for name, freed in self.broker.free_dead(self.cluster.take_exits()).items():
            self.cluster.book.add("freed", name, f"{freed} task(s) handed to other workers")

    def kill_worker_now(self, name: str | None = None, reason: str = "manual") -> dict[str, Any]:
        """Kill one worker without warning; the first kill is the run's recorded fault."""
        info = self.faults.kill(self.cluster, self.collector, self.elapsed_s, name, reason)
        if self.state == RunState.RUNNING:
            self._free_exited_workers()
        return info

    @property
    def fault(self) -> dict[str, Any] | None:
        return self.faults.first

    def _check_end(self) -> None:
        cfg = self.config
        if self.failures.stopped:  # --max-failures: nothing more is published or computed
            self.writer.flush()
            self.state = RunState.STOPPED
        elif self.collector.all_done:
            self.writer.flush()  # on disk before the run counts as complete
            self.state = RunState.DONE
            self.t_complete = time.monotonic()
        elif self.elapsed_s > cfg.effective_timeout_s:
            self.state = RunState.TIMED_OUT
        elif self.cluster.live_workers() or self._joined_live():
            self._stalled_since = None
        elif self._stalled_since is None:
            self._stalled_since = time.monotonic()
        elif time.monotonic() - self._stalled_since > 3 * cfg.lease_s + 5:
            self.state = RunState.STALLED

    def progress(self) -> Progress:
        down = self.session is not None and self.session.down
        return Progress(
            elapsed_s=self.elapsed_s, chunks_total=self.config.chunks_total,
            chunks_completed=self.collector.completed, chunks_failed=self.collector.failed,
            params_done=self.collector.params_done,
            live_workers=(len(self._cluster.live_workers()) if self._cluster else 0)
            + self._joined_live(),
            stats=self._last_stats.to_dict() if self._last_stats else None,
            state=RunState.BROKER_DOWN if down else self.state,
            events=self._cluster.events() if self._cluster else [],
            eta=self.eta.estimate(self.elapsed_s) if self.state == RunState.RUNNING else None)

    def _joined_live(self) -> int:
        """Workers from other hosts, as the last queue sample counts them (a run with local
        workers counts those, which the broker counts too)."""
        if self.joined is None or self.config.workers:
            return 0
        return self.joined.live(self._last_stats)

    def stop(self) -> None:
        """Ask the run to end at the next step (the demo's Stop button)."""
        if not self.done:
            self.state = RunState.STOPPED

    # -- finish ------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Stop workers, take final queue stats, verify, write the record; idempotent."""
        if self._summary is not None:
            return self._summary
        try:
            self.cluster.stop()
            stats, dead, dropped = self.broker.final_state(self._drain_late_results)
            self.collector.duplicates += dropped
            self.writer.close()
            summary = self._summarise(stats, dead).to_dict()
            self.record.write_json("summary.json", summary)
            self._summary = summary
            return summary
        finally:
            self._release()

    def _drain_late_results(self) -> None:
        """Results stored after the last chunk finished (a frozen worker woken by the stop)
        are duplicates; read them so they are counted, never lost from the books. Then every
        result read is on disk, and the broker lets go of its copies."""
        if self.state != RunState.RUNNING:
            for _ in range(100):
                before = self.collector.duplicates + self.collector.finished
                self._read(0.1)
                if self.collector.duplicates + self.collector.finished == before:
                    break
        self._keep_results(idle=True)

    def _summarise(self, stats: QueueStats | None, dead: list[dict[str, Any]]) -> RunSummary:
        events = self.cluster.events()
        workers = self.cluster.worker_status()
        outages = self.session.outages if self.session else []
        self._write_record(stats, dead, events, workers, outages)
        runtime = (self.t_last - self.t0) if self.t_last and self.t0 else None
        timing = Timing(runtime_s=runtime, orchestrator_cpu_s=None if runtime is None
                        else round(self._cpu_last - self._cpu0, 4))
        return build_summary(
            config=self.config, started_at=self.started_at, state=str(self.state),
            verdict=self.collector.verdict(), timing=timing, stats=stats,
            dead_letters=len(dead), retries=self._retries, fault=self.faults.summary(),
            workers=workers, workers_started=self._workers_started,
            workers_replaced=sum(1 for e in events if e["event"] == "replaced"),
            outages=outages, peak_rss_mib=peak_rss_mib(), verify_s=self._verify_s,
            verify_mode=self.plan.mode.value,
            results_rows=self.writer.rows_written if self.writer else 0,
            results_file=str(self.writer.path) if self.writer and self.writer.path else None,
            resumed=self.resume, chunks_redone=self.chunks_redone if self.resume else 0,
            complete_s=(self.t_complete - self.t0) if self.t_complete and self.t0 else None,
            failed_points=self.failures.summary(
                retried=self.retrying.count if self.retrying else None, workers=workers))

    def _write_record(self, stats: QueueStats | None, dead: list[dict[str, Any]],
                      events: list[dict[str, Any]], workers: list[Any],
                      outages: list[dict[str, Any]]) -> None:
        self.record.write_json("events.json", {"workers": events, "fault": self.faults.summary(),
                                               "broker_outages": outages})
        self.record.write_json("workers.json", [w.to_dict() for w in workers])
        if stats is not None:
            self.record.write_json("queue_stats.json", stats.to_dict())
        self.record.write_json("dlq.json", dead)

    def _release(self) -> None:
        """Let the broker and any private broker go, close the record; safe to repeat."""
        if self.writer is not None:
            try:
                self.writer.close()  # what was collected stays on disk, for a resume
            except Exception as exc:  # the run's own error is the one to report
                self.say(f"results.parquet not written: {exc}")
            self.writer = None
        if self.session is not None:
            self.session.close()
        if self._cluster is not None:
            self._cluster.release_brokers()
        self.record.close()

    def abort(self) -> None:
        """Undo a half-started run: stop what was started, release the broker."""
        if self._cluster is not None:
            self._cluster.stop(timeout=5)
        self._release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None and self._summary is None:
            self.abort()


class _NoResults:
    """keep_results=false: the run's results are checked and dropped (as before there was a
    results table), to measure what keeping them costs."""

    rows_written = 0
    path = None

    def add(self, result: Result) -> list[int]:
        return []

    def flush(self) -> list[int]:
        return []

    def close(self) -> None:
        return None


def _chunks_received(record_dir: Any) -> set[int]:
    """Chunks whose result an earlier orchestrator of this run had read (chunks.jsonl)."""
    from .record import read_jsonl

    return {row["chunk_id"] for row in read_jsonl(record_dir / "chunks.jsonl")
            if not row.get("duplicate")}


def _space(config: RunConfig, fn: Callable[..., Any]) -> Any:
    """The run's parameter space, its axes checked against the function's arguments."""
    if config.space is None:
        return None
    from .space import check_signature, load_space

    space = load_space(config.space)
    check_signature(space, fn, config.compute)
    return space


def _say(line: str) -> None:
    print(f"ttg: {line}", file=sys.stderr, flush=True)


def make_cluster(config: RunConfig, broker_url: str) -> Cluster:
    if config.cluster == "local":
        from .cluster.local import LocalCluster

        return LocalCluster(backend=config.backend, broker_url=broker_url,
                            run_id=config.run_id, record_dir=config.record_dir,
                            restart=config.restart, lease_s=config.lease_s,
                            liveness_s=config.liveness_s)
    try:
        from .cluster.kubernetes import KubernetesCluster
    except ImportError as exc:
        raise RunError(f"cluster {config.cluster!r} needs the Kubernetes provider "
                       f"(pip install 'ttg[k8s]'): {exc}") from None
    return KubernetesCluster.for_run(config)


def execute(config: RunConfig,
            on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Do a whole run and return its summary (also written to summary.json)."""
    with Run(config) as run:
        run.start()
        while not run.done:
            progress = run.step(0.1)
            if on_progress is not None:
                on_progress(progress)
        return run.finish()
