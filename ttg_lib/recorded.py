"""A run record read back, typed: samples, worker events, the fault, broker outages and the
workers' last heartbeats (``samples.jsonl``, ``events.json``, ``workers.json``).

Reports, charts and benchmarks read these attributes, never the files' keys. A record
written by an older TTG loads: a field it predates takes its default. One written by a newer
TTG loads too: an event, activity or reason this version does not know reads as ``OTHER``
(its text kept), and a sample's fields this version does not know stay in ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .record import load_json, read_jsonl
from .textenum import Lenient, TextEnum


class EventKind(Lenient):
    """A worker's lifecycle event as the cluster books it (``events.json``)."""

    STARTED = "started"
    STOPPED = "stopped"
    DIED = "died"
    KILLED = "killed"
    HUNG = "hung"
    REPLACED = "replaced"
    FREED = "freed"  # its tasks handed to the other workers
    CHECKED = "checked"
    BACKOFF = "backoff"
    FROZEN = "frozen"
    THAWED = "thawed"
    STOP_FAILED = "stop-failed"
    OTHER = "other"


class FaultReason(Lenient):
    DEMO = "fault demo"  # --fault-demo at kill_at of the chunks
    MANUAL = "manual"  # the panel's button
    CHAOS = "chaos"  # benchmarks/chaos.py
    OTHER = "other"  # a caller's own words: kept in Fault.reason_text


class Activity(Lenient):
    """What a worker's heartbeat last said it was doing, or the cluster's state once its
    process ended."""

    STARTING = "starting"
    READY = "ready"
    IDLE = "idle"
    BUSY = "busy"
    RECONNECTING = "reconnecting"
    RUNNING = "running"
    DEAD = "dead"
    STOPPED = "stopped"
    OTHER = "other"


class QueueRole(TextEnum):
    TASKS = "tasks"
    RESULTS = "results"
    RETRY = "retry"
    DLQ = "dlq"


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class WorkerEvent:
    t: float  # wall clock
    kind: EventKind
    worker: str
    detail: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerEvent:
        return cls(t=float(data.get("t") or 0.0), kind=EventKind.of(data.get("event")),
                   worker=str(data.get("worker", "")), detail=str(data.get("detail") or ""))


@dataclass(frozen=True)
class Fault:
    """The run's first kill (the fault demo's, or a manual one)."""

    killed_worker: str
    killed_at_s: float | None = None  # run seconds
    killed_at_fraction: float | None = None  # of the chunks finished by then
    kill_at: float | None = None  # the fault demo's setting; None for a manual kill
    victim_chunk: int | None = None
    recovered_after_s: float | None = None  # its chunk back in work after this long
    recovered_chunk: int | None = None  # the first redelivered chunk after the kill
    recovered_by: str | None = None  # the worker that took it
    reason: FaultReason = FaultReason.DEMO
    reason_text: str = "fault demo"  # as the run gave it (OTHER's own words)
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Fault | None) -> Fault | None:
        if data is None or isinstance(data, Fault):
            return data
        if not data:
            return None
        values = {"killed_worker": "", **_known(cls, data)}
        values["reason_text"] = str(values.get("reason", "fault demo"))
        values["reason"] = FaultReason.of(values["reason_text"])
        values["extra"] = {k: v for k, v in data.items() if k not in values}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """As ``summary.json`` spells it (``reason`` in its own words), nothing dropped and
        nothing added: the recovery's fields only once there was one."""
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("reason_text", "extra")
                and not (f.name in ("recovered_chunk", "recovered_by") and
                         getattr(self, f.name) is None)}
        return {**data, "reason": self.reason_text, **self.extra}


@dataclass(frozen=True)
class Outage:
    """A span the broker was unreachable (run seconds), and what was published again."""

    start_s: float
    end_s: float | None = None  # None: still down when the run ended
    republished_chunks: int | None = None
    republished_checks: int | None = None
    broker_kept_chunks: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Outage) -> Outage:
        if isinstance(data, Outage):
            return data
        known = {k: v for k, v in _known(cls, data).items() if k != "extra"}
        return cls(**known, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """As the session wrote it: what was published again only once the broker was back
        (an absent ``republished_chunks`` says nothing was lost)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in ("start_s", "end_s") or
                (f.name != "extra" and getattr(self, f.name) is not None)}
        return {**data, **self.extra}

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else round(self.end_s - self.start_s, 3)


@dataclass(frozen=True)
class QueueDepth:
    messages: int | None  # None: the broker could not tell (RabbitMQ without management)
    ready: int | None = None
    unacked: int | None = None


@dataclass(frozen=True)
class Sample:
    """One line of ``samples.jsonl`` (or of the live chart): progress and queue depths."""

    t: float  # run seconds
    completed: int = 0
    failed: int = 0
    params_done: int = 0
    live_workers: int = 0
    consumers: int | None = None
    wall: float | None = None
    broker_up: bool = True
    eta_s: float | None = None
    eta_spread_s: float | None = None
    # the run's story, from the ledger (None in a record from before they were sampled)
    chunks_left: int | None = None  # chunks not yet computed
    verify_queued: int | None = None  # recomputations asked for, not answered yet
    rows: int | None = None  # points on disk (None: results not kept)
    queues: dict[QueueRole, QueueDepth] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Sample:
        rest = dict(row)
        queues = {}
        for role in QueueRole:
            if role.value in rest or f"{role.value}_ready" in rest:
                queues[role] = QueueDepth(rest.pop(role.value, None),
                                          rest.pop(f"{role.value}_ready", None),
                                          rest.pop(f"{role.value}_unacked", None))
        values = {k: v for k, v in _known(cls, rest).items() if k not in ("queues", "extra")}
        extra = {k: v for k, v in rest.items() if k not in values}
        return cls(**values, queues=queues, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The ``samples.jsonl`` row again (its keys as the file spells them)."""
        row: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                               if f.name not in ("queues", "extra")}
        for role, depth in self.queues.items():
            row[role.value], row[f"{role.value}_ready"] = depth.messages, depth.ready
            row[f"{role.value}_unacked"] = depth.unacked
        return {**row, **self.extra}

    def column(self, name: str) -> Any:
        """A chart's column by its ``samples.jsonl`` name (``tasks``, ``tasks_ready``,
        ``consumers``, or a field a newer sampler added); None where this sample has none."""
        role, _, part = name.partition("_")
        if role in QueueRole._value2member_map_ and part in ("", "ready", "unacked"):
            depth = self.queues.get(QueueRole(role))
            return None if depth is None else getattr(depth, part or "messages")
        if name in ("queues", "extra"):
            return None
        return getattr(self, name) if hasattr(self, name) else self.extra.get(name)

    def has(self, name: str) -> bool:
        role = name.partition("_")[0]
        if role in QueueRole._value2member_map_:
            return QueueRole(role) in self.queues
        return hasattr(self, name) or name in self.extra

    def replace(self, **changes: Any) -> Sample:
        from dataclasses import replace

        return replace(self, **changes)


@dataclass(frozen=True)
class Heartbeat:
    """A worker's last state (``workers.json``): the cluster's view and its heartbeat's."""

    name: str
    state: Activity  # the cluster's view: starting | running | dead | stopped
    activity: Activity | None = None  # the heartbeat's: ready | idle | busy | reconnecting
    ident: str = ""  # pid or pod name
    node: str = "localhost"
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    replaces: str | None = None
    chunks_done: int | None = None
    current_chunk: int | None = None
    last_heartbeat: float | None = None  # wall clock
    peak_rss_mib: float | None = None
    cpu_s: float | None = None
    compute_cpu_s: float | None = None
    chunk_started_at: float | None = None
    chunks_held: int | None = None  # by the broker, where known
    running: dict[str, Any] | None = None  # a point running > 1 min: chunk, param_id, seconds
    compute_crashes: int | None = None
    point_timeouts: int | None = None
    compute_recycled: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Heartbeat:
        values = _known(cls, data)
        values["name"] = str(values.get("name", ""))
        values["ident"] = str(values.get("ident") or data.get("pid") or "")
        values["state"] = Activity.of(values.get("state"))
        activity = values.get("activity")
        values["activity"] = None if activity is None else Activity.of(activity)
        return cls(**values)


@dataclass(frozen=True)
class RecordedEvents:
    """``events.json``: the workers' lifecycle, the fault, the broker's outages."""

    workers: list[WorkerEvent]
    fault: Fault | None
    outages: list[Outage]


def load_samples(record_dir: str | Path) -> list[Sample]:
    return [Sample.from_dict(row) for row in read_jsonl(Path(record_dir) / "samples.jsonl")]


def load_events(record_dir: str | Path) -> RecordedEvents:
    data = load_json(Path(record_dir) / "events.json", {}) or {}
    return RecordedEvents(workers=[WorkerEvent.from_dict(e) for e in data.get("workers", [])],
                          fault=Fault.from_dict(data.get("fault")),
                          outages=[Outage.from_dict(o) for o in data.get("broker_outages")
                                   or []])


def load_heartbeats(record_dir: str | Path) -> list[Heartbeat]:
    return [Heartbeat.from_dict(row) for row in
            load_json(Path(record_dir) / "workers.json", []) or []]
