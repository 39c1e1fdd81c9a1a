"""Compute one chunk point by point, so a point that fails, fails alone.

An exception in the user's function becomes that point's :class:`PointFailure` (type,
message, the traceback's last frames) and the loop goes on with the next point; failed
points are retried (``max_retries``, exponential delay) on their own, not the chunk. What
the function returned is made storable (:mod:`ttg_lib.values`) and packed here, in the
process that computed it.

The loop is the hot path of a million-point run, so it has two forms: a plain one that costs
what a list comprehension costs (the position of a failing point is the length of the output
so far), and a *tracked* one that also writes the current point's offset into a shared
cursor, so the supervising worker can name the point that crashed or hung its process. The
tracked one is used when points are slow enough for its ~40 ns to vanish (>= 20 us a point),
and to pin down the culprit after an untracked chunk crashed.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .messages import Packed, PointFailure, Task, pack_chunk
from .values import clean_text, normalise_typed

TRACE_FRAMES = 5
TRACE_CHARS = 4000
TRACK_ABOVE_S = 20e-6  # points slower than this are tracked: the cursor write is noise

# cursor slots (int64): which job the child is on, and where in it
SEQ, OFFSET = 0, 1
UNTRACKED, WAITING = -1, -2  # offset values: no per-point cursor; sleeping before a retry


@dataclass
class Job:
    """A chunk for the compute process: the task, the points already failed for good (not
    to be called again), and whether to track every point (after a crash or hang)."""

    task: Task
    skip: dict[int, PointFailure] = field(default_factory=dict)
    careful: bool = False
    payload: bytes | None = None  # the function shipped by value, the first time it is sent


@dataclass
class ChunkOutcome:
    """A computed chunk, as the compute process hands it to the worker."""

    chunk_id: int
    values: Packed
    failures: list[PointFailure]
    started_at: float
    finished_at: float
    compute_cpu_s: float
    point_seconds: list[float] = field(default_factory=list)  # tracked points' durations
    load_error: str | None = None  # the compute function did not load: reject the task


def retry_delay(task: Task, retry: int) -> float | None:
    """The retry policy for a failed point: retry_delay_s, then x2 per retry, while
    ``retry`` <= max_retries; None once they are used up."""
    if retry > task.max_retries:
        return None
    return task.retry_delay_s * 2 ** (retry - 1)


def describe(exc: BaseException) -> tuple[str, str]:
    """("Type: message", the traceback's last frames) of a point's exception."""
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    tb = exc.__traceback__  # from the user's function on: this module's calling frames
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == \
            __file__:  # say nothing the user can act on
        tb = tb.tb_next
    frames = "".join(traceback.format_exception(type(exc), exc, tb, limit=-TRACE_FRAMES))
    return clean_text(message), clean_text(frames[-TRACE_CHARS:])


def compute_chunk(fn: Callable[..., Any], task: Task, *, tracked: bool = False,
                  cursor: MutableSequence[int] | None = None,
                  skip: dict[int, PointFailure] | None = None,
                  sleep: Callable[[float], Any] = time.sleep) -> ChunkOutcome:
    """Every point of ``task`` through ``fn``; ``skip``: points already failed for good
    (crashed, timed out) that are not called again."""
    started, cpu0 = time.time(), time.thread_time()
    call = None  # one point at a time: built only when needed (tracked, retried)
    skip = dict(skip or {})
    if task.only is not None:  # --retry-failed: the other points are on disk already
        wanted = set(task.only)
        skip.update({i: _NOT_ASKED for i in range(task.count) if i not in wanted})
    errors: dict[int, tuple[str, str]] = {}
    seconds: list[float] = []
    if tracked or skip:
        call = _caller(fn, task)
        values = _tracked(call, range(task.count), skip, errors, cursor, seconds)
    else:
        values = _plain(fn, task, errors)
    attempts = dict.fromkeys(errors, 1)
    retry = 1
    while errors and (delay := retry_delay(task, retry)) is not None:
        retry += 1
        if cursor is not None:
            cursor[OFFSET] = WAITING
        sleep(delay)
        again: dict[int, tuple[str, str]] = {}
        call = call or _caller(fn, task)
        redo = _tracked(call, sorted(errors), {}, again, cursor, seconds)
        for offset, value in zip(sorted(errors), redo, strict=True):
            attempts[offset] += 1
            if offset not in again:
                values[offset] = value
        errors = again
    cpu = time.thread_time() - cpu0
    values, unstorable, types = normalise_typed(values)
    failures = [PointFailure(i, message, attempts.get(i, 1), trace)
                for i, (message, trace) in errors.items()]
    failures += [PointFailure(i, message) for i, message in unstorable.items()
                 if i not in errors and i not in skip]
    failures += [f for f in skip.values() if f is not _NOT_ASKED]
    failures.sort(key=lambda f: f.offset)
    for f in failures:
        values[f.offset] = None
    if failures:
        types = None  # Nones put in: the types changed
    enc, raw, cols = pack_chunk(values, types)
    return ChunkOutcome(task.chunk_id, Packed(enc, raw, cols, task.count), failures,
                        started, time.time(), cpu, seconds)


def compute_job(job: Job, *, tracked: bool = False,
                cursor: MutableSequence[int] | None = None,
                fetch: Callable[[str], bytes | None] | None = None) -> ChunkOutcome:
    """A job's outcome; a chunk TTG cannot compute at all (its function does not load, its
    space is broken) comes back with ``load_error`` set, and the worker dead-letters it.
    A function shipped by value comes with the job (``payload``) or from ``fetch``."""
    from . import byvalue
    from .errors import ComputeImportError

    task = job.task
    if len(job.skip) >= task.count:  # every point failed for good: the function is not even
        return compute_chunk(_never, task, skip=job.skip)  # loaded (its import may crash)
    try:
        fn = byvalue.resolve(task.compute, fetch or (lambda _key: job.payload))
        return compute_chunk(fn, task, tracked=tracked or job.careful, cursor=cursor,
                             skip=job.skip)
    except Exception as exc:  # noqa: BLE001 - anything but the user's function itself
        now = time.time()
        error = str(exc) if isinstance(exc, ComputeImportError) \
            else f"{type(exc).__name__}: {exc}"
        return ChunkOutcome(task.chunk_id, Packed("json", b"[]", None, 0), [], now, now, 0.0,
                            load_error=error)


def _never(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("a skipped point was computed")


_NOT_ASKED = PointFailure(-1, "")  # a point --retry-failed did not ask for


def _caller(fn: Callable[..., Any], task: Task) -> Callable[[int], Any]:
    """``call(offset)`` for one point: fn(param_id, work_ms), or fn(**point) in a space."""
    if task.space is None:
        start, work_ms = task.start, task.work_ms
        return lambda offset: fn(start + offset, work_ms)
    points = _points(task)
    return lambda offset: fn(**points[offset])


def _plain(fn: Callable[..., Any], task: Task,
           errors: dict[int, tuple[str, str]]) -> list[Any]:
    """The fast form, as cheap as a list comprehension (fn called directly, no wrapper a
    point); after a failure, the loop resumes past the failing point."""
    out: list[Any] = []
    append = out.append
    count, start, work_ms = task.count, task.start, task.work_ms
    points = None if task.space is None else _points(task)
    while len(out) < count:
        try:
            if points is None:
                for param_id in range(start + len(out), start + count):
                    append(fn(param_id, work_ms))
            else:
                for point in islice(points, len(out), None):
                    append(fn(**point))
        except BaseException as exc:  # noqa: BLE001 - the user's code: any failure is its
            errors[len(out)] = describe(exc)  # point's (SystemExit and KeyboardInterrupt
            append(None)  # too: the compute process ignores SIGINT, the worker owns it)
    return out


def _points(task: Task) -> list[dict[str, Any]]:
    from .compute import space_of

    return space_of(task.space).points(task.start, task.count)


def _tracked(call: Callable[[int], Any], offsets: Any, skip: dict[int, PointFailure],
             errors: dict[int, tuple[str, str]], cursor: MutableSequence[int] | None,
             seconds: list[float]) -> list[Any]:
    """The tracked form: the cursor names the point being computed; durations are kept."""
    out: list[Any] = []
    clock = time.perf_counter
    for offset in offsets:
        if offset in skip:
            out.append(None)
            continue
        if cursor is not None:
            cursor[OFFSET] = offset
        t0 = clock()
        try:
            out.append(call(offset))
        except BaseException as exc:  # noqa: BLE001 - see _plain
            errors[offset] = describe(exc)
            out.append(None)
        seconds.append(clock() - t0)
    if cursor is not None:
        cursor[OFFSET] = UNTRACKED
    return out
