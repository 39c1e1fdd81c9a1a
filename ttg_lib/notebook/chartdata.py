"""The charts' data: samples (typed, :class:`ttg_lib.recorded.Sample`), sliding-window
throughput, the lines a chart draws from them, and markers for the fault and every worker
death; drawn by :mod:`.charts`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..recorded import EventKind, Fault, QueueDepth, QueueRole, Sample, WorkerEvent
from ..sampling import sample_row
from ..summary import RunSummary

THROUGHPUT_WINDOW_S = 2.0


def sample_from_progress(progress: Any) -> Sample:
    """One chart sample from a :class:`ttg_lib.run.Progress`, shaped like samples.jsonl."""
    return Sample.from_dict(sample_row(progress))  # the ETA and the story included


def throughput(samples: list[Sample], window_s: float = THROUGHPUT_WINDOW_S
               ) -> tuple[list[float], list[float]]:
    """Params per second over a sliding window, one value per sample."""
    xs, ys = [], []
    j = 0
    for i, s in enumerate(samples):
        while j < i and s.t - samples[j].t > window_s:
            j += 1
        dt = s.t - samples[j].t
        xs.append(s.t)
        ys.append(round((s.params_done - samples[j].params_done) / dt, 2) if dt > 0 else 0.0)
    return xs, ys


@dataclass(frozen=True)
class Mark:
    """A vertical marker on the chart's time axis (run seconds)."""

    t: float
    kind: str  # an EventKind's text, or "fault"
    label: str


MARKED = (EventKind.KILLED, EventKind.DIED, EventKind.REPLACED, EventKind.FROZEN,
          EventKind.HUNG)


def marks_from_events(events: Iterable[WorkerEvent | Mapping[str, Any]], t0_wall: float,
                      fault: Fault | Mapping[str, Any] | None = None) -> list[Mark]:
    """Vertical markers on the run's time axis: the fault injection and every worker
    death and replacement (initial starts and the final stops are not marked). Events as
    the record has them, or as a live run's progress gives them (dicts)."""
    marks = []
    first = Fault.from_dict(fault)
    fault_worker = first.killed_worker if first else None
    for e in events:
        e = WorkerEvent.from_dict(e) if isinstance(e, Mapping) else e
        if e.kind not in MARKED:
            continue
        t = round(e.t - t0_wall, 3)
        if e.kind == EventKind.KILLED and e.worker == fault_worker:
            label, kind = f"fault: {e.worker} killed", "fault"
            fault_worker = None
        elif e.kind == EventKind.REPLACED:
            label, kind = f"{e.worker} {e.detail.split(', ')[-1]}".strip(), e.kind.value
        else:
            label, kind = f"{e.worker} {e.kind}", e.kind.value
        marks.append(Mark(t, kind, label))
    return marks


READY_ONLY = " ready (total unknown)"


def series(samples: list[Sample], key: str) -> tuple[list[float], list[Any]]:
    """One line of the chart, by its samples.jsonl column. A queue whose total the broker
    could not give in any sample (RabbitMQ without its management API) is drawn by its
    ready count, which :func:`series_label` says; never by a total guessed from it."""
    if ready_only(samples, key):
        key = f"{key}_ready"
    rows = [s for s in samples if s.has(key)]
    return [s.t for s in rows], [s.column(key) for s in rows]


def series_label(samples: list[Sample], key: str, name: str) -> str:
    return name + READY_ONLY if ready_only(samples, key) else name


def ready_only(samples: list[Sample], key: str) -> bool:
    return (any(s.column(f"{key}_ready") is not None for s in samples)
            and all(s.column(key) is None for s in samples))


def t0_wall(samples: list[Sample]) -> float | None:
    for s in samples:
        if s.wall is not None:
            return s.wall - s.t
    return None


def final_sample(summary: RunSummary | None, samples: list[Sample],
                  stats: dict[str, Any] | None) -> Sample | None:
    """The end state, when the last periodic sample came before the last result: queue
    depths from queue_stats.json, progress from summary.json, at the last result's time."""
    if not samples or not stats or summary is None or summary.runtime_s is None:
        return None
    last = samples[-1]
    if last.completed >= (summary.chunks_completed or 0):
        return None
    queues = dict(last.queues)
    for role in QueueRole:
        if role.value in stats:  # drawn like the samples before it: totals, or ready counts
            known = queues.get(role, QueueDepth(None)).messages is not None
            queues[role] = QueueDepth(stats[role.value]["messages"] if known else None,
                                      stats[role.value]["ready"])
    story: dict[str, Any] = {}
    if last.chunks_left is not None:  # the story's end: from the summary too
        story["chunks_left"] = max(0, (summary.chunks_total or 0) - summary.chunks_completed
                                   - (summary.chunks_failed or 0))
        story["rows"] = summary.results_rows if summary.results_rows is not None else last.rows
        if summary.state == "done":
            story["verify_queued"] = 0
    return last.replace(t=max(last.t, summary.runtime_s), completed=summary.chunks_completed,
                        failed=summary.chunks_failed or 0,
                        params_done=summary.params_verified or last.params_done,
                        queues=queues, wall=None, **story)
