"""Milestone tables built from run summaries: the CLI and the notebooks render the same rows.

Nothing here is typed in by hand: every observed figure and every observation
comes from a summary.json written by a run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..backends import REGISTRY, backend_names, get_spec
from ..record import load_json
from ..summary import RunSummary, as_summary

Row = tuple[str, str, str]  # metric, target, observed
Summary = RunSummary | Mapping[str, Any]  # typed, or summary.json's dict (typed on entry)


def _pct(fraction: float | None, digits: int = 0) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.{digits}f}%"


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def milestone_rows(summary: Summary) -> list[Row]:
    """Target vs Observed, in the order of the milestone document's tables."""
    s = as_summary(summary)
    n, chunks = s.workers, s.chunks_total
    started = n if s.workers_started is None else s.workers_started
    rows: list[Row] = [("Workers started", f"{n}/{n}", f"{started}/{n}")]
    fault = s.fault
    if fault:
        target = f"1 at ~{_pct(fault.kill_at)}" if fault.kill_at else "1"
        rows.append(("Worker killed", target,
                     f"1 ({fault.killed_worker}) at ~{_pct(fault.killed_at_fraction)}"))
        recovered = fault.recovered_after_s
        rows.append(("Chunk recovered after kill", "≤ 3 s",
                     "no chunk in flight" if recovered is None else f"{recovered:.2f} s"))
        if s.restart == "always":
            rows.append(("Workers replaced", "1", str(s.workers_replaced or 0)))
    rows += [
        ("Completed chunks", f"{chunks}/{chunks}", f"{s.chunks_completed}/{chunks}"),
        ("Runtime (seconds)", f"≥ {s.ideal_runtime_s:.1f} (ideal)", _num(s.runtime_s, "s", 2)),
        ("Efficiency (ideal / runtime)", "≥ 99%", _pct(s.efficiency, 1)),
        ("Throughput (params/sec)", "record", _num(s.throughput_params_s, "", 1)),
        ("Retry queue", "0", str(_known_or(s.retry_queue))),
        ("DLQ", "0", str(_known_or(s.dlq_count))),
        ("Results stored (results.parquet)", f"{s.total_params:,} rows", _results_kept(s)),
        *_reuse_rows(s),
        ("Points present exactly once", f"{s.total_params:,}", f"{s.params_verified:,}"),
        (f"Values recomputed by another worker ({s.verify_mode})",
         _recompute_target(s), f"{s.values_recomputed:,}"),
        ("Duplicate deliveries (harmless)", "record", str(s.duplicate_deliveries or 0)),
        ("Data loss", "ZERO", data_loss(s)),
    ]
    return rows


def _known_or(value: Any, unknown: str = "n/a") -> Any:
    return unknown if value is None else value


def _reuse_rows(s: RunSummary) -> list[Row]:
    """Points reused from earlier runs, and any run whose values were rejected."""
    reuse = s.reuse or {}
    if not s.points_reused and not reuse.get("rejected"):
        return []
    rows = [("Points reused / computed", "record",
             f"{s.points_reused:,} / {s.points_computed or 0:,} "
             f"({reuse.get('points_checked', 0):,} reused recomputed to check)")]
    for run, why in (reuse.get("rejected") or {}).items():
        rows.append((f"Reuse of run {run}", "accepted", f"REJECTED: {why}"))
    return rows


def _results_kept(s: RunSummary) -> str:
    """Results live in the run's table; the broker keeps none once they are on disk."""
    left = s.results_queue
    broker = "n/a" if left is None else f"{left} left in the results queue"
    return f"{s.results_rows:,} rows; {broker}"


def _recompute_target(s: RunSummary) -> str:
    """What the mode promises, never more: every value, a sample, or none."""
    return {"full": f"{s.total_params:,} (every value)",
            "sample": "≈1 % of chunks, ≥ 1 per worker",
            "none": "0 (structure checked only)"}.get(s.verify_mode, "record")


def verified_claim(summary: Summary) -> str:
    """What a verified run proves, by its verification mode; it never claims more."""
    s = as_summary(summary)
    present = f"all {s.params_verified:,} points present exactly once"
    if s.verify_mode == "none":
        return f"{present} (values not recomputed: --verify none)"
    scope = ("every value" if s.verify_mode == "full"
             else f"a sample of {s.values_recomputed:,} values")
    return f"{present}; {scope} recomputed by another worker and equal"


def data_loss(summary: Summary) -> str:
    s = as_summary(summary)
    lost, wrong = s.lost_params or 0, s.wrong_results or 0
    if not lost and not wrong:
        return "ZERO"
    parts = [f"{lost:,} params lost"] if lost else []
    parts += [f"{wrong:,} wrong"] if wrong else []
    return ", ".join(parts)


def _known(value: Any) -> Any:
    """A figure the broker could not give (RabbitMQ without its management API)."""
    return "unknown" if value is None else value


def queue_stats_rows(stats: dict[str, Any]) -> list[tuple[str, Any, Any, Any, Any]]:
    """name, messages, consumers, ready, unacked — the milestone's 'Queue Stats' block."""
    rows = []
    for role in ("retry", "dlq", "tasks", "results"):
        q = stats.get(role)
        if q:
            rows.append((q["name"], _known(q["messages"]), q["consumers"], q["ready"],
                         _known(q["unacked"])))
    return rows


def recovery_method(summary: Summary) -> str:
    """How the run's broker brings a dead worker's chunk back, with the run's own lease."""
    s = as_summary(summary)
    config = load_json(Path(s.record_dir) / "config.json", {}) if s.record_dir else {}
    return get_spec(s.backend).recovery_text(config.get("lease_s", 2.0))


def comparison_rows(summaries: list[Summary]) -> tuple[list[str], list[list[str]]]:
    """Backend Comparison Summary: one column per run label, medians over repeats."""
    groups = group_runs(summaries)
    header = ["Metric"] + list(groups)
    metrics: list[tuple[str, Any]] = [
        ("Chunks", lambda g: f"{_median(g, lambda s: s.chunks_completed):.0f}"
                             f"/{g[0].chunks_total}"),
        ("Runtime", lambda g: f"{_median(g, lambda s: s.runtime_s):.1f}s"),
        ("Throughput", lambda g: f"{_median(g, lambda s: s.throughput_params_s):.1f} p/s"),
        ("Efficiency", lambda g: _pct(_median(g, lambda s: s.efficiency), 1)),
        ("Recovery method", lambda g: recovery_method(g[0])),
        ("Recovery time", lambda g: _recovery(g)),
        ("DLQ", lambda g: f"{_median(g, lambda s: s.dlq_count):.0f}"),
        ("Data loss", lambda g: "ZERO" if all(data_loss(s) == "ZERO" for s in g)
         else "; ".join(data_loss(s) for s in g)),
        ("Runs", lambda g: str(len(g))),
    ]
    body = [[name] + [fn(g) for g in groups.values()] for name, fn in metrics]
    return header, body


def _recovery(group: list[RunSummary]) -> str:
    values = [s.fault.recovered_after_s for s in group
              if s.fault and s.fault.recovered_after_s is not None]
    return "n/a" if not values else f"{_middle(values):.2f}s"


def run_label(s: Summary) -> str:
    if isinstance(s, Mapping):  # a label before the run: {"backend": ..., "fault": ...}
        return f"{_title(s['backend'])} ({'fault' if s.get('fault') else 'no fault'})"
    return f"{_title(s.backend)} ({'fault' if s.fault else 'no fault'})"


def _title(backend: str) -> str:
    return REGISTRY[backend].title if backend in REGISTRY else backend


def group_runs(summaries: list[Summary]) -> dict[str, list[RunSummary]]:
    """Runs by label, in the milestone document's order: every broker without a fault, then
    every broker with one."""
    order = [f"{_title(b)} ({fault})" for fault in ("no fault", "fault")
             for b in backend_names(runnable=True)]
    groups: dict[str, list[RunSummary]] = {}
    for s in map(as_summary, summaries):
        groups.setdefault(run_label(s), []).append(s)
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0])
                       if kv[0] in order else len(order)))


def _median(group: list[RunSummary], figure: Callable[[RunSummary], float | None]) -> float:
    return _middle([v for v in map(figure, group) if v is not None])


def _middle(values: list[float]) -> float:
    """The median; NaN for no values (the tables print it as n/a)."""
    return statistics.median(values) if values else float("nan")


def key_observations(summaries: list[Summary]) -> list[str]:
    """Observations computed from the runs: faster backend, fault slowdown, recovery, loss."""
    summaries = [as_summary(s) for s in summaries]
    groups = group_runs(summaries)
    out: list[str] = []
    complete = all(s.chunks_completed == s.chunks_total for s in summaries)
    lossless = all(data_loss(s) == "ZERO" for s in summaries)
    out.append(f"{'All' if complete else 'Not all'} {len(summaries)} runs completed every chunk; "
               f"data loss: {'ZERO in every run' if lossless else 'see the table'}.")
    titles = [_title(b) for b in backend_names(runnable=True)]
    for fault in ("no fault", "fault"):
        timed = sorted((_median(groups[f"{t} ({fault})"], _runtime), t) for t in titles
                       if groups.get(f"{t} ({fault})"))
        if len(timed) >= 2:
            (r, faster), (q, slower) = timed[0], timed[-1]
            out.append(f"{fault.capitalize()}: {faster} was faster than {slower} by "
                       f"{abs(q - r) / max(r, q) * 100:.1f}% ({min(r, q):.1f}s vs "
                       f"{max(r, q):.1f}s).")
    for backend in titles:
        base, hit = groups.get(f"{backend} (no fault)"), groups.get(f"{backend} (fault)")
        if base and hit:
            slow = _median(hit, _runtime) / _median(base, _runtime) - 1
            out.append(f"{backend}: killing one worker changed the runtime by {slow * 100:+.1f}%"
                       f"; its in-flight chunk was back in work after {_recovery(hit)}.")
    effs = [s.efficiency for s in summaries if s.efficiency is not None]
    if effs:
        out.append(f"Parallel efficiency (ideal / runtime) ranged {min(effs) * 100:.1f}%–"
                   f"{max(effs) * 100:.1f}%.")
    dupes = sum(s.duplicate_deliveries or 0 for s in summaries)
    out.append(f"Duplicate deliveries across all runs: {dupes} (counted once in results).")
    return out


def _runtime(s: RunSummary) -> float | None:
    return s.runtime_s
