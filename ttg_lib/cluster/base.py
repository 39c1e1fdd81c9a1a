"""The one interface for where workers run: local processes or Kubernetes pods."""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ClusterError  # noqa: F401 (re-exported)
from ..textenum import TextEnum


class WorkerState(TextEnum):
    """A worker's life as the cluster sees it."""

    STARTING = "starting"
    RUNNING = "running"
    DEAD = "dead"
    STOPPED = "stopped"

    @property
    def live(self) -> bool:
        return self in (WorkerState.STARTING, WorkerState.RUNNING)


@dataclass
class WorkerInfo:
    """One worker as the cluster sees it (a process or a pod)."""

    name: str
    ident: str  # pid or pod name
    state: WorkerState
    started_at: float
    node: str = "localhost"
    ended_at: float | None = None
    exit_code: int | None = None
    replaces: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data


@dataclass
class WorkerStatus(WorkerInfo):
    """A worker with what its heartbeat says (None where the cluster reads no heartbeat):
    the live worker table, the fault demo's choice of victim, the CPU budget."""

    activity: str | None = None  # the heartbeat's state: ready | idle | busy | reconnecting
    chunks_done: int | None = None
    current_chunk: int | None = None
    chunk_started_at: float | None = None
    last_heartbeat: float | None = None
    peak_rss_mib: float | None = None
    cpu_s: float | None = None
    compute_cpu_s: float | None = None
    chunks_held: int | None = None  # by the broker (consumer name = worker name), where known
    running: dict[str, Any] | None = None  # a point running > 1 min: chunk, param_id, seconds
    compute_crashes: int | None = None  # its compute process died under a point
    point_timeouts: int | None = None  # points it stopped at their time limit
    compute_recycled: int | None = None  # compute processes replaced (--recycle-after, ...)

    @classmethod
    def of(cls, info: WorkerInfo, beat: dict[str, Any]) -> WorkerStatus:
        """``info`` plus a heartbeat file's fields (:class:`ttg_lib.worker.Heartbeat`)."""
        running = info.state == WorkerState.RUNNING
        known = {f.name for f in fields(cls)} - {f.name for f in fields(WorkerInfo)}
        extra = {k: v for k, v in beat.items() if k in known}
        extra["activity"] = beat.get("state", str(info.state)) if running else str(info.state)
        return cls(**{f.name: getattr(info, f.name) for f in fields(WorkerInfo)}, **extra)

    @property
    def busy_with(self) -> int | None:
        """The chunk this worker is computing, by its heartbeat."""
        if self.activity == "busy" and isinstance(self.current_chunk, int):
            return self.current_chunk
        return None


@dataclass
class ClusterEvent:
    t: float
    event: str  # started | killed | died | hung | replaced | stopped
    worker: str
    detail: str = ""


@dataclass
class EventBook:
    """Worker lifecycle events, appended from any thread, read by the run record and charts.

    Each event is kept as the dict readers get, so a snapshot (taken at every run step) is a
    list copy, not a conversion of the whole history."""

    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, event: str, worker: str, detail: str = "") -> ClusterEvent:
        item = ClusterEvent(time.time(), event, worker, detail)
        with self._lock:
            self.events.append(asdict(item))
        return item

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)


class Cluster(abc.ABC):
    """Starts, lists, kills and stops workers; touches nothing it did not create."""

    kind: str = ""

    def __init__(self) -> None:
        self.book = EventBook()
        self._exits: list[str] = []
        self._exits_lock = threading.Lock()

    def note_exit(self, name: str) -> None:
        """A worker ended without being asked (died, killed, hung): the run frees its tasks."""
        with self._exits_lock:
            self._exits.append(name)

    def take_exits(self) -> list[str]:
        """Workers seen to end unasked since the last call, so the run can hand their tasks
        to others at once instead of waiting for their leases to run out."""
        with self._exits_lock:
            exits, self._exits = self._exits, []
        return exits

    @abc.abstractmethod
    def ensure_brokers(self, timeout: float) -> str:
        """Make the run's broker reachable from this host and return its URL (local: the
        configured one, or a private one if nothing answers on loopback; Kubernetes: deploy
        it). ``timeout`` bounds waiting for a broker that is still starting."""

    def release_brokers(self) -> None:
        """Stop a broker started for this run alone; shared ones stay (default: nothing)."""

    @abc.abstractmethod
    def start_workers(self, count: int) -> list[WorkerInfo]: ...

    @abc.abstractmethod
    def workers(self) -> list[WorkerInfo]: ...

    def live_workers(self) -> list[WorkerInfo]:
        """Workers that are starting or running (not dead, not stopped)."""
        return [w for w in self.workers() if w.state.live]

    @abc.abstractmethod
    def wait_ready(self, count: int, timeout: float) -> None:
        """Block until ``count`` workers can take tasks, or raise ClusterError naming laggards."""

    @abc.abstractmethod
    def kill_worker(self, name: str | None = None) -> WorkerInfo:
        """Fault injection: kill one worker without warning (SIGKILL / pod delete, grace 0)."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker this cluster started, gracefully first."""

    def request_stop(self) -> None:
        """Ask every worker to stop and return at once, so the run's last writes overlap
        their exit; :meth:`stop` still waits for them (default: nothing asked early)."""

    def worker_status(self) -> list[WorkerStatus]:
        """Workers with their live state (heartbeat) for monitors and the demo's table;
        a cluster that reads no heartbeat gives the cluster's view alone."""
        return [WorkerStatus.of(w, {}) for w in self.workers()]

    def events(self) -> list[dict[str, Any]]:
        return self.book.snapshot()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
