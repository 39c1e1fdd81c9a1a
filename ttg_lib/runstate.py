"""Where a run is (:class:`RunState`), what a front end is shown at each step
(:class:`Progress`), and the run's moments (:class:`Times`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .eta import Eta
from .textenum import TextEnum


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
    verify_queued: int = 0  # recomputations asked for and not answered yet
    rows_on_disk: int | None = None  # points in results.parquet (None: results not kept)

    @property
    def fraction(self) -> float:
        return (self.chunks_completed + self.chunks_failed) / max(1, self.chunks_total)


@dataclass
class Times:
    """The run's moments (monotonic seconds) and the process CPU at two of them."""

    t0: float | None = None  # the first task published
    last: float | None = None  # the last new result read
    complete: float | None = None  # every result and recomputation in, on disk
    cpu0: float = 0.0
    cpu_last: float = 0.0
    stalled_since: float | None = None

    def since_t0(self, moment: float | None) -> float | None:
        return moment - self.t0 if moment is not None and self.t0 is not None else None
