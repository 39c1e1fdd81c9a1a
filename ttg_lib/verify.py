"""Verification: every point present exactly once, and values recomputed by other workers.

Two layers, as the run's summary reports them:

* **structure**, always: every chunk's result covers exactly its range (start, count, as many
  values), its checksum is intact, nothing comes from another run or outside the run's
  chunks; a chunk is counted once however often it is delivered. This is what "zero data
  loss" means, and it costs nothing.
* **values**, by mode (:class:`VerifyMode`): ``full`` recomputes every chunk, ``sample`` about
  1 % of the chunks and at least one of each worker's, ``none`` none. A recomputation is a
  task like any other (``Task.verify_of`` names the worker that must not do it), so it runs on
  the workers, spread over all of them, never serially in the orchestrator. The two results
  must agree: exactly (the packed values' CRC32), or within ``rtol`` for floats.

Memory stays flat: a byte of state and a 4-byte fingerprint per chunk; values are kept only
for chunks awaiting a tolerant (``rtol``) comparison.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .messages import Result, ValueColumns, pack_chunk, pack_values
from .packing import columns_crc
from .textenum import TextEnum

MAX_EXAMPLES = 20
MAX_REJECTS = 3  # deliveries of one chunk that fail the structural check before it fails
OPEN, DONE, FAILED = 0, 1, 2  # a chunk's state
NOT_ASKED, AWAITED, AGREED, DISAGREED = 0, 1, 2, 3  # its verification's


class VerifyMode(TextEnum):
    FULL = "full"
    SAMPLE = "sample"
    NONE = "none"


class VerifyPlan:
    """Which chunks are recomputed: all (full), about one in SAMPLE_EVERY picked by a hash of
    the chunk id plus each worker's first chunk (sample), or none. Deterministic: the same
    run picks the same chunks."""

    SAMPLE_EVERY = 100

    def __init__(self, mode: VerifyMode, run_id: str):
        self.mode = mode
        self.run_id = run_id
        self._workers_sampled: set[str] = set()

    def wants(self, chunk_id: int, worker: str) -> bool:
        if self.mode is VerifyMode.NONE:
            return False
        if self.mode is VerifyMode.FULL:
            return True
        first_of_worker = worker not in self._workers_sampled
        picked = zlib.crc32(f"{self.run_id}/{chunk_id}".encode()) % self.SAMPLE_EVERY == 0
        if first_of_worker or picked:
            self._workers_sampled.add(worker)
            return True
        return False


@dataclass
class Verdict:
    total_params: int
    chunks_total: int
    chunks_completed: int
    chunks_failed: int
    params_verified: int
    lost_params: int
    wrong_results: int
    duplicate_deliveries: int
    foreign_results: int
    values_recomputed: int = 0
    verifications_missing: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.lost_params == 0 and self.wrong_results == 0
                and self.params_verified == self.total_params and self.foreign_results == 0
                and self.verifications_missing == 0)


def fingerprint(values: Sequence[Any]) -> int:
    """CRC32 of the values as the wire packs them, dict keys included (in sorted order, so
    the same mapping in another order agrees): two results agree exactly when these do."""
    if isinstance(values, ValueColumns):
        if values.crc is not None:  # decoded from the wire: the same CRC over its bytes
            return values.crc
        return columns_crc((key, pack_values(values.columns[key])[1])
                           for key in sorted(values.columns))
    return zlib.crc32(pack_chunk(values)[1])


class StoredValues(Protocol):
    """Chunks restored from disk whose recomputation is compared with the rows stored there
    (:class:`ttg_lib.restored.DiskComparison`)."""

    def __contains__(self, chunk_id: int) -> bool: ...

    def agrees(self, chunk_id: int, result: Result) -> bool: ...


class ResultCollector:
    """Deduplicates results by chunk id, checks their structure on arrival, and matches each
    recomputation with the result it recomputes."""

    def __init__(self, *, run_id: str, total_params: int, chunk_size: int, rtol: float = 0.0,
                 compute_sha256: str = ""):
        self.run_id = run_id
        self.compute_sha256 = compute_sha256  # results name the function shipped by value
        self.total_params = total_params
        self.chunk_size = chunk_size
        self.chunks_total = math.ceil(total_params / chunk_size)
        self.rtol = rtol
        self.chunk_state = bytearray(self.chunks_total)
        self.check_state = bytearray(self.chunks_total)
        self._prints = array("I", bytes(4 * self.chunks_total))
        self._kept: dict[int, Sequence[Any]] = {}  # values awaiting a tolerant comparison
        self._asked: dict[int, int] = {}  # points a partial recomputation was asked for
        self._delivery_key: dict[int, tuple[str, float]] = {}
        self._on_disk: StoredValues | None = None
        self.completed = self.failed = self.params_done = 0
        self.duplicates = self.wrong = self.foreign = 0
        self.recomputed = 0  # values recomputed by another worker and compared
        self.awaited = 0  # verifications asked for and not yet answered
        self.problems: list[str] = []
        self._rejects: dict[int, int] = {}  # deliveries refused by the structural check
        self._republish: list[int] = []  # chunks to publish again (a delivery was refused)
        self.gave_up: dict[int, str] = {}  # chunks failed after MAX_REJECTS refusals: why
        self.disagreeing_duplicates = 0

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    @property
    def all_done(self) -> bool:
        """Every chunk finished and every verification asked for answered."""
        return self.finished >= self.chunks_total and self.awaited == 0

    # -- results ------------------------------------------------------------------------
    def add(self, result: Result | bytes) -> bool:
        """Record one result message; True when it finished a chunk for the first time (its
        rows are to be written). A result that fails the structural check (checksum, range,
        size) finishes nothing: its chunk stays open and is published again
        (:meth:`take_republish`); after MAX_REJECTS such deliveries the chunk fails."""
        cid = self._chunk_of(result)
        if cid is None:
            return False
        assert isinstance(result, Result)
        key = (result.worker, result.started_at)
        if self.chunk_state[cid]:
            if self._delivery_key.get(cid) != key:  # the same message read twice is no duplicate
                self.duplicates += 1
                self._compare_duplicate(cid, result)
            return False
        if result.error is None and not self._structure_ok(result):
            self._rejects[cid] = self._rejects.get(cid, 0) + 1
            if self._rejects[cid] < MAX_REJECTS:
                self._republish.append(cid)
                return False
            self.gave_up[cid] = (f"failed the structural check {MAX_REJECTS} times "
                                 f"(checksum, range or size)")
            self.wrong += self._size(cid)
        self._delivery_key[cid] = key
        if result.error is not None or cid in self.gave_up:
            self.chunk_state[cid] = FAILED
            self.failed += 1
            self._note(f"chunk {cid} dead-lettered: {result.error or self.gave_up[cid]}")
            return True
        self.chunk_state[cid] = DONE
        self.completed += 1
        self.params_done += result.count
        self._prints[cid] = fingerprint(result.values)
        if self.rtol:
            self._kept[cid] = result.values
        return True

    def take_republish(self) -> list[int]:
        """Chunks whose delivery the structural check refused and that are still open."""
        chunks = [c for c in dict.fromkeys(self._republish) if not self.chunk_state[c]]
        self._republish = []
        return chunks

    def _compare_duplicate(self, cid: int, result: Result) -> None:
        """A chunk computed twice is a free check, under every verify mode: the second
        delivery must agree with the result kept."""
        if (self.chunk_state[cid] != DONE or result.error is not None
                or self._delivery_key.get(cid, ("", 0.0))[0] == "record"
                or not self._structure_ok(result, quiet=True)):
            return
        if fingerprint(result.values) == self._prints[cid]:
            return
        original = self._kept.get(cid)
        if self.rtol and original is not None and len(original) == len(result.values) and all(
                _close(a, b, self.rtol) for a, b in zip(original, result.values, strict=True)):
            return
        self.disagreeing_duplicates += 1
        self.wrong += result.count  # which of the two is right is unknown: not verified
        self._note(f"chunk {cid}: a second delivery (by {result.worker}) differs from the "
                   f"result kept")

    def restore(self, done: set[int], failed: set[int]) -> None:
        """Chunks a resumed run finds on disk: counted as they were, structure checked when
        they were written (:meth:`recheck` has some of them recomputed)."""
        for cid in done | failed:
            if self.chunk_state[cid]:
                continue
            self.chunk_state[cid] = FAILED if cid in failed else DONE
            self._prints[cid] = 0
            if cid in failed:
                self.failed += 1
            else:
                self.completed += 1
                self.params_done += self._size(cid)
            self._delivery_key[cid] = ("record", 0.0)

    def recheck(self, stored: StoredValues, workers: Mapping[int, str]) -> None:
        """Restored chunks to recompute (``workers``: who computed each): their
        recomputations are compared with the rows on disk."""
        self._on_disk = stored
        for cid, worker in workers.items():
            self._delivery_key[cid] = (worker, 0.0)
            self.expect_verification(cid)

    def awaits(self, chunk_id: int) -> bool:
        """A recomputation of this chunk was asked for and not answered yet."""
        return self.check_state[chunk_id] == AWAITED

    def worker_of(self, chunk_id: int) -> str:
        """The worker whose result counts for this chunk ("" before there is one)."""
        return self._delivery_key.get(chunk_id, ("", 0.0))[0]

    def expect_verification(self, chunk_id: int, only: Sequence[int] | None = None) -> None:
        """``only``: the points recomputed, when not all of the chunk's (reused or failed
        points are not): what ``values_recomputed`` counts."""
        if self.check_state[chunk_id] == NOT_ASKED:
            self.check_state[chunk_id] = AWAITED
            self.awaited += 1
            if only is not None:
                self._asked[chunk_id] = len(only)

    def add_verification(self, result: Result | bytes) -> bool:
        """A recomputation's result: compared with the chunk's; True when it was awaited."""
        cid = self._chunk_of(result)
        if cid is None or self.check_state[cid] != AWAITED:
            return False
        assert isinstance(result, Result)
        self.awaited -= 1
        if result.error is not None:
            self.check_state[cid] = DISAGREED
            self.wrong += result.count
            self._note(f"chunk {cid}: recomputation by {result.worker} failed: {result.error}")
            return True
        agreed = self._agrees(cid, result)
        self.check_state[cid] = AGREED if agreed else DISAGREED
        self.recomputed += self._asked.pop(cid, result.count)
        if not agreed:
            self.wrong += result.count
            self._note(f"chunk {cid}: values recomputed by {result.worker} differ from the "
                       f"result it verifies")
        self._kept.pop(cid, None)
        return True

    def _agrees(self, cid: int, result: Result) -> bool:
        if not self._structure_ok(result, quiet=True):
            return False
        if self._on_disk is not None and cid in self._on_disk:
            return self._on_disk.agrees(cid, result)
        if fingerprint(result.values) == self._prints[cid]:
            return True
        original = self._kept.get(cid)
        if not self.rtol or original is None or len(original) != len(result.values):
            return False
        return all(_close(a, b, self.rtol) for a, b in zip(original, result.values, strict=True))

    def _chunk_of(self, result: Result | bytes) -> int | None:
        if isinstance(result, (bytes, bytearray)):
            return self._problem(f"undecodable result message ({bytes(result)[:60]!r})")
        if result.run_id != self.run_id:
            return self._problem(f"result of another run {result.run_id!r}")
        if result.compute_sha256 != self.compute_sha256 and result.error is None:
            return self._problem(f"chunk {result.chunk_id} computed by another function "
                                 f"(sha256 {result.compute_sha256[:12] or 'none'})")
        if not 0 <= result.chunk_id < self.chunks_total:
            return self._problem(f"result for chunk {result.chunk_id} outside "
                                 f"0..{self.chunks_total - 1}")
        return result.chunk_id

    def _structure_ok(self, result: Result, quiet: bool = False) -> bool:
        start = result.chunk_id * self.chunk_size
        count = min(self.chunk_size, self.total_params - start)
        if (result.start, result.count, len(result.values)) != (start, count, count):
            if not quiet:
                self._note(f"chunk {result.chunk_id}: range/size mismatch (start "
                           f"{result.start}, count {result.count}, {len(result.values)} "
                           f"values; expected {start}, {count})")
            return False
        if result.corrupt:
            if not quiet:
                self._note(f"chunk {result.chunk_id}: checksum mismatch (corrupted in transit)")
            return False
        return True

    def _problem(self, text: str) -> None:
        self.foreign += 1
        self._note(text)
        return None

    def _note(self, text: str) -> None:
        if len(self.problems) < MAX_EXAMPLES:
            self.problems.append(text)

    def verdict(self) -> Verdict:
        present = self.params_done  # a dead-lettered chunk's params have no value: lost
        refused = self._refused_params()  # wrong, not lost
        lost = self.total_params - present - refused
        wrong = self.wrong + sum(self._size(c) for c in self._refused_open())
        problems = list(self.problems)
        if self.disagreeing_duplicates:
            problems.insert(0, f"{self.disagreeing_duplicates} chunk(s) delivered twice with "
                               f"different values (a non-deterministic function, or a bad "
                               f"node)")
        return Verdict(
            total_params=self.total_params, chunks_total=self.chunks_total,
            chunks_completed=self.completed, chunks_failed=self.failed,
            params_verified=present - self._disagreed_params(), lost_params=max(0, lost),
            wrong_results=wrong, duplicate_deliveries=self.duplicates,
            foreign_results=self.foreign, values_recomputed=self.recomputed,
            verifications_missing=self.awaited, problems=problems[:MAX_EXAMPLES])

    def _size(self, chunk_id: int) -> int:
        return min(self.chunk_size, self.total_params - chunk_id * self.chunk_size)

    def _disagreed_params(self) -> int:
        return sum(self._size(c) for c in range(self.chunks_total)
                   if self.check_state[c] == DISAGREED and self.chunk_state[c] == DONE)

    def _refused_open(self) -> list[int]:
        """Chunks whose every delivery so far was refused by the structural check."""
        return [c for c in self._rejects if not self.chunk_state[c]]

    def _refused_params(self) -> int:
        """Params of chunks refused by the structural check (still open, or given up)."""
        return sum(self._size(c) for c in (*self._refused_open(), *self.gave_up))


def _close(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(a, b, rel_tol=rtol) or (math.isnan(a) and math.isnan(b))
        except TypeError:
            return False
    return a == b
