"""An ETA that knows the axes: chunk durations fitted against the chunks' parameters.

Point durations often grow with an axis (depth, samples), and a sweep publishes its chunks
in index order, so the first quarter of a grid can be the cheap quarter: a rate-based ETA
(elapsed x remaining / done) is then far too short. Here each finished chunk's duration (the
worker's own ``finished_at - started_at``) is fitted by least squares against its features:
the number of points and the sum of each numeric axis over them, i.e. a duration per point
that is linear in the axes. The remaining work is the model summed over a fixed sample of
chunks not yet done, scaled to all of them; divided by the rate at which the workers get
through work (seconds of compute per second of wall time), it is the ETA. The fit's
uncertainty (coefficients and residual noise) gives a one-sigma spread.

A resumed run knows the chunks its record holds (:meth:`EtaModel.restore`) and those the dead
orchestrator left in the broker (observed with ``before=True``): no work is left in them, and
none of their time is this run's throughput (the rate and the naive ETA count only chunks
computed since the run started).

Memory and time stay flat: the fit keeps only the normal equations (p x p), and features are
computed for at most :data:`SAMPLE_CHUNKS` chunks (a point budget caps their cost).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .space import Space

SAMPLE_CHUNKS = 256  # chunks whose features the model knows: the fit and the forecast
POINT_BUDGET = 250_000  # at most this many points evaluated to build those features
NUMERIC = ("int", "float", "bool")


@dataclass(frozen=True)
class Eta:
    """The time left, as the model and as the naive rate see it (seconds)."""

    remaining_s: float
    spread_s: float  # one standard deviation of remaining_s
    naive_s: float  # elapsed x chunks left / chunks done
    model: str  # "axes": fitted on the axes; "rate": too few chunks yet, work per point

    def label(self) -> str:
        return eta_label(self.remaining_s, self.spread_s)

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def eta_label(remaining_s: float, spread_s: float = 0.0) -> str:
    """``ETA 1m05s ± 12s``: the progress line's words, and `ttg monitor`'s."""
    spread = f" ± {_clock(spread_s)}" if spread_s >= 1 else ""
    return f"ETA {_clock(remaining_s)}{spread}"


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class EtaModel:
    """Fed every finished chunk (:meth:`observe`), asked for an :class:`Eta` at any time."""

    def __init__(self, space: Space | None, chunk_size: int, total_points: int):
        self.space, self.chunk_size, self.total = space, chunk_size, total_points
        self.chunks_total = max(1, math.ceil(total_points / max(1, chunk_size)))
        self.done = bytearray(self.chunks_total)  # 1 byte a chunk: 1 MB at 10^6 chunks
        self.chunks_done = 0  # every chunk with no work left: this run's and restored ones
        self.chunks_timed = 0  # computed during this run: its throughput
        self.work_s = 0.0  # worker seconds spent on finished chunks
        self.points_done = 0
        self.points_failed = 0  # no work left in them, no time to fit
        self.points_before = 0  # done before this run (restored): no work left, no rate
        self.first_start: float | None = None
        self.last_finish: float | None = None
        wanted = max(16, min(SAMPLE_CHUNKS, POINT_BUDGET // max(1, chunk_size)))
        step = self.chunks_total / min(self.chunks_total, wanted)
        self.sample = sorted({int(j * step) for j in range(min(self.chunks_total, wanted))})
        self._slot = {chunk: i for i, chunk in enumerate(self.sample)}
        self._features: np.ndarray | None = None  # one row per sample chunk, scaled
        self._xtx: np.ndarray | None = None
        self._xty: np.ndarray | None = None
        self._yty = 0.0
        self._fitted = 0

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes the model fits against (the numeric ones)."""
        if self.space is None:
            return ()
        return tuple(a.name for a in self.space.axes if a.kind in NUMERIC)

    def restore(self, chunk_ids: Iterable[int]) -> None:
        """Chunks a resumed run finds done in its record: no work left, no time known."""
        for chunk_id in chunk_ids:
            if 0 <= chunk_id < self.chunks_total and not self.done[chunk_id]:
                self.done[chunk_id] = 1
                self.chunks_done += 1
                self.points_before += self._points(chunk_id)

    def observe(self, chunk_id: int, started_at: float, finished_at: float,
                failed: bool = False, before: bool = False) -> None:
        """One finished chunk (its first result; recomputations are not new work done). A
        failed chunk is no work left, but its time (retries, an error) fits nothing.
        ``before``: computed before this run started (a resume reads it from the broker):
        its duration fits the model, but it is not this run's throughput."""
        if not 0 <= chunk_id < self.chunks_total or self.done[chunk_id]:
            return
        self.done[chunk_id] = 1
        self.chunks_done += 1
        if failed:
            self.points_failed += self._points(chunk_id)
            self.chunks_timed += not before
            return
        seconds = max(0.0, finished_at - started_at)
        self._fit(chunk_id, seconds)
        if before:
            self.points_before += self._points(chunk_id)
            return
        self.chunks_timed += 1
        self.work_s += seconds
        self.first_start = started_at if self.first_start is None else min(self.first_start,
                                                                           started_at)
        self.last_finish = finished_at if self.last_finish is None else max(self.last_finish,
                                                                            finished_at)
        self.points_done += self._points(chunk_id)

    def _fit(self, chunk_id: int, seconds: float) -> None:
        slot = self._slot.get(chunk_id)
        if slot is not None:
            import numpy as np

            x = self.features()[slot]
            if self._xtx is None:
                self._xtx, self._xty = np.zeros((len(x), len(x))), np.zeros(len(x))
            assert self._xty is not None
            self._xtx += np.outer(x, x)
            self._xty += x * seconds
            self._yty += seconds * seconds
            self._fitted += 1

    def estimate(self, elapsed_s: float) -> Eta | None:
        """The ETA now; None before the first chunk or after the last."""
        left = self.chunks_total - self.chunks_done
        if not self.chunks_timed or left <= 0 or self.work_s <= 0:
            return None
        naive = elapsed_s * left / self.chunks_timed  # this run's chunks: its own pace
        rate = self._rate(elapsed_s)  # worker seconds per wall second (~ busy workers)
        features = self.features()
        p = features.shape[1]
        pending = [i for i, chunk in enumerate(self.sample) if not self.done[chunk]]
        rows = features[pending] if pending else features
        scale = left / len(rows)
        if self._fitted < p + 2 or self._xtx is None or self._xty is None:
            return Eta(self._per_point_work() / rate, 0.0, naive, "rate")
        import numpy as np

        inverse = np.linalg.pinv(self._xtx)
        beta = inverse @ self._xty
        residual = max(0.0, self._yty - 2 * beta @ self._xty + beta @ self._xtx @ beta)
        sigma2 = residual / max(1, self._fitted - p)
        total = rows.sum(axis=0) * scale
        work = float(total @ beta)
        if work <= 0:  # a wild fit early on: fall back to work per point
            work = self._per_point_work()
        variance = sigma2 * float(total @ inverse @ total) + sigma2 * left
        return Eta(work / rate, math.sqrt(max(0.0, variance)) / rate, naive, "axes")

    def features(self) -> np.ndarray:
        """Each sample chunk's features, scaled to about 1: [points, sum of each axis]."""
        if self._features is None:
            import numpy as np

            rows = []
            for chunk in self.sample:
                start = chunk * self.chunk_size
                count = min(self.chunk_size, self.total - start)
                row = [float(count)]
                if self.axes:
                    assert self.space is not None
                    cols = self.space.columns(start, count, self.axes)
                    row += [float(np.sum(cols[name], dtype=np.float64)) for name in self.axes]
                rows.append(row)
            table = np.asarray(rows, dtype=np.float64)
            means = table[:, 1:] / table[:, :1]  # an axis whose chunk mean never changes
            varies = np.ptp(means, axis=0) > 1e-9 * (np.abs(means).max(axis=0) + 1e-300)
            table = table[:, [True, *varies]]  # only adds a column collinear with the count
            norm = np.sqrt(np.mean(table**2, axis=0))
            self._features = table / np.where(norm > 0, norm, 1.0)
        return self._features

    def _rate(self, elapsed_s: float) -> float:
        span = (self.last_finish or 0.0) - (self.first_start or 0.0)
        span = span if span > 0 else elapsed_s
        return max(1e-9, self.work_s / span) if span > 0 else 1.0

    def _per_point_work(self) -> float:
        """Remaining work as a plain rate: seconds per point so far, times points left."""
        left = self.total - self.points_done - self.points_failed - self.points_before
        return self.work_s / max(1, self.points_done) * left

    def _points(self, chunk_id: int) -> int:
        return min(self.chunk_size, self.total - chunk_id * self.chunk_size)
