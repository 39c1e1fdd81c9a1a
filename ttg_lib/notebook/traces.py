"""Which lines the queue chart draws, and from which sample keys: the run's story (chunks
left to compute, recomputations queued, points on disk: the ledger's books) above the
broker's own figures, named as such (``broker: ttg:tasks messages``). With ``--verify full``
the broker's tasks count stays level while chunks are computed (each one queues its
recomputation), so the story is drawn from the ledger, not guessed from the queues."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends import DEFAULT_BACKEND, REGISTRY, backend_names
from ..recorded import Sample

QUEUE_NAMES = {name: REGISTRY[name].queues.by_role() for name in backend_names()}

STORY = (("chunks_left", "chunks left to compute", False),  # (sample key, name, right axis)
         ("verify_queued", "recomputations queued", False),
         ("rows", "points on disk", True))


@dataclass(frozen=True)
class TraceSpec:
    """One line of the queue chart: its sample key, name, panel (1: the run's story, 2: the
    broker's figures) and whether it is drawn against the panel's right-hand axis."""

    key: str
    name: str
    row: int
    secondary: bool
    dotted: bool = False


def trace_specs(backend: str) -> list[TraceSpec]:
    names = QUEUE_NAMES.get(backend, QUEUE_NAMES[DEFAULT_BACKEND])
    return ([TraceSpec(key, name, 1, right, dotted=key == "rows") for key, name, right in STORY]
            + [TraceSpec(role, f"broker: {names[role]} messages", 2, False)
               for role in ("tasks", "results", "retry", "dlq")]
            + [TraceSpec("consumers", "broker: consumers", 2, True, dotted=True),
               TraceSpec("live_workers", "live workers", 2, True, dotted=True)])


def with_chunks_left(samples: list[Sample], chunks_total: int | None) -> list[Sample]:
    """Samples of a record from before ``chunks_left`` was sampled: derived from the chunks
    finished and the run's total, so an old record still draws its story."""
    if not chunks_total or all(s.chunks_left is not None for s in samples):
        return samples
    return [s if s.chunks_left is not None else
            s.replace(chunks_left=max(0, chunks_total - s.completed - s.failed))
            for s in samples]
