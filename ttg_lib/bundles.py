"""Task bundles: consecutive chunks' tasks in one message (:meth:`Task.bundle`), when chunks
are many and cheap (:attr:`RunConfig.task_bundle`). Every message costs the broker, the
orchestrator and a worker far more than a 10-point chunk's work."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .messages import Task

RECHECK_TARGET_S = 0.02  # a recomputation message's measured work (a worker batch's target)
RECHECK_MAX = 64  # chunks per recomputation message at most


def bundled(tasks: Iterable[Task], size: int) -> Iterator[Task]:
    """``tasks`` in bundles of up to ``size`` chunks; tasks alike but for their chunk share
    one (recomputations: those of the same worker's results), in the order they came."""
    if size <= 1:
        yield from tasks
        return
    groups: dict[tuple[Any, ...], list[Task]] = {}  # by what most often differs; a group's
    # tasks that differ in anything else are bundled apart
    for task in tasks:
        if task.more:
            yield task
            continue
        key = (id(task.space), task.verify_of, task.bounces, task.attempt, task.compute)
        group = groups.setdefault(key, [])
        if group and not group[0].bundles_with(task):
            yield task  # alike in the key, not in the rest: rare, and fine alone
            continue
        group.append(task)
        if len(group) == size:
            del groups[key]
            yield Task.bundle(group)
    yield from map(Task.bundle, groups.values())


def fresh_bundles(task: Callable[[int], Task], cfg: Any) -> Iterator[Task]:
    """Every chunk of a fresh run in bundles of ``cfg.task_bundle``, built whole: a Task per
    chunk first would cost more than publishing them (10,000 chunks: 0.3 s against 0.02 s)."""
    size, chunk, total = cfg.task_bundle, cfg.chunk_size, cfg.total_params
    for first in range(0, cfg.chunks_total, size):
        yield dataclasses.replace(task(first), more=tuple(
            (c, c * chunk, min(chunk, total - c * chunk), None)
            for c in range(first + 1, min(first + size, cfg.chunks_total))))


def recheck_size(floor: int, seconds: float, chunks: int) -> int:
    """Chunks per recomputation message. Unlike a fresh run's tasks, their chunks were
    computed once already, so their cost is known: cheap ones travel up to RECHECK_MAX a
    message (about RECHECK_TARGET_S of work), slow ones as the run's tasks do (``floor``).
    10,000 chunks of 10 cheap points: about 200 messages to recompute instead of 640, and
    a quarter of the hand-backs (a third of them reach the worker that computed them)."""
    if chunks <= 0:
        return floor
    fit = int(RECHECK_TARGET_S * chunks / seconds) if seconds > 0 else RECHECK_MAX
    return max(floor, min(RECHECK_MAX, fit))
