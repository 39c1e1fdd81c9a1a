"""Verification: every param present exactly once, every value recomputed and equal.

Chunk bookkeeping happens on arrival; recomputing the values happens when the
orchestrator is idle (sleep-bound runs: during the run) or after the last
result (CPU-bound runs, where recomputing every param would take a core from
the workers). Memory stays flat: one byte per param, plus the results still
waiting to be recomputed, bounded by MAX_PENDING_PARAMS.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from .compute import ComputeFn
from .messages import Result

MAX_EXAMPLES = 20
MAX_PENDING_PARAMS = 2_000_000


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
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.lost_params == 0 and self.wrong_results == 0
                and self.params_verified == self.total_params and self.foreign_results == 0)


class ResultCollector:
    """Deduplicates results by chunk id and verifies each new one on arrival."""

    def __init__(self, *, run_id: str, total_params: int, chunk_size: int, fn: ComputeFn):
        self.run_id = run_id
        self.total_params = total_params
        self.chunk_size = chunk_size
        self.chunks_total = math.ceil(total_params / chunk_size)
        self.fn = fn
        self.seen = bytearray(total_params)
        self.chunk_state = bytearray(self.chunks_total)  # 0 open, 1 done, 2 failed
        self._delivery_key: dict[int, tuple[str, float]] = {}
        self.completed = 0
        self.params_done = 0
        self.failed = 0
        self.duplicates = 0
        self.wrong = 0
        self.foreign = 0
        self.problems: list[str] = []
        self._pending: deque[Result] = deque()
        self._pending_params = 0
        self.verify_s = 0.0

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    @property
    def all_done(self) -> bool:
        return self.finished >= self.chunks_total

    def add(self, result: Result | bytes) -> bool:
        """Record one result message; True when it finished a chunk for the first time."""
        if isinstance(result, (bytes, bytearray)):
            return self._problem("foreign", f"undecodable result message ({bytes(result)[:60]!r})")
        if result.run_id != self.run_id:
            return self._problem("foreign", f"result of another run {result.run_id!r}")
        cid = result.chunk_id
        if not 0 <= cid < self.chunks_total:
            return self._problem("foreign",
                                 f"result for chunk {cid} outside 0..{self.chunks_total - 1}")
        key = (result.worker, result.started_at)
        if self.chunk_state[cid]:
            if self._delivery_key.get(cid) != key:  # the same message read twice is no duplicate
                self.duplicates += 1
            return False
        self._delivery_key[cid] = key
        if result.error is not None:
            self.chunk_state[cid] = 2
            self.failed += 1
            self._note(f"chunk {cid} dead-lettered: {result.error}")
            return True
        self.chunk_state[cid] = 1
        self.completed += 1
        self.params_done += result.count
        self._pending.append(result)
        self._pending_params += len(result.values)
        if self._pending_params > MAX_PENDING_PARAMS:
            self.verify_pending()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def verify_pending(self, budget_s: float | None = None) -> int:
        """Recompute queued results, for at most ``budget_s`` seconds (None: all of them)."""
        started = time.perf_counter()
        deadline = None if budget_s is None else started + budget_s
        done = 0
        while self._pending and (deadline is None or time.perf_counter() < deadline):
            result = self._pending.popleft()
            self._pending_params -= len(result.values)
            self._check_values(result)
            done += 1
        self.verify_s += time.perf_counter() - started
        return done

    def _check_values(self, result: Result) -> None:
        start = result.chunk_id * self.chunk_size
        count = min(self.chunk_size, self.total_params - start)
        if (result.start, result.count, len(result.values)) != (start, count, count):
            self.wrong += count
            self._note(f"chunk {result.chunk_id}: range/size mismatch (start {result.start}, "
                       f"count {result.count}, {len(result.values)} values; expected {start}, "
                       f"{count})")
            return
        if result.corrupt:
            self._note(f"chunk {result.chunk_id}: checksum mismatch (corrupted in transit)")
        for offset, value in enumerate(result.values):
            param = start + offset
            if self.fn(param, 0.0) != value:
                self.wrong += 1
                self._note(f"param {param}: got {value!r}, recomputed {self.fn(param, 0.0)!r}")
                continue
            if self.seen[param] < 255:
                self.seen[param] += 1

    def _problem(self, kind: str, text: str) -> bool:
        if kind == "foreign":
            self.foreign += 1
        self._note(text)
        return False

    def _note(self, text: str) -> None:
        if len(self.problems) < MAX_EXAMPLES:
            self.problems.append(text)

    def verdict(self) -> Verdict:
        self.verify_pending()
        verified = self.total_params - self.seen.count(0)
        wrong_params = self.wrong
        lost = self.total_params - verified - wrong_params
        return Verdict(
            total_params=self.total_params, chunks_total=self.chunks_total,
            chunks_completed=self.completed, chunks_failed=self.failed,
            params_verified=verified, lost_params=max(0, lost), wrong_results=wrong_params,
            duplicate_deliveries=self.duplicates, foreign_results=self.foreign,
            problems=list(self.problems))
