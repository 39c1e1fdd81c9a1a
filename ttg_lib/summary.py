"""The run summary: the contract every reader of a run record relies on.

:class:`RunSummary` is built once, from the verdict, the broker's final state, the fault and
the cluster; ``to_dict()`` is ``summary.json`` (the milestone tables, ``ttg runs``, the
notebooks and the benchmarks read those keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .backends import QueueStats
from .cluster import WorkerStatus
from .config import RunConfig
from .recorded import Fault, Outage
from .verify import Verdict


@dataclass(frozen=True)
class Timing:
    """From the first task published to the last new result read (monotonic seconds), and
    the orchestrator's own CPU over the same span."""

    runtime_s: float | None
    orchestrator_cpu_s: float | None


# the verification's counts a summary carries as its own fields, by the Verdict's names
VERDICT_COUNTS = ("chunks_completed", "chunks_failed", "params_verified", "lost_params",
                  "wrong_results", "duplicate_deliveries", "foreign_results", "values_recomputed")


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_at: str
    record_dir: str
    compute: str
    backend: str
    cluster: str
    scale: str
    workers: int
    total_params: int
    chunk_size: int
    work_ms: float
    chunks_total: int
    chunks_completed: int
    chunks_failed: int
    params_verified: int
    lost_params: int
    wrong_results: int
    duplicate_deliveries: int
    foreign_results: int
    retry_count: int
    dlq_count: int
    retry_queue: int | None
    results_queue: int | None
    tasks_queue: int | None
    runtime_s: float | None
    throughput_params_s: float
    ideal_runtime_s: float
    efficiency: float | None
    fault: Fault | None
    workers_started: int
    orchestrator_peak_rss_mib: float
    verify_s: float
    worker_peak_rss_mib: float | None
    cpu_s: dict[str, float | None]
    workers_replaced: int
    restart: str
    broker_outages: list[Outage]
    state: str
    verified: bool
    ok: bool
    problems: list[str] = field(default_factory=list)
    verify_mode: str = "full"  # full | sample | none: which values were recomputed
    values_recomputed: int = 0  # by a worker other than the one that computed them
    results_rows: int = 0  # rows in results.parquet
    results_file: str | None = None
    complete_s: float | None = None  # first task published -> every result and recomputation
    # in and on disk: runtime_s plus the verification's tail
    resumed: bool = False  # continued a run whose orchestrator died (ttg run --resume)
    chunks_redone: int = 0  # chunks a resumed run published again
    failed_points: dict[str, Any] | None = None  # failures.FailureBook.summary(): by type
    fingerprint: str = ""  # the function's (reuse/fingerprint.py): same one, same values
    points_reused: int = 0  # values copied from earlier runs of the same function (reuse)
    points_computed: int | None = None  # the others: this run's workers computed them
    reuse: dict[str, Any] | None = None  # fingerprint, sources, checked, rejected

    def to_dict(self) -> dict[str, Any]:
        """``summary.json``: the fault and the outages as their own ``to_dict`` spells them."""
        data = asdict(self)
        data["fault"] = self.fault.to_dict() if self.fault else None
        data["broker_outages"] = [o.to_dict() for o in self.broker_outages]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """A summary read back (``summary.json``): typed again, as it was written. Keys an
        older TTG did not write take their defaults; keys a newer one added are ignored."""
        known = {f.name: f for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        for name, f in known.items():
            if name not in values and f.default is MISSING and f.default_factory is MISSING:
                values[name] = None  # a field this record predates: unknown
        values["fault"] = Fault.from_dict(values["fault"])
        values["broker_outages"] = [Outage.from_dict(o) for o in values["broker_outages"] or []]
        return cls(**values)

    @property
    def verdict(self) -> Verdict:
        """The verification's verdict, nested as the collector gave it."""
        return Verdict(total_params=self.total_params, chunks_total=self.chunks_total,
                       **{name: getattr(self, name) for name in VERDICT_COUNTS},
                       problems=list(self.problems))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def as_summary(summary: RunSummary | Mapping[str, Any]) -> RunSummary:
    """A summary typed, whether it came typed or as ``summary.json``'s dict (the CLI's)."""
    return summary if isinstance(summary, RunSummary) else RunSummary.from_dict(summary)


def build_summary(*, config: RunConfig, started_at: str, state: str, verdict: Verdict,
                  timing: Timing, stats: QueueStats | None, dead_letters: int,
                  retries: int, fault: dict[str, Any] | None, workers: list[WorkerStatus],
                  workers_started: int, workers_replaced: int,
                  outages: list[dict[str, Any]], peak_rss_mib: float,
                  verify_s: float, verify_mode: str, results_rows: int,
                  results_file: str | None, resumed: bool = False,
                  chunks_redone: int = 0, complete_s: float | None = None,
                  failed_points: dict[str, Any] | None = None, points_reused: int = 0,
                  reuse: dict[str, Any] | None = None) -> RunSummary:
    runtime = timing.runtime_s
    failed = (failed_points or {}).get("count", 0)
    ideal = config.ideal_runtime_s
    done = state == "done"
    return RunSummary(
        run_id=config.run_id, started_at=started_at,
        record_dir=str(config.record_dir.resolve()), compute=config.compute,
        backend=config.backend, cluster=config.cluster, scale=config.scale,
        workers=config.workers, total_params=config.total_params,
        chunk_size=config.chunk_size, work_ms=config.work_ms,
        chunks_total=config.chunks_total,
        **{name: getattr(verdict, name) for name in VERDICT_COUNTS}, retry_count=retries,
        dlq_count=stats.dlq.messages if stats and stats.dlq.messages is not None
        else dead_letters,
        retry_queue=stats.retry.messages if stats else None,
        results_queue=stats.results.messages if stats else None,
        tasks_queue=stats.tasks.messages if stats else None,
        runtime_s=round(runtime, 3) if runtime else None,
        throughput_params_s=round(verdict.params_verified / runtime, 2) if runtime else 0.0,
        ideal_runtime_s=round(ideal, 3),
        efficiency=round(ideal / runtime, 4) if runtime and config.work_ms > 0 else None,
        fault=Fault.from_dict(fault), workers_started=workers_started,
        orchestrator_peak_rss_mib=peak_rss_mib, verify_s=round(verify_s, 3),
        worker_peak_rss_mib=max((w.peak_rss_mib for w in workers if w.peak_rss_mib),
                                default=None),
        cpu_s=cpu_budget(workers, timing.orchestrator_cpu_s),
        workers_replaced=workers_replaced, restart=config.restart,
        broker_outages=[Outage.from_dict(o) for o in outages],
        state=state, verified=verdict.ok, ok=verdict.ok and done and not failed,
        problems=verdict.problems + ([] if done else [f"run ended in state {state!r}"])
        + ([_failed_problem(failed_points or {})] if failed else []),
        verify_mode=verify_mode,
        results_rows=results_rows, results_file=results_file, resumed=resumed,
        chunks_redone=chunks_redone,
        complete_s=round(complete_s, 3) if complete_s is not None else None,
        failed_points=failed_points, fingerprint=config.fingerprint,
        points_reused=points_reused,
        points_computed=config.total_params - points_reused, reuse=reuse)


def _failed_problem(failed: dict[str, Any]) -> str:
    """One line for the problems list: how many points failed, and the first error."""
    if failed.get("stopped"):
        return failed["stopped"]
    count = failed["count"]
    return (f"{count:,} point{'s' if count != 1 else ''} failed (first: "
            f"{failed.get('first_error')})")


def cpu_budget(workers: list[WorkerStatus], orchestrator: float | None
               ) -> dict[str, float | None]:
    """Where the CPU went between the first task published and the last result read: the
    orchestrator's own, and the workers' split into the user's function and the rest (None
    where workers report no heartbeat)."""
    reporting = [w for w in workers if w.cpu_s is not None]
    total = round(sum(w.cpu_s or 0.0 for w in reporting), 4) if reporting else None
    compute = (round(sum(w.compute_cpu_s or 0.0 for w in reporting), 4) if reporting
               else None)
    return {"orchestrator": orchestrator, "workers": total, "workers_compute": compute}
