"""The batches a worker holds: handed to its compute process, not yet stored."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..backends import Delivery
from ..messages import Task
from ..supervise import Batch


@dataclass
class InFlight:
    """A batch handed to the compute process, not yet collected and stored."""

    todo: list[tuple[Delivery, Task]]  # the tasks admitted
    held: list[Delivery]  # every delivery fetched with them: their leases are ours
    batch: Batch | None  # None: nothing was admitted
    bounced: int = 0  # of ``held``: our own recomputations, handed back


def held_by(flights: deque[InFlight]) -> list[Delivery]:
    """Every delivery the batches in hand hold: their leases are kept while one is stored."""
    return [d for flight in flights for d in flight.held]


def by_delivery(todo: list[tuple[Delivery, Task]]) -> list[tuple[Delivery, list[Task]]]:
    """The chunks' tasks of each message (a bundle has several), in order."""
    out: dict[int, tuple[Delivery, list[Task]]] = {}
    for delivery, task in todo:
        out.setdefault(id(delivery), (delivery, []))[1].append(task)
    return list(out.values())
