"""The blob capability: a run's function, shipped by value, stored once on the broker.

A function pickled by value (a notebook cell's function, a closure) travels to the workers
with the run, not inside every task: the orchestrator puts its bytes under their sha256 once,
and each worker gets them once and checks them against that fingerprint
(:mod:`ttg_lib.byvalue`). Every broker stores a run's blobs in one TTG object that ``purge``
removes with the queues, so the broker holds the current run's function only.
"""

from __future__ import annotations

import abc

CURRENT_RUN = "current-run"  # the blob naming the run that holds the broker (its run id)


def point_limit_key(run_id: str) -> str:
    """The blob holding a run's learned ``--point-timeout auto`` limit (seconds, as text)."""
    return f"point-limit:{run_id}"


class StoresBlobs(abc.ABC):
    """Put and get a run's blobs by key (the payload's sha256): immutable, read by many."""

    @abc.abstractmethod
    def put_blob(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` durably (storing the same key again is harmless)."""

    @abc.abstractmethod
    def get_blob(self, key: str) -> bytes | None:
        """The bytes stored under ``key``; None when no run stored them (or purge took them)."""

    @abc.abstractmethod
    def drop_blobs(self, dry_run: bool = False) -> list[str]:
        """Remove every blob (purge's part); return what went."""
