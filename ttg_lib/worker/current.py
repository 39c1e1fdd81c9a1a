"""Which run a worker serves (issue 20, several machines).

A worker joins whichever run is current on the broker (the run id its orchestrator stored
there). A worker pinned to a run (``--run-id``) that receives a task of the current run leaves
it for that run's workers, untouched, and stops: its own run is over (a new run empties the
queues first). A task of a run that is not current (a stray) is dead-lettered.
"""

from __future__ import annotations

from ..backends import BrokerUnavailable, Consumer, StoresBlobs
from ..backends.blobs import CURRENT_RUN, point_limit_key


class CurrentRuns:
    """The runs this worker has seen named current on the broker, and the functions those
    runs shipped by value there."""

    def __init__(self, backend: Consumer):
        self.backend = backend
        self.seen: set[str] = set()

    def __contains__(self, run_id: str) -> bool:
        return run_id in self.seen

    def is_current(self, run_id: str) -> bool | None:
        """Is ``run_id`` the broker's current run? None: the broker does not say."""
        if run_id in self.seen:
            return True
        raw = (self.backend.get_blob(CURRENT_RUN) if isinstance(self.backend, StoresBlobs)
               else None)
        if raw is not None and raw.decode() != run_id:
            return False
        self.seen.add(run_id)
        return True if raw is not None else None

    def fetch_function(self, key: str) -> bytes | None:
        """A blob of the run from the broker: a function shipped by value, the auto limit."""
        return self.backend.get_blob(key) if isinstance(self.backend, StoresBlobs) else None

    def point_limit(self, run_id: str) -> float:
        """The ``--point-timeout auto`` limit another worker of ``run_id`` learned (0: none yet,
        or the broker is out of reach: asked again later)."""
        try:
            raw = self.fetch_function(point_limit_key(run_id))
            return float(raw) if raw else 0.0
        except (BrokerUnavailable, ValueError):
            return 0.0
