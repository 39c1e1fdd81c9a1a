"""Wire format shared by every backend: a task per chunk (or a bundle of consecutive
chunks), one result frame per batch.

A task names a range of params (``start``, ``count``) instead of listing them,
so a million-param run publishes a thousand small messages. Each message
carries the run id; a worker rejects (dead-letters) a message of another run.
A bundle (:meth:`Task.bundle`) carries several chunks' tasks in one message when chunks are
many and cheap: every message costs the broker, the orchestrator and a worker far more than
a 10-point chunk's work. Its results are still one per chunk.
"""

from __future__ import annotations

import itertools
import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from .errors import MessageError
from .packing import (  # noqa: F401 - re-exported: the wire's value packing
    Packed,
    ValueColumns,
    compact_json,
    pack_chunk,
    pack_values,
    unpack,
    unpack_columns,
)

PROTOCOL_VERSION = 1
BUNDLE_VERSION = 2  # a bundle's version: a worker that cannot split one rejects it whole


Part = tuple[int, int, int, "tuple[int, ...] | None"]  # a bundled chunk: id, start, count, only


@dataclass(frozen=True)
class Task:
    run_id: str
    chunk_id: int
    start: int
    count: int
    work_ms: float
    compute: str
    attempt: int = 1
    max_retries: int = 3
    retry_delay_s: float = 1.0
    published_at: float = 0.0
    space: dict[str, Any] | None = None  # named points: fn(**point) instead of fn(id, work_ms)
    verify_of: str = ""  # a recomputation of this worker's result, for another worker to do
    bounces: int = 0  # times the worker named in verify_of handed it back
    point_timeout_s: float = 0.0  # a point running longer is stopped; 0: no limit, -1: auto
    max_crashes: int = 1  # a point that kills its process is tried 1 + this many times
    only: tuple[int, ...] | None = None  # offsets to compute (--retry-failed); None: all
    recycle_after: int = 0  # the compute process is replaced after this many chunks; 0: never
    max_worker_mib: float = 0.0  # ... or once it holds more memory than this; 0: no cap
    more: tuple[Part, ...] = ()  # a bundle: the next chunks' (chunk_id, start, count, only)

    def encode(self) -> bytes:
        data = {"v": BUNDLE_VERSION if self.more else PROTOCOL_VERSION, **self.__dict__}
        for name, default in _TASK_OPTIONAL_DEFAULTS.items():
            if data[name] == default:  # absent means default: old workers read new tasks
                del data[name]
        return compact_json(data).encode()

    @property
    def chunks(self) -> int:
        return 1 + len(self.more)

    def parts(self) -> list[Task]:
        """The chunks' own tasks: a bundle's, or this one."""
        if not self.more:
            return [self]
        first = replace(self, more=())
        return [first, *(first._with_range(*part) for part in self.more)]

    def _with_range(self, chunk_id: int, start: int, count: int,
                    only: tuple[int, ...] | None) -> Task:
        """This task for another chunk: a copy of its fields, not ``replace`` (which runs
        ``__init__`` again; a worker splits thousands of bundled chunks a second)."""
        task = object.__new__(Task)
        task.__dict__.update(self.__dict__, chunk_id=chunk_id, start=start, count=count,
                             only=only)
        return task

    @classmethod
    def bundle(cls, tasks: Sequence[Task]) -> Task:
        """One message for ``tasks``: chunks' tasks alike but for their range (and ``only``)."""
        first, rest = tasks[0], tasks[1:]
        if any(not first.bundles_with(t) for t in rest):
            raise ValueError("a bundle's tasks differ in more than their chunk")
        return replace(first, more=tuple((t.chunk_id, t.start, t.count, t.only) for t in rest))

    def bundles_with(self, other: Task) -> bool:
        """Alike but for the chunk: the other can travel in this one's bundle."""
        return not self.more and not other.more and self._shared() == other._shared()

    def _shared(self) -> tuple[Any, ...]:
        """What a bundle's chunks have in common: every field but their range."""
        return _bundle_shared(self)

    def next_attempt(self) -> Task:
        return replace(self, attempt=self.attempt + 1)

    def bounced(self) -> Task:
        return replace(self, bounces=self.bounces + 1)

    def verification(self, of_worker: str) -> Task:
        """The same chunk, to be recomputed by a worker other than ``of_worker``, without
        the simulated work (it is no part of the values)."""
        return replace(self, verify_of=of_worker, work_ms=0.0, attempt=1)

    @classmethod
    def decode(cls, body: bytes | str) -> Task:
        data = _load_object(body, (PROTOCOL_VERSION, BUNDLE_VERSION))
        _check(data, _TASK_TYPES)
        _check_optional(data, _TASK_OPTIONAL)
        data["only"] = _part(data["chunk_id"], data["start"], data["count"], data.get("only"))[3]
        more = data.get("more")
        if (data["v"] == BUNDLE_VERSION) != bool(more):
            raise MessageError("malformed task: a bundle (version 2) and only a bundle lists "
                               "'more' chunks")
        if more:
            if not all(isinstance(p, list) and len(p) == 4 for p in more):
                raise MessageError("malformed task: a bundle part is [chunk_id, start, count, "
                                   "only]")
            data["more"] = tuple(_part(*p) for p in more)
        return cls(**{name: data[name] for name in _TASK_TYPES},
                   **{name: data[name] for name in _TASK_OPTIONAL if name in data})


def _part(chunk_id: Any, start: Any, count: Any, only: Any) -> Part:
    """One chunk's range, checked (a task's own or a bundle's part)."""
    if not all(type(v) is int for v in (chunk_id, start, count)):
        raise MessageError("malformed task: a bundle part's chunk_id/start/count must be "
                           "integers")
    if count < 1 or start < 0 or chunk_id < 0:
        raise MessageError("malformed task: start/chunk_id must be >= 0 and count >= 1")
    if only is not None:
        if not isinstance(only, (list, tuple)) or not all(
                type(i) is int and 0 <= i < count for i in only):
            raise MessageError("malformed task: 'only' must list offsets within the chunk")
        only = tuple(only)
    return chunk_id, start, count, only


_bundle_shared = attrgetter(*(f for f in Task.__dataclass_fields__
                              if f not in ("chunk_id", "start", "count", "only",
                                           "published_at", "more")))
_INT, _NUMBER, _TEXT = frozenset({int}), frozenset({int, float}), frozenset({str})
_TASK_TYPES = {"run_id": _TEXT, "chunk_id": _INT, "start": _INT, "count": _INT,
               "work_ms": _NUMBER, "compute": _TEXT, "attempt": _INT, "max_retries": _INT,
               "retry_delay_s": _NUMBER, "published_at": _NUMBER}
_TASK_OPTIONAL = {"space": frozenset({dict, type(None)}), "verify_of": _TEXT, "bounces": _INT,
                  "point_timeout_s": _NUMBER, "max_crashes": _INT,
                  "only": frozenset({list, type(None)}), "recycle_after": _INT,
                  "max_worker_mib": _NUMBER, "more": frozenset({list})}
_TASK_OPTIONAL_DEFAULTS = {"space": None, "verify_of": "", "bounces": 0,
                           "point_timeout_s": 0.0, "max_crashes": 1, "only": None,
                           "recycle_after": 0, "max_worker_mib": 0.0, "more": ()}


@dataclass(frozen=True)
class PointFailure:
    """One point of a chunk that has no value: its function raised, returned what cannot be
    stored, crashed its process or ran out of time. The chunk's other points have theirs."""

    offset: int  # within the chunk: param_id = start + offset
    error: str  # "Type: message", "crashed: signal 9 (SIGKILL)", "timeout after 5 s"
    attempts: int = 1  # times it was tried
    trace: str = ""  # the traceback's last frames (exceptions only)

    def row(self) -> list[Any]:
        return [self.offset, self.error, self.attempts, self.trace]

    @classmethod
    def from_row(cls, row: Any) -> PointFailure:
        if (not isinstance(row, list) or len(row) != 4 or type(row[0]) is not int
                or type(row[1]) is not str or type(row[2]) is not int
                or type(row[3]) is not str):
            raise MessageError("malformed message: a point failure is [offset, error, "
                               "attempts, trace]")
        return cls(*row)


@dataclass
class Result:
    """What a worker reports for one chunk; ``error`` set means the chunk was dead-lettered,
    ``failures`` lists the points that failed alone (their values are None)."""

    run_id: str
    chunk_id: int
    start: int
    count: int
    worker: str
    attempt: int
    started_at: float
    finished_at: float
    values: Sequence[Any] = field(default_factory=list)  # decoded: array('q'), array('d'),
    # ValueColumns (dicts of scalars) or a list
    checksum: int = 0
    error: str | None = None
    redelivered: bool = False
    corrupt: bool = False  # set on decode when the checksum does not match
    verify: bool = False  # a recomputation (Task.verify_of), not the chunk's result
    failures: list[PointFailure] = field(default_factory=list)
    point_limit_s: float = 0.0  # the per-point time limit the worker applied (auto: learned)
    compute_sha256: str = ""  # the function shipped by value that computed it ("": by import)

    def encode(self) -> bytes:
        return encode_results([self])


_ROW = ("run_id", "chunk_id", "start", "count", "worker", "attempt", "started_at",
        "finished_at", "error", "redelivered", "enc", "size", "checksum",
        "cols", "verify", "fn", "fails", "limit")  # from "cols" on optional: older frames
# lack them
_ROW_TYPES = {"run_id": _TEXT, "chunk_id": _INT, "start": _INT, "count": _INT,
              "worker": _TEXT, "attempt": _INT, "started_at": _NUMBER, "finished_at": _NUMBER,
              "error": frozenset({str, type(None)}), "redelivered": frozenset({bool}),
              "enc": _TEXT, "size": _INT, "checksum": _INT}
_CHECKED = len(_ROW_TYPES)  # the leading fields every row has, of these types:
_ROW_TYPINGS = frozenset(itertools.product(*(_ROW_TYPES[name] for name in _ROW[:_CHECKED])))
FRAME_MAGIC = b"TTGR"
_HEADER_LEN = struct.Struct(">I")


def encode_results(results: Sequence[Result]) -> bytes:
    """Results as one binary frame: magic, header length, a small JSON header (field names,
    then one row per result: metadata, value encoding, size, CRC32), then the packed values
    back to back.

    Integers travel as raw int64 and floats as raw float64 (8 bytes a value; no base64, no
    JSON), so a 1,000-value chunk costs microseconds to pack and to read; dicts of scalars
    travel as one such column per key (their schema in the row's ``cols``); other values
    fall back to JSON.
    """
    rows, payloads = [], []
    for r in results:
        if isinstance(r.values, Packed):
            enc, raw, cols = r.values.enc, r.values.raw, r.values.cols
        else:
            enc, raw, cols = pack_chunk(r.values)
        rows.append((r.run_id, r.chunk_id, r.start, r.count, r.worker, r.attempt,
                     r.started_at, r.finished_at, r.error, r.redelivered, enc, len(raw),
                     zlib.crc32(raw), cols, r.verify, r.compute_sha256,
                     [f.row() for f in r.failures] or None, r.point_limit_s or None))
        payloads.append(raw)
    header = compact_json({"v": PROTOCOL_VERSION, "fields": _ROW, "rows": rows}).encode()
    return b"".join((FRAME_MAGIC, _HEADER_LEN.pack(len(header)), header, *payloads))


def decode_results(body: bytes | str | bytearray | memoryview) -> list[Result | bytes]:
    """The results in a frame; an undecodable frame comes back whole as raw bytes, which the
    collector counts as a problem. Never raises: one bad message must not end a run, so any
    error a hostile or corrupted frame can provoke is caught here, not only the foreseen ones.
    """
    raw = bytes(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body)
    try:
        return _decode_frame(raw)
    except Exception:  # noqa: BLE001 - MessageError and anything unforeseen alike
        return [raw]


def _decode_frame(body: bytes) -> list[Result | bytes]:
    prefix = len(FRAME_MAGIC) + _HEADER_LEN.size
    if len(body) < prefix or not body.startswith(FRAME_MAGIC):
        raise MessageError("malformed message: not a TTG result frame")
    (header_len,) = _HEADER_LEN.unpack_from(body, len(FRAME_MAGIC))
    header = _load_object(body[prefix:prefix + header_len])
    fields, rows = header.get("fields"), header.get("rows")
    if not isinstance(fields, list) or not isinstance(rows, list):
        raise MessageError("malformed message: a frame header needs 'fields' and 'rows'")
    if not all(type(name) is str for name in fields):
        raise MessageError("malformed message: a frame's field names must be strings")
    if not rows:
        raise MessageError("malformed message: a frame without results")
    offset, out, view = prefix + header_len, [], memoryview(body)
    current = fields == list(_ROW)  # this version's rows: their types checked in one go
    for row in rows:
        if not isinstance(row, list) or len(row) != len(fields):
            raise MessageError("malformed message: a frame row does not match its fields")
        if not current or tuple(map(type, row[:_CHECKED])) not in _ROW_TYPINGS:
            meta = dict(zip(fields, row, strict=True))
            _check(meta, _ROW_TYPES)  # raises, naming the field; or an older frame's row
            row = [meta.get(name) for name in _ROW]
        size = row[11]
        if min(row[1], row[2], row[3] - 1, row[5] - 1, size) < 0:
            raise MessageError("malformed message: chunk_id/start/size must be >= 0 and "
                               "count/attempt >= 1")
        payload = view[offset:offset + size]  # no copy until the values array
        offset += size
        if len(payload) != size:
            raise MessageError("malformed message: frame shorter than its header says")
        out.append(_result(row, payload))
    return out


def _result(row: list[Any], payload: memoryview) -> Result:
    """One result from its row, in ``_ROW``'s order."""
    (run_id, chunk_id, start, count, worker, attempt, started_at, finished_at, error,
     redelivered, enc, _size, checksum, cols, verify, fn, fails, limit) = row
    values: Sequence[Any] = (unpack_columns(cols, payload) if enc == "cols"
                             else unpack(enc, payload))
    fails = fails or []
    if not isinstance(fails, list) or type(limit) not in (int, float, type(None)):
        raise MessageError("malformed message: 'fails' must be a list, 'limit' a number")
    failures = [PointFailure.from_row(f) for f in fails]
    if any(not 0 <= f.offset < count for f in failures):
        raise MessageError("malformed message: a point failure outside its chunk")
    return Result(run_id, chunk_id, start, count, worker, attempt, started_at, finished_at,
                  values, checksum, error, redelivered,
                  corrupt=zlib.crc32(payload) != checksum, verify=verify is True,
                  failures=failures, point_limit_s=float(limit or 0.0),
                  compute_sha256=fn if type(fn) is str else "")


def _load_object(body: bytes | str,
                 versions: tuple[int, ...] = (PROTOCOL_VERSION,)) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MessageError(f"malformed message: not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MessageError("malformed message: not a JSON object")
    version = data.setdefault("v", PROTOCOL_VERSION)
    if type(version) is not int or version not in versions:  # True == 1 in Python
        raise MessageError(f"malformed message: protocol version {version!r} is not "
                           f"{' or '.join(map(str, versions))}")
    return data


_MISSING = object()


def _check_optional(data: dict[str, Any], types: dict[str, frozenset[type]]) -> None:
    """Fields a newer sender adds: absent is fine, present must have the right type."""
    _check({name: data[name] for name in types if name in data},
           {name: allowed for name, allowed in types.items() if name in data})


def _check(data: dict[str, Any], types: dict[str, frozenset[type]]) -> None:
    """Exact types (a bool is no int here): one set lookup per field keeps decoding cheap."""
    for name, allowed in types.items():
        value = data.get(name, _MISSING)
        if type(value) not in allowed:
            if value is _MISSING:
                raise MessageError(f"malformed message: missing field {name!r}")
            raise MessageError(f"malformed message: field {name!r} has type "
                               f"{type(value).__name__}")
