"""What a worker's supervisor keeps about its compute processes between batches: the
durations that set ``--point-timeout auto``, the point running now, the counters the
heartbeat reports (:mod:`ttg_lib.supervise` does the supervising)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = -1.0  # Task.point_timeout_s: learn the limit from the run
AUTO_FACTOR, AUTO_FLOOR_S, AUTO_MIN_POINTS = 10.0, 10.0, 10
SLOW_POINT_S = 60.0  # a point running longer is shown (heartbeat: ttg monitor, the panel)


@dataclass
class Running:
    """The point a worker's compute process is on, when it has run for a while."""

    chunk_id: int
    param_id: int | None  # None: the chunk's points are not tracked (fast ones)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"chunk": self.chunk_id, "param_id": self.param_id,
                "seconds": round(self.seconds, 1)}


class PointClock:
    """Durations of the points finished so far, for ``--point-timeout auto``."""

    KEEP = 4096

    def __init__(self) -> None:
        self._sorted: list[float] = []
        self._fast = 0.0  # the largest mean of an untracked chunk's points
        self.seen = 0

    def add(self, seconds: list[float]) -> None:
        self._sorted += seconds[-self.KEEP:]  # one sort merges a chunk's run into the kept
        self._sorted.sort()  # ones (an insort a point moved up to 4,096 floats each time)
        self.seen += len(seconds)
        if len(self._sorted) > self.KEEP:  # drop evenly: the shape stays
            self._sorted = self._sorted[::2]

    def add_mean(self, seconds: float, count: int) -> None:
        """An untracked chunk (fast points, no durations of their own): its ``count`` points
        count, at their mean, so a run of small chunks learns too. O(1): the hot path of a
        million-point run (and under 20 us a point, the floor rules anyway)."""
        self.seen += count
        self._fast = max(self._fast, seconds)

    def limit(self) -> float:
        """10 x p99, never under 10 s; 0 (none yet) until enough points finished."""
        if self.seen < AUTO_MIN_POINTS:
            return 0.0
        p99 = self._sorted[min(len(self._sorted) - 1, int(0.99 * len(self._sorted)))] \
            if self._sorted else 0.0
        return max(AUTO_FLOOR_S, AUTO_FACTOR * max(p99, self._fast))


@dataclass
class Counters:
    crashes: int = 0
    timeouts: int = 0
    recycled: int = 0
    started: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"compute_crashes": self.crashes, "point_timeouts": self.timeouts,
                "compute_recycled": self.recycled, "compute_started": self.started}
