"""Which lines the queue chart draws, and from which sample keys: the run's story (chunks
left to compute, recomputations queued, points on disk: the ledger's books) above the
broker's own figures, named as such (``broker: ttg:tasks messages``). With ``--verify full``
the broker's tasks count stays level while chunks are computed (each one queues its
recomputation), so the story is drawn from the ledger, not guessed from the queues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends import DEFAULT_BACKEND, REGISTRY, backend_names

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


def with_chunks_left(samples: list[dict[str, Any]], chunks_total: int | None
                     ) -> list[dict[str, Any]]:
    """Samples of a record from before ``chunks_left`` was sampled: derived from the chunks
    finished and the run's total, so an old record still draws its story."""
    if not chunks_total or all("chunks_left" in s for s in samples):
        return samples
    return [s if "chunks_left" in s or "completed" not in s else
            {**s, "chunks_left": max(0, chunks_total - s["completed"] - s.get("failed", 0))}
            for s in samples]


READY_ONLY = " ready (total unknown)"


def series(samples: list[dict[str, Any]], key: str) -> tuple[list[float], list[Any]]:
    """One line of the chart. A queue whose total the broker could not give in any sample
    (RabbitMQ without its management API) is drawn by its ready count, which
    :func:`series_label` says; never by a total guessed from it."""
    if _ready_only(samples, key):
        key = f"{key}_ready"
    rows = [s for s in samples if key in s]
    return [s["t"] for s in rows], [s[key] for s in rows]


def series_label(samples: list[dict[str, Any]], key: str, name: str) -> str:
    return name + READY_ONLY if _ready_only(samples, key) else name


def _ready_only(samples: list[dict[str, Any]], key: str) -> bool:
    return (any(s.get(f"{key}_ready") is not None for s in samples)
            and all(s.get(key) is None for s in samples))
