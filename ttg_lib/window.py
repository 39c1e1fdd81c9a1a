"""Credit-based flow control for a run's tasks.

Publishing every chunk at the start lets the workers run ahead of the orchestrator: at
10^9 points the results the orchestrator had not read yet piled up in Redis (2 GB), as the
tasks themselves would in any broker. A :class:`TaskWindow` publishes at most ``limit``
chunks beyond those whose results the run has read; each chunk read gives its credit back.
The broker then holds the work in flight, not the run, whatever the run's size. A run
smaller than its window publishes everything at once, exactly as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

from .messages import Task

WINDOW_POINTS = 4_000_000  # results in flight: ~40 MB in the broker at 8-10 bytes a value
WINDOW_PER_WORKER = 4  # chunks: never fewer in flight per worker, whatever the chunk size
REFILL_AT = 4  # publish again once a 1/REFILL_AT of the window is free: one round trip for
# many tasks, and the workers still hold 3/4 of a window when it goes out


def window_chunks(chunk_size: int, workers: int) -> int:
    """How many chunks a run keeps published beyond the ones it has read."""
    return max(WINDOW_POINTS // max(1, chunk_size), WINDOW_PER_WORKER * max(1, workers))


class TaskWindow:
    """The run's tasks, handed out as the results come back (``finished``: the chunks read
    so far, failed ones included; the window counts from its value at the start).

    Recomputations (a reuse check, the checks a broker lost with its data) go out without
    taking credit: their answers finish no chunk, so counting them would shrink the window
    for good, to nothing once they outnumber it. They are few, or asked for one per chunk
    read, so the chunks' credit bounds them too."""

    def __init__(self, tasks: Iterable[Task], limit: int, finished: Callable[[], int]):
        self.limit = max(1, limit)
        self._finished = finished
        self._tasks: Iterator[Task] = iter(())
        self.restart(tasks)

    def restart(self, tasks: Iterable[Task]) -> None:
        """Start over with ``tasks`` (a broker that lost its data: every unfinished chunk)."""
        self._tasks = iter(tasks)
        self._base = self._finished()
        self.published = 0  # chunks published since the (re)start
        self.exhausted = False

    @property
    def in_flight(self) -> int:
        """Chunks published and not read back (at most; a chunk read twice counts once)."""
        return max(0, self.published - (self._finished() - self._base))

    def due(self) -> list[Task]:
        """The tasks to publish now: none until a quarter of the window is free, then enough
        to fill it. Call :meth:`sent` once they are out, or :meth:`put_back` if they are not."""
        room = self.limit - self.in_flight
        if self.exhausted or (self.published and room < self.limit // REFILL_AT):
            return []
        out: list[Task] = []
        while room > 0:
            task = next(self._tasks, None)
            if task is None:
                self.exhausted = True
                break
            out.append(task)
            room -= _credit(task)
        return out

    def sent(self, tasks: list[Task]) -> None:
        self.published += sum(_credit(task) for task in tasks)

    def put_back(self, tasks: list[Task]) -> None:
        """Tasks :meth:`due` gave that the broker did not take (it went down): first next time."""
        if tasks:
            self._tasks = itertools.chain(tasks, self._tasks)
            self.exhausted = False


def _credit(task: Task) -> int:
    """The chunks a task holds of the window: a recomputation none."""
    return 0 if task.verify_of else task.chunks
