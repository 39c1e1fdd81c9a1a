"""The orchestrator's book of failed points: counted by error type, each kept with its
traceback, and the run's failure budget (``--max-failures N`` or ``P%``).

A point fails alone (:mod:`ttg_lib.points`): its row in ``results.parquet`` has ``error``
("Type: message", "crashed: signal 9 (SIGKILL)", "timeout after 5 s"), and its traceback's
last frames go to ``failures.jsonl`` in the run's record, one line per failed point, keyed
by ``param_id``. The summary's ``failed_points`` counts them by type with the first few ids.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .messages import Result, Task

FAILURES_FILE = "failures.jsonl"
FIRST_IDS = 5
_TYPE = re.compile(r"^([A-Za-z_][\w.]*):")


def error_type(error: str) -> str:
    """The kind of a point's error: the exception's class, ``crashed``, ``timeout`` or
    ``cannot store``."""
    if error.startswith("timeout after"):
        return "timeout"
    if error.startswith("cannot store"):
        return "cannot store"
    if error.startswith("failed after"):  # a dead-lettered chunk: the cause follows
        error = error.split(": ", 1)[-1]
    match = _TYPE.match(error)
    return match.group(1) if match else error.split(" ", 1)[0]


@dataclass(frozen=True)
class FailureBudget:
    """``--max-failures``: N points, or P% of the run's points; more than that stops it."""

    points: int = 0
    percent: float = 0.0

    @classmethod
    def parse(cls, text: str | int | None) -> FailureBudget | None:
        if text in (None, "", 0, "0"):
            return None
        raw = str(text).strip()
        try:
            if raw.endswith("%"):
                percent = float(raw[:-1])
                if 0 < percent <= 100:
                    return cls(percent=percent)
            elif int(raw) > 0:
                return cls(points=int(raw))
        except ValueError:
            pass
        raise ConfigError("max_failures", text, "a number of points (e.g. 5) or a "
                                                "percentage of the run's points (e.g. 2%)")

    def allowed(self, total_params: int) -> int:
        return self.points or int(total_params * self.percent / 100)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent else str(self.points)


@dataclass
class _Kind:
    count: int = 0
    first: list[int] = field(default_factory=list)
    example: str = ""


class FailureBook:
    """Failed points as results arrive (new results only: a duplicate or a recomputation
    adds nothing), with the budget check the run asks after every read."""

    def __init__(self, record: Any, total_params: int, budget: FailureBudget | None = None,
                 point_timeout: str = ""):
        self.record = record
        self.point_timeout = point_timeout  # the run's setting: seconds, "auto" or ""
        self.budget = budget
        self.allowed = budget.allowed(total_params) if budget else None
        self.kinds: dict[str, _Kind] = {}
        self.count = 0
        self.new = 0  # failed in this run (a resumed one restores the earlier ones): budgeted
        self.first_error = ""
        self.point_limit_s = 0.0  # the largest auto time limit a worker reported
        self.stopped = ""  # why the budget stopped the run

    def add(self, result: Result) -> None:
        if result.point_limit_s:
            self.point_limit_s = max(self.point_limit_s, result.point_limit_s)
        for param_id, error, attempts, trace in _failed(result):
            self.new += 1
            self._count(param_id, error)
            self.record.append(FAILURES_FILE, {
                "param_id": param_id, "chunk_id": result.chunk_id, "error": error,
                "attempts": attempts, "worker": result.worker, "at": time.time(),
                "trace": trace})
        if self.allowed is not None and self.new > self.allowed and not self.stopped:
            self.stopped = (f"stopped: {self.new} points failed (first: "
                            f"{self.first_error})")

    def restore(self, param_ids: list[int], errors: list[str]) -> None:
        """A resumed run's failed rows already on disk: counted, not against the budget."""
        for param_id, error in zip(param_ids, errors, strict=True):
            self._count(param_id, error)

    def _count(self, param_id: int, error: str) -> None:
        self.count += 1
        kind = self.kinds.setdefault(error_type(error), _Kind(example=error))
        kind.count += 1
        if len(kind.first) < FIRST_IDS:
            kind.first.append(param_id)
        self.first_error = self.first_error or error

    def summary(self, retried: int | None = None,
                workers: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The ``failed_points`` of summary.json (None when there is nothing to say);
        ``retried``: points a --retry-failed run recomputed; ``workers``: their statuses."""
        workers = _compute_counters(workers)
        if not (self.count or self.point_limit_s or self.budget or retried is not None
                or self.point_timeout or any(workers.values())):
            return None
        return {"count": self.count, "first_error": self.first_error or None,
                "retried": retried, **workers,
                "by_type": {name: {"count": k.count, "first_param_ids": k.first,
                                   "example": k.example}
                            for name, k in sorted(self.kinds.items(),
                                                  key=lambda item: -item[1].count)},
                "max_failures": str(self.budget) if self.budget else None,
                "stopped": self.stopped or None,
                "point_timeout": self.point_timeout or None,
                "auto_point_timeout_s": round(self.point_limit_s, 3) or None}


def group_by_type(param_ids: Sequence[int], errors: Sequence[str],
                  first: int = FIRST_IDS) -> list[dict[str, Any]]:
    """Failed points grouped by error type, most frequent first: ``error_type``, ``count``,
    the first ``param_ids`` and one ``example`` message (tables, reports, exports)."""
    groups: dict[str, dict[str, Any]] = {}
    for pid, error in zip(param_ids, errors, strict=True):
        kind = error_type(error)
        group = groups.setdefault(kind, {"error_type": kind, "count": 0, "param_ids": [],
                                         "example": error})
        group["count"] += 1
        if len(group["param_ids"]) < first:
            group["param_ids"].append(int(pid))
    return sorted(groups.values(), key=lambda g: -g["count"])


def failed_lines(summary: dict[str, Any]) -> list[str]:
    """The failed points by error type, for people: the summary's closing lines."""
    failed = summary.get("failed_points") or {}
    lines = []
    if failed.get("auto_point_timeout_s"):
        lines.append(f"point timeout (auto): {failed['auto_point_timeout_s']:g} s")
    elif failed.get("point_timeout"):
        lines.append(f"point timeout: {failed['point_timeout']} s")
    if failed.get("compute_recycled"):
        lines.append(f"compute processes recycled: {failed['compute_recycled']}")
    if not failed.get("count"):
        return lines
    lines.append(f"failed points: {failed['count']:,} (ttg results RUN --failed; "
                 f"ttg repro RUN PARAM_ID)")
    for name, kind in failed["by_type"].items():
        ids = ", ".join(map(str, kind["first_param_ids"]))
        more = ", ..." if kind["count"] > len(kind["first_param_ids"]) else ""
        lines.append(f"  {kind['count']:>6,}  {name:<14} e.g. {kind['example'][:80]}  "
                     f"(param_id {ids}{more})")
    return lines


def recheck_task(task: Task, result: Result) -> Task:
    """The recomputation of a result by another worker: its failed points are left out (they
    are None on both sides), so a hung or crashing point is not waited out twice."""
    if not result.failures:
        return task
    failed = {f.offset for f in result.failures}
    asked = task.only if task.only is not None else range(task.count)  # reuse: some only
    return dataclasses.replace(task, only=tuple(i for i in asked if i not in failed))


def retry_failed_points(config: Any, writer: Any, say: Any) -> Any:
    """--retry-failed: the run's failed points, read from its table; the writer told to
    replace their rows."""
    from .results import ResultsError, result_files
    from .retryfailed import FailedPoints

    try:
        files = result_files(config.record_dir)
    except ResultsError:
        files = []
    failed = FailedPoints.read(files, config.chunk_size)
    if failed.count and hasattr(writer, "retry"):
        writer.retry(failed)
    say(f"--retry-failed: recomputing {failed.count:,} failed points in "
        f"{len(failed.chunks):,} chunks (no other point is computed again)")
    return failed


def _compute_counters(workers: Sequence[Any]) -> dict[str, int]:
    """Compute-process counters, summed over the workers' heartbeats (WorkerStatus)."""
    keys = ("compute_crashes", "point_timeouts", "compute_recycled")
    return {key: sum(getattr(w, key, None) or 0 for w in workers) for key in keys}


def _failed(result: Result) -> Iterator[tuple[int, str, int, str]]:
    """(param_id, error, attempts, trace) of each failed point of a result."""
    if result.error is not None:  # dead-lettered whole: every point of it
        for offset in range(result.count):
            yield result.start + offset, result.error, result.attempt, ""
        return
    for f in result.failures:
        yield result.start + f.offset, f.error, result.attempt + f.attempts - 1, f.trace


def row_columns(batch: list[Result], chunk_errors: list[str | None],
                counts: Any) -> tuple[Any, Any] | None:
    """The ``error`` and ``attempt`` columns of a batch whose results have failed points
    (None when none has: the table's fast path stays as it was). Used by the results table."""
    if not any(r.failures for r in batch):
        return None
    import numpy as np

    from . import arrowcols

    errors: list[str | None] = []
    attempts: list[int] = []
    for r, chunk_error in zip(batch, chunk_errors, strict=True):
        rows, tries = [chunk_error] * r.count, [r.attempt] * r.count
        for f in r.failures:
            rows[f.offset], tries[f.offset] = f.error, r.attempt + f.attempts - 1
        errors += rows
        attempts += tries
    return (arrowcols.strings(errors),
            arrowcols.from_numpy(np.array(attempts, dtype=np.int64)))
