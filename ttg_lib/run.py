"""Run orchestration: seed tasks, start workers, watch, inject the fault (faults.py), verify,
record.

:class:`Run` is a step-wise object so that every front end drives the same
code: the CLI loops over :meth:`Run.step` behind a progress bar, a notebook
loops over it while it redraws a chart, and the demo's buttons call
:meth:`Run.kill_worker_now` between steps.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from . import compute
from .backends import Backend, BrokerUnavailable, QueueStats, make_backend
from .cluster import Cluster, ClusterError
from .config import ConfigError, RunConfig
from .faults import Faults
from .messages import Result, Task
from .record import RunRecord, environment
from .runlock import LockOwner, broker_progress
from .runlock import acquire as acquire_lock
from .verify import ResultCollector
from .worker import peak_rss_mib

READY_TIMEOUT_S = 60.0
BROKER_READY_TIMEOUT_S = 600.0  # first pull of broker images on a fresh Kind cluster


class RunError(RuntimeError):
    """The run could not start or could not finish; the message says why."""


@dataclass
class Progress:
    elapsed_s: float
    chunks_total: int
    chunks_completed: int
    chunks_failed: int
    params_done: int
    live_workers: int
    stats: dict[str, Any] | None
    state: str  # waiting | starting | running | broker-down | done | timed-out | stalled
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return (self.chunks_completed + self.chunks_failed) / max(1, self.chunks_total)


class Run:
    def __init__(self, config: RunConfig, *, cluster: Cluster | None = None,
                 backend: Backend | None = None, say: Callable[[str], None] | None = None):
        self.config = config
        self.say = say or _say  # one-line notices before the run starts (lock taken over, ...)
        self.owner = LockOwner.this_process(config.run_id, config.output_dir)
        try:
            self.fn = compute.load(config.compute)
        except compute.ComputeImportError as exc:
            raise ConfigError("compute", config.compute, str(exc).split(": ", 1)[-1]) from None
        self.record = RunRecord(config.record_dir)
        self.collector = ResultCollector(run_id=config.run_id, total_params=config.total_params,
                                         chunk_size=config.chunk_size, fn=self.fn)
        self.broker_url = config.broker_url
        self.backend = backend
        self.cluster = cluster
        self.started_at = ""
        self.state = "created"
        self.t0: float | None = None
        self.t_last: float | None = None
        self._cpu0 = self._cpu_last = 0.0  # process CPU at t0 and at the last new result
        self.faults = Faults(config.kill_at if config.fault_demo else None,
                             config.chunks_total)
        self._next_sample = 0.0
        self._next_renew = 0.0
        self._last_stats: QueueStats | None = None
        self._outages: list[dict[str, Any]] = []
        self._outage_started: float | None = None
        self._retries = 0
        self._stalled_since: float | None = None
        self._workers_started = 0
        self._summary: dict[str, Any] | None = None

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
        if self.cluster is None:
            self.cluster = make_cluster(cfg, self.broker_url)
        try:
            self.broker_url = self.cluster.ensure_brokers(BROKER_READY_TIMEOUT_S)
        except ClusterError as exc:
            raise RunError(str(exc)) from None
        if self.backend is None:
            self.backend = make_backend(cfg.backend, self.broker_url, lease_s=cfg.lease_s)
        try:
            self.backend.connect()
        except BrokerUnavailable as exc:
            raise RunError(str(exc)) from None
        self.state = "waiting"
        acquire_lock(self.backend, self.owner, wait=cfg.wait, say=self.say,
                     progress=lambda: broker_progress(self.backend))  # type: ignore[arg-type]
        self.backend.purge()
        self.backend.declare()
        self.record.write_json("environment.json", environment(self.backend.server_version()))
        self.cluster.start_workers(cfg.workers)
        self.state = "starting"
        self.cluster.wait_ready(cfg.workers,
                                READY_TIMEOUT_S if cfg.cluster == "local" else 180.0)
        self._workers_started = sum(1 for w in self.cluster.workers() if w.state == "running")
        self.t0, self._cpu0 = time.monotonic(), time.process_time()
        self.backend.publish_tasks(self._tasks())
        self.state = "running"

    def _tasks(self) -> Iterator[Task]:
        cfg = self.config
        now = time.time()
        for chunk_id in range(cfg.chunks_total):
            start = chunk_id * cfg.chunk_size
            yield Task(run_id=cfg.run_id, chunk_id=chunk_id, start=start,
                       count=min(cfg.chunk_size, cfg.total_params - start), work_ms=cfg.work_ms,
                       compute=cfg.compute, max_retries=cfg.max_retries,
                       retry_delay_s=cfg.retry_delay_s, published_at=now)

    # -- watch -------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in ("done", "timed-out", "stalled", "stopped")

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def step(self, timeout: float = 0.1) -> Progress:
        """Read results for up to ``timeout`` seconds, sample, inject the fault; never raises
        for a broker outage (it is recorded and ridden out)."""
        if self.state == "running":
            try:
                self._read(timeout)
                self._recovered_from_outage()
            except BrokerUnavailable as exc:
                self._broker_down(exc)
            self._maybe_sample()
            self._maybe_renew_lock()
            if self.cluster is not None:
                self.faults.maybe_demo(self.cluster, self.collector, self.elapsed_s)
                self._free_exited_workers()
            self._check_end()
            if self.done:
                self._maybe_sample(force=True)  # the chart's last point is the end state
        return self.progress()

    def _read(self, timeout: float) -> None:
        assert self.backend is not None
        results = self.backend.read_results(timeout)
        if not results:  # idle: recompute what has arrived, a little at a time
            self.collector.verify_pending(budget_s=0.05)
        fresh = False
        for result in results:
            new = self.collector.add(result)
            if new and isinstance(result, Result):
                fresh = True
                self._on_new_result(result)
            elif isinstance(result, Result):
                self._timeline(result, duplicate=True)
        if fresh:  # once per read, not per result: a read is one moment
            self.t_last, self._cpu_last = time.monotonic(), time.process_time()

    def _on_new_result(self, result: Result) -> None:
        self._retries += max(0, result.attempt - 1)
        self._timeline(result, duplicate=False)
        self.faults.on_result(result)

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
        try:
            stats = self.backend.stats() if self._outage_started is None else None
        except BrokerUnavailable as exc:
            self._broker_down(exc)
            stats = None
        if stats is not None:
            self._last_stats = stats
        live = len(self.cluster.live_workers()) if self.cluster is not None else 0
        row: dict[str, Any] = {"t": round(self.elapsed_s, 3), "wall": time.time(),
                               "completed": self.collector.completed,
                               "failed": self.collector.failed,
                               "params_done": self.collector.params_done,
                               "live_workers": live, "broker_up": stats is not None}
        if stats is not None:
            for role, q in stats.to_dict().items():
                row[role] = q["messages"]
                row[f"{role}_ready"] = q["ready"]
                row[f"{role}_unacked"] = q["unacked"]
            row["consumers"] = stats.tasks.consumers
        self.record.append("samples.jsonl", row)

    def _maybe_renew_lock(self) -> None:
        now = time.monotonic()
        if now < self._next_renew or self._outage_started is not None:
            return
        self._next_renew = now + 3.0
        try:
            self.backend.renew_run(self.config.run_id)  # type: ignore[union-attr]
        except BrokerUnavailable as exc:
            self._broker_down(exc)

    def _free_exited_workers(self) -> None:
        """A worker the cluster saw end held tasks the broker would free only when their
        lease runs out: hand them to the other workers now (the lease stays the fallback
        for what nobody saw die)."""
        assert self.cluster is not None and self.backend is not None
        for name in self.cluster.take_exits():
            try:
                freed = self.backend.release_pending_of(name)
            except BrokerUnavailable as exc:
                self._broker_down(exc)
                continue  # the lease frees them
            if freed:
                self.cluster.book.add("freed", name, f"{freed} task(s) handed to other workers")

    def kill_worker_now(self, name: str | None = None, reason: str = "manual") -> dict[str, Any]:
        """Kill one worker without warning; the first kill is the run's recorded fault."""
        assert self.cluster is not None
        info = self.faults.kill(self.cluster, self.collector, self.elapsed_s, name, reason)
        if self.state == "running":
            self._free_exited_workers()
        return info

    @property
    def fault(self) -> dict[str, Any] | None:
        return self.faults.first

    def _broker_down(self, exc: BaseException) -> None:
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self._outages.append({"start_s": round(self.elapsed_s, 3), "end_s": None,
                                  "error": str(exc)})
        try:
            self.backend.reconnect()  # type: ignore[union-attr]
            self.backend.declare()  # type: ignore[union-attr]
            self.backend.acquire_run(self.config.run_id,  # type: ignore[union-attr]
                                     self.owner.encode())
        except BrokerUnavailable:
            time.sleep(0.05)  # refused at once while down: retry soon, resume within ~0.1 s

    def _recovered_from_outage(self) -> None:
        if self._outage_started is None:
            return
        self._outages[-1]["end_s"] = round(self.elapsed_s, 3)
        self._outage_started = None
        self._republish_if_broker_lost_data()

    def _republish_if_broker_lost_data(self) -> None:
        """A broker that came back without its data (no persistence) lost our tasks: publish
        every unfinished chunk again. Results are keyed by chunk id, so this is safe."""
        assert self.backend is not None
        stored = self.backend.stored_chunks()
        if stored is None or stored >= self.collector.completed:
            return
        missing = [t for t in self._tasks() if not self.collector.chunk_state[t.chunk_id]]
        self._outages[-1]["republished_chunks"] = len(missing)
        self._outages[-1]["broker_kept_chunks"] = stored
        self.backend.reset_results_cursor()
        self.backend.publish_tasks(missing)

    def _check_end(self) -> None:
        cfg = self.config
        if self.collector.all_done:
            self.state = "done"
        elif self.elapsed_s > cfg.effective_timeout_s:
            self.state = "timed-out"
        elif self.cluster is not None:
            if self.cluster.live_workers():
                self._stalled_since = None
            elif self._stalled_since is None:
                self._stalled_since = time.monotonic()
            elif time.monotonic() - self._stalled_since > 3 * cfg.lease_s + 5:
                self.state = "stalled"

    def progress(self) -> Progress:
        live = len(self.cluster.live_workers()) if self.cluster is not None else 0
        return Progress(
            elapsed_s=self.elapsed_s, chunks_total=self.config.chunks_total,
            chunks_completed=self.collector.completed, chunks_failed=self.collector.failed,
            params_done=self.collector.params_done,
            live_workers=live,
            stats=self._last_stats.to_dict() if self._last_stats else None,
            state="broker-down" if self._outage_started is not None else self.state,
            events=self.cluster.events() if self.cluster else [])

    def stop(self) -> None:
        """Ask the run to end at the next step (the demo's Stop button)."""
        if not self.done:
            self.state = "stopped"

    # -- finish ------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Stop workers, take final queue stats, verify, write the record; idempotent."""
        if self._summary is not None:
            return self._summary
        try:
            if self.cluster is not None:
                self.cluster.stop()
            final_stats, dead_letters = self._final_broker_state()
            summary = self._summarise(final_stats, dead_letters)
            self.record.write_json("summary.json", summary)
            self._summary = summary
            return summary
        finally:
            self._release()

    def _final_broker_state(self) -> tuple[QueueStats | None, list[dict[str, Any]]]:
        assert self.backend is not None
        for _ in range(50):
            try:
                if self._outage_started is not None:
                    self._broker_down(RuntimeError("reconnecting for final stats"))
                self._drain_late_results()
                self.backend.release_results()
                stats = _settled(self.backend.stats())
                dead = self.backend.read_dead_letters()
                self.collector.duplicates += self.backend.duplicate_count()
                return stats, dead
            except BrokerUnavailable as exc:
                self._broker_down(exc)
        return None, []

    def _drain_late_results(self) -> None:
        """Results stored after the last chunk finished (a frozen worker woken by the stop)
        are duplicates; read them so they are counted, never lost from the books."""
        if self.state == "running":
            return
        for _ in range(100):
            before = self.collector.duplicates + self.collector.finished
            self._read(0.1)
            if self.collector.duplicates + self.collector.finished == before:
                return

    def _summarise(self, stats: QueueStats | None, dead: list[dict[str, Any]]) -> dict[str, Any]:
        cfg = self.config
        verdict = self.collector.verdict()
        runtime = (self.t_last - self.t0) if self.t_last and self.t0 else None
        throughput = verdict.params_verified / runtime if runtime else 0.0
        ideal = cfg.ideal_runtime_s
        fault = self.faults.summary()
        events = self.cluster.events() if self.cluster else []
        replaced = sum(1 for e in events if e["event"] == "replaced")
        self.record.write_json("events.json", {"workers": events, "fault": fault,
                                               "broker_outages": self._outages})
        workers = self.cluster.worker_status() if self.cluster is not None else []
        if self.cluster is not None:
            self.record.write_json("workers.json", workers)
        if stats is not None:
            self.record.write_json("queue_stats.json", stats.to_dict())
        self.record.write_json("dlq.json", dead)
        ok = verdict.ok and self.state == "done"
        return {
            "run_id": cfg.run_id, "started_at": self.started_at,
            "record_dir": str(cfg.record_dir.resolve()), "compute": cfg.compute,
            "backend": cfg.backend, "cluster": cfg.cluster, "scale": cfg.scale,
            "workers": cfg.workers, "total_params": cfg.total_params,
            "chunk_size": cfg.chunk_size, "work_ms": cfg.work_ms,
            "chunks_total": cfg.chunks_total, "chunks_completed": verdict.chunks_completed,
            "chunks_failed": verdict.chunks_failed,
            "params_verified": verdict.params_verified, "lost_params": verdict.lost_params,
            "wrong_results": verdict.wrong_results,
            "duplicate_deliveries": verdict.duplicate_deliveries,
            "foreign_results": verdict.foreign_results,
            "retry_count": self._retries,
            "dlq_count": stats.dlq.messages if stats else len(dead),
            "retry_queue": stats.retry.messages if stats else None,
            "results_queue": stats.results.messages if stats else None,
            "tasks_queue": stats.tasks.messages if stats else None,
            "runtime_s": round(runtime, 3) if runtime else None,
            "throughput_params_s": round(throughput, 2),
            "ideal_runtime_s": round(ideal, 3),
            "efficiency": round(ideal / runtime, 4) if runtime and cfg.work_ms > 0 else None,
            "fault": fault,
            "workers_started": self._workers_started,
            "orchestrator_peak_rss_mib": peak_rss_mib(),
            "verify_s": round(self.collector.verify_s, 3),
            "worker_peak_rss_mib": max((w["peak_rss_mib"] for w in workers
                                        if w.get("peak_rss_mib")), default=None),
            "cpu_s": self._cpu_budget(workers),
            "workers_replaced": replaced,
            "restart": cfg.restart,
            "broker_outages": self._outages,
            "state": self.state,
            "verified": verdict.ok,
            "ok": ok,
            "problems": verdict.problems + ([] if self.state == "done" else
                                            [f"run ended in state {self.state!r}"]),
        }

    def _cpu_budget(self, rows: list[dict[str, Any]]) -> dict[str, float | None]:
        """Where the CPU went between the first task published and the last result read:
        the orchestrator's own, and the workers' split into the user's function and the rest
        (None where workers report no heartbeat, e.g. Kubernetes pods)."""
        workers = [w for w in rows if w.get("cpu_s") is not None]
        total = round(sum(w["cpu_s"] for w in workers), 4) if workers else None
        compute = round(sum(w["compute_cpu_s"] for w in workers), 4) if workers else None
        orchestrator = (round(self._cpu_last - self._cpu0, 4) if self.t_last and self.t0
                        else None)
        return {"orchestrator": orchestrator, "workers": total, "workers_compute": compute}

    def _release(self) -> None:
        if self.backend is not None:
            try:
                self.backend.release_run(self.config.run_id)
            except BrokerUnavailable:
                pass  # the lock expires on its own
            self.backend.close()
        if self.cluster is not None:
            self.cluster.release_brokers()
        self.record.close()

    def abort(self) -> None:
        """Undo a half-started run: stop what was started, release the broker."""
        if self.cluster is not None:
            self.cluster.stop(timeout=5)
        if self.backend is not None:
            try:
                self.backend.release_run(self.config.run_id)
            except Exception:  # best effort: the lock also expires by itself
                pass
            self.backend.close()
        if self.cluster is not None:
            self.cluster.release_brokers()
        self.record.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None and self._summary is None:
            self.abort()


def _settled(stats: QueueStats) -> QueueStats:
    """At the end every TTG client has let go (workers stopped, results released), so
    nothing is unacked: a queue's messages are its ready ones. A broker that cannot count
    unacked messages (RabbitMQ without its management API) is then exact too."""
    rows = {role: replace(q, messages=q.ready, unacked=0) if q.messages is None else q
            for role, q in (("tasks", stats.tasks), ("retry", stats.retry), ("dlq", stats.dlq),
                            ("results", stats.results))}
    return QueueStats(**rows)


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

