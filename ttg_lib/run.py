"""Run orchestration: the control loop of a sweep.

:class:`Run` is a step-wise object so that every front end drives the same code (through
:func:`execute`, or step by step: the demo's buttons call :meth:`Run.kill_worker_now`
between steps). It holds the control plane: the state machine, the cluster, the broker
session (:class:`ttg_lib.session.BrokerSession`: lock, outages, final state), the fault
demo, stall and timeout detection, sampling. Every result frame goes to the data plane,
:class:`ttg_lib.ledger.Ledger`, which checks, counts and writes it; the summary the run ends
in is :class:`ttg_lib.summary.RunSummary`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import byvalue, crashpoints
from .backends import Producer, open_producer
from .cluster import Cluster, ClusterError, WorkerState
from .cluster.registry import make_cluster, provider
from .config import RunConfig
from .errors import RunError, disk_error, disk_errors
from .faults import Faults
from .joined import JoinedWorkers, join_hint
from .ledger import READ_SLICE, Ledger, run_space
from .messages import Task
from .procs import peak_rss_mib
from .record import RunRecord, environment
from .reuse.fingerprint import identified
from .runlock import LockOwner, RecordLock, stop_leftover_workers
from .runstate import Progress, RunState, Times
from .sampling import Sampler
from .session import BrokerSession
from .summary import Timing, build_summary
from .window import TaskWindow, window_chunks

BROKER_READY_TIMEOUT_S = 600.0  # first pull of broker images on a fresh Kind cluster
JOIN_TIMEOUT_S = 3600.0  # --expect-workers: how long workers from other hosts may take
__all__ = ["Progress", "Run", "RunState", "Times", "execute", "make_cluster"]


class Run:
    def __init__(self, config: RunConfig, *, cluster: Cluster | None = None,
                 backend: Producer | None = None, say: Callable[[str], None] | None = None,
                 resume: bool = False, function: Callable[..., Any] | None = None,
                 retry_failed: bool = False):
        # issue 20: the function, shipped by value when workers may not import it
        fn, shipped = byvalue.for_run(config, function)  # errors: ConfigErrors
        self.config = config = identified(config, shipped and shipped.sha256, resume)
        self.joined: JoinedWorkers | None = None  # workers from other hosts (expect_workers)
        self.resume = resume  # continue a run whose orchestrator died (its record is here)
        self.say = say or _say  # one-line notices before the run starts (lock taken over, ...)
        self.owner = LockOwner.this_process(config.run_id, config.output_dir)
        space = run_space(config, fn)  # a SpaceError (a ConfigError) starts nothing
        try:
            self.record = RunRecord(config.record_dir)
        except OSError as exc:
            raise disk_error(exc, config.record_dir) from None
        self.lock = RecordLock(config.record_dir)
        self.ledger = Ledger(config, space, self.record, lambda: self.elapsed_s,
                             lambda line: self.say(line), shipped, retry_failed)
        self.broker_url = config.broker_url  # a private broker's, once started
        self._backend = backend
        self._cluster = cluster
        self.session: BrokerSession | None = None
        self.started_at = ""
        self.state = RunState.CREATED
        self.times = Times()
        self.faults = Faults(config.kill_at if config.fault_demo else None,
                             config.chunks_total)
        self.sampler = Sampler(config.sample_s, lambda r: self.record.append("samples.jsonl", r))
        self._asks: list[Task] = []  # tasks to publish once the broker takes them
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

    backend = property(lambda self: self.broker.producer)  # the session's Producer

    # -- start -------------------------------------------------------------
    def start(self) -> None:
        """Everything up to the first task published; on failure nothing stays running."""
        try:
            with disk_errors(self.config.record_dir):
                self._start()
        except BaseException:
            self.abort()
            raise

    def _start(self) -> None:
        cfg = self.config
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # one orchestrator per record: nothing in it is touched before both locks are ours
        self.lock.take(self.owner, wait=cfg.wait, say=self.say)
        if not self.resume and (cfg.record_dir / "config.json").exists():
            raise RunError(f"run {cfg.run_id} already has a record in {cfg.record_dir}: "
                           f"continue it with --resume {cfg.run_id}, or give another --run-id")
        # the record's lock proves its last orchestrator gone: its workers may be stopped
        stopped = stop_leftover_workers(self.owner) if self.resume else 0
        if self._cluster is None:
            self._cluster = make_cluster(cfg, self.broker_url)
        try:
            self.broker_url = self.cluster.ensure_brokers(BROKER_READY_TIMEOUT_S)
        except ClusterError as exc:
            raise RunError(str(exc)) from None
        producer = self._backend or open_producer(cfg.backend, self.broker_url,
                                                  lease_s=cfg.lease_s)
        self.session = BrokerSession(producer, self.owner, lambda: self.elapsed_s, self.ledger)
        self.state = RunState.WAITING
        self.session.open(wait=cfg.wait, say=self.say)
        self.record.write_json("config.json", cfg.to_dict())
        shipped = self.ledger.shipped
        if shipped is not None:
            shipped.save(cfg.record_dir)
        self.ledger.open()
        if not self.resume:
            self.ledger.prepare_reuse()  # points earlier runs here computed: not published
        else:
            self.say(self.ledger.restore()
                     + (f"; stopped {stopped} of its old workers" if stopped else ""))
            self._drain(0.3, rounds=10_000, before=True)  # left by the dead orchestrator
            self.ledger.flush()
            self.times.last = None  # the runtime is this run's own
        self.session.clear()
        self.record.write_json("environment.json",
                               environment(producer.server_version(), cfg.backend))
        if shipped is not None:
            self.session.store_blob(shipped.sha256, shipped.payload)
        self.cluster.start_workers(cfg.workers)
        self.state = RunState.STARTING
        self.cluster.wait_ready(cfg.workers, provider(cfg.cluster).ready_timeout_s)
        self._workers_started = sum(1 for w in self.cluster.workers()
                                    if w.state == WorkerState.RUNNING)
        if cfg.expect_workers:
            self.joined = JoinedWorkers(producer, cfg.expect_workers, join_hint(cfg))
            self.joined.wait(cfg.timeout_s or JOIN_TIMEOUT_S, self.say, self.session.keep_lock)
        self.times.t0, self.times.cpu0 = time.monotonic(), time.process_time()
        owed = list(self.ledger.unfinished()) if self.resume else self.ledger.tasks()
        self.session.start_publishing(TaskWindow(owed, window_chunks(
            cfg.chunk_size, cfg.worker_count), lambda: self.ledger.collector.finished))
        if self.resume:  # computed once already, lost with the dead orchestrator's memory
            self.say(f"publishing {sum(t.chunks for t in owed):,} chunks; "
                     f"{self.ledger.chunks_redone} of them had been computed before")
        self.state = RunState.RUNNING

    # -- watch -------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state.ended

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.times.t0 is None else time.monotonic() - self.times.t0

    def step(self, timeout: float = 0.1) -> Progress:
        """Read results for up to ``timeout`` s, sample, inject the fault; an outage is
        recorded and ridden out, never raised."""
        if self.state == RunState.RUNNING:
            with disk_errors(self.config.record_dir):
                self._step(timeout)
        return self.progress()

    def _step(self, timeout: float) -> None:
        self._read(timeout)
        self.ledger.copy_reused()  # rows reused from earlier runs, a little at a time
        self._maybe_sample()
        self.broker.keep_lock()
        self.faults.maybe_demo(self.cluster, self.ledger.collector, self.elapsed_s)
        self._free_exited_workers()
        self._check_end()
        if self.done:
            self._maybe_sample(force=True)  # the chart's last point is the end state
        self.record.flush()  # a step is a moment: readers of the record see it

    def _read(self, timeout: float, before: bool = False) -> None:
        """One read: frames to the ledger, its asks to the broker, copies released once on disk
        (``before``: results a dead orchestrator read, done but not this run's throughput)."""
        frames = self.broker.read(timeout)
        for at in range(0, max(1, len(frames)), READ_SLICE):  # a slice's asks go out before
            ingested = self.ledger.ingest(frames[at:at + READ_SLICE], before)  # the next's check
            if ingested.new:  # idle workers need not wait for a whole read's thousands
                self.times.last, self.times.cpu_last = time.monotonic(), time.process_time()
                for result in ingested.new:
                    self.faults.on_result(result)
            self._asks += ingested.asks
            if self._asks and self.state == RunState.RUNNING and not self.broker.down:
                asked, self._asks = self._asks, []
                if not self.broker.publish(asked):
                    self._asks = asked + self._asks  # the broker went down: later
        if self.state == RunState.RUNNING:
            self.broker.top_up()  # the chunks read make room for as many more
            self.broker.share_point_limit()  # --point-timeout auto, for workers yet to learn
        self._settle(idle=not frames)

    def _settle(self, idle: bool) -> None:
        if self.ledger.flush_due(idle):
            crashpoints.reach("flushed")
            self.broker.settle()
            crashpoints.reach("settled")

    def _drain(self, timeout: float, rounds: int, before: bool = False) -> None:
        """Read until a read changes nothing (a plain loop: nothing re-enters the session)."""
        for _ in range(rounds):
            seen = self.ledger.seen
            self._read(timeout, before)
            if self.ledger.seen == seen:
                break

    def _maybe_sample(self, force: bool = False) -> None:
        """Queue depths every ``sample_s`` (0 turns sampling off, e.g. to measure its cost)."""
        if self.sampler.due(force):
            self.sampler.take(self.progress(), self.broker.stats())

    def _free_exited_workers(self) -> None:
        """A worker the cluster saw end (died, killed, hung) gives its tasks to the others at
        once, instead of when its lease runs out."""
        for name, freed in self.broker.free_dead(self.cluster.take_exits()).items():
            self.cluster.book.add("freed", name, f"{freed} task(s) handed to other workers")

    def kill_worker_now(self, name: str | None = None, reason: str = "manual") -> dict[str, Any]:
        """Kill one worker without warning; the first kill is the run's recorded fault."""
        info = self.faults.kill(self.cluster, self.ledger.collector, self.elapsed_s, name, reason)
        if self.state == RunState.RUNNING:
            self._free_exited_workers()
        return info

    fault = property(lambda self: self.faults.first)  # the run's recorded fault, if any
    def _check_end(self) -> None:
        cfg, times = self.config, self.times
        if self.ledger.failures.stopped:  # --max-failures: nothing more published or computed
            self.ledger.flush()
            self.state = RunState.STOPPED
        elif self.ledger.all_done:
            if not self.ledger.flush():
                return  # on disk before the run counts as complete (or it times out)
            self.state = RunState.DONE
            times.complete = time.monotonic()
        elif 0 < cfg.effective_timeout_s < self.elapsed_s:
            self.state = RunState.TIMED_OUT
        elif self.cluster.live_workers() or self._joined_live():
            times.stalled_since = None
        elif times.stalled_since is None:
            times.stalled_since = time.monotonic()
        elif time.monotonic() - times.stalled_since > 3 * cfg.lease_s + 5:
            self.state = RunState.STALLED

    def progress(self) -> Progress:
        down = self.session is not None and self.session.down
        c, stats = self.ledger.collector, self.sampler.last_stats
        return Progress(
            elapsed_s=self.elapsed_s, chunks_total=self.config.chunks_total,
            chunks_completed=c.completed, chunks_failed=c.failed, params_done=c.params_done,
            live_workers=(len(self._cluster.live_workers()) if self._cluster else 0)
            + self._joined_live(),
            stats=stats.to_dict() if stats else None,
            state=RunState.BROKER_DOWN if down else self.state,
            events=self._cluster.events() if self._cluster else [],
            eta=self.ledger.eta.estimate(self.elapsed_s) if self.state == RunState.RUNNING
            else None, verify_queued=c.awaited,
            rows_on_disk=self.ledger.rows if self.config.keep_results else None)

    def _joined_live(self) -> int:
        """Workers from other hosts, as the last queue sample counts them."""
        if self.joined is None or self.config.workers:
            return 0
        return self.joined.live(self.sampler.last_stats)

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
            self.cluster.request_stop()  # they exit while the table is merged: every chunk
            try:  # is in, so whatever a worker still sends is a duplicate, never a row
                if self.state == RunState.DONE:
                    self.ledger.close()
            finally:
                self.cluster.stop()
            self._drain_late_results()
            stats, dead, dropped = self.broker.final_state()
            self.ledger.collector.duplicates += dropped
            self.ledger.close()
            summary = self._summarise(stats, dead)
            self.record.write_json("summary.json", summary)
            self._summary = summary
            return summary
        finally:
            self._release()

    def _drain_late_results(self) -> None:
        """Results stored after the last chunk finished (a frozen worker woken by the stop) are
        duplicates, read to be counted; then the broker lets go of what is on disk."""
        if self.broker.down:
            self.broker.went_down(RuntimeError("reconnecting for final stats"))
        if self.state != RunState.RUNNING:
            self._drain(0.1, rounds=100)
        self._settle(idle=True)

    def _summarise(self, stats: Any, dead: list[dict[str, Any]]) -> dict[str, Any]:
        events = self.cluster.events()
        workers = self.cluster.worker_status()
        outages = self.session.outages if self.session else []
        self.record.write_end(events=events, fault=self.faults.summary(), outages=outages,
                              workers=workers, stats=stats, dead=dead)
        times, ledger = self.times, self.ledger
        runtime = times.since_t0(times.last)
        timing = Timing(runtime_s=runtime, orchestrator_cpu_s=None if runtime is None
                        else round(times.cpu_last - times.cpu0, 4))
        return build_summary(
            config=self.config, started_at=self.started_at, state=str(self.state),
            verdict=ledger.verdict(), timing=timing, stats=stats,
            dead_letters=len(dead), retries=ledger.retries, fault=self.faults.summary(),
            workers=workers, workers_started=self._workers_started,
            workers_replaced=sum(1 for e in events if e["event"] == "replaced"),
            outages=outages, peak_rss_mib=peak_rss_mib(), verify_s=ledger.verify_s,
            verify_mode=ledger.plan.mode.value, results_rows=ledger.rows,
            results_file=ledger.results_file, resumed=self.resume,
            chunks_redone=ledger.chunks_redone if self.resume else 0,
            complete_s=times.since_t0(times.complete),
            points_reused=ledger.points_reused, reuse=ledger.reuse_summary(),
            failed_points=ledger.failures.summary(
                retried=ledger.retrying.count if ledger.retrying else None,
                workers=workers)).to_dict()

    def _release(self) -> None:
        """Let the broker and any private broker go, close the record; safe to repeat."""
        if self.ledger.writer is not None:
            try:
                self.ledger.writer.close()  # what was collected stays on disk, for a resume
            except Exception as exc:  # the run's own error is the one to report
                self.say(f"results.parquet not written: {exc}")
            self.ledger.writer = None
        if self.session is not None:
            self.session.close()
        if self._cluster is not None:
            self._cluster.release_brokers()
        self.record.close()
        self.lock.release()  # last: the record is whole for whoever takes it next

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


def _say(line: str) -> None:
    print(f"ttg: {line}", file=sys.stderr, flush=True)


def execute(config: RunConfig, on_progress: Callable[[Progress], None] | None = None, *,
            resume: bool = False, retry_failed: bool = False,
            say: Callable[[str], None] | None = None,
            step_s: float = 0.1, on_start: Callable[[Run], None] | None = None,
            stop_on_interrupt: bool = False, run: Run | None = None) -> dict[str, Any]:
    """A whole run, its summary returned (and in summary.json): the loop the CLI and the
    notebooks drive. ``on_start`` gets the started run; ``stop_on_interrupt``: Ctrl-C ends
    the run as stopped, record written (else aborted, the interrupt raised); ``run``: one
    built already (the Python API's)."""
    report = on_progress or (lambda _progress: None)
    with run or Run(config, say=say, resume=resume, retry_failed=retry_failed) as run:
        run.start()
        if on_start is not None:
            on_start(run)
        try:
            while not run.done:
                report(run.step(step_s))
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                raise
            run.stop()
            report(run.progress())
        return run.finish()
