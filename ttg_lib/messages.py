"""Wire format shared by every backend: one task per chunk, one result frame per batch.

A task names a range of params (``start``, ``count``) instead of listing them,
so a million-param run publishes a thousand small messages. Each message
carries the run id; a worker rejects (dead-letters) a message of another run.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one a call


class MessageError(ValueError):
    """A message cannot be decoded; the text is the dead-letter reason."""


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

    def encode(self) -> bytes:
        return compact_json({"v": PROTOCOL_VERSION, **self.__dict__}).encode()

    def next_attempt(self) -> Task:
        return Task(**{**asdict(self), "attempt": self.attempt + 1})

    @classmethod
    def decode(cls, body: bytes | str) -> Task:
        data = _load_object(body)
        _check(data, _TASK_TYPES)
        if data["count"] < 1 or data["start"] < 0 or data["chunk_id"] < 0:
            raise MessageError("malformed task: start/chunk_id must be >= 0 and count >= 1")
        return cls(**{name: data[name] for name in _TASK_TYPES})


_INT, _NUMBER, _TEXT = frozenset({int}), frozenset({int, float}), frozenset({str})
_TASK_TYPES = {"run_id": _TEXT, "chunk_id": _INT, "start": _INT, "count": _INT,
               "work_ms": _NUMBER, "compute": _TEXT, "attempt": _INT, "max_retries": _INT,
               "retry_delay_s": _NUMBER, "published_at": _NUMBER}


@dataclass
class Result:
    """What a worker reports for one chunk; ``error`` set means the chunk was dead-lettered."""

    run_id: str
    chunk_id: int
    start: int
    count: int
    worker: str
    attempt: int
    started_at: float
    finished_at: float
    values: Sequence[Any] = field(default_factory=list)  # list, or array('q') when decoded
    checksum: int = 0
    error: str | None = None
    redelivered: bool = False
    corrupt: bool = False  # set on decode when the checksum does not match

    def encode(self) -> bytes:
        return encode_results([self])


_ROW = ("run_id", "chunk_id", "start", "count", "worker", "attempt", "started_at",
        "finished_at", "error", "redelivered", "enc", "size", "checksum")
_ROW_TYPES = {"run_id": _TEXT, "chunk_id": _INT, "start": _INT, "count": _INT,
              "worker": _TEXT, "attempt": _INT, "started_at": _NUMBER, "finished_at": _NUMBER,
              "error": frozenset({str, type(None)}), "redelivered": frozenset({bool}),
              "enc": _TEXT, "size": _INT, "checksum": _INT}
FRAME_MAGIC = b"TTGR"
_BIG_ENDIAN = sys.byteorder == "big"  # the wire is little-endian on every host
_HEADER_LEN = struct.Struct(">I")


def encode_results(results: Sequence[Result]) -> bytes:
    """Results as one binary frame: magic, header length, a small JSON header (field names,
    then one row per result: metadata, value encoding, size, CRC32), then the packed values
    back to back.

    Integers travel as raw int64 (8 bytes a value; no base64, no JSON), so a 1,000-value
    chunk costs microseconds to pack and to read; other values fall back to JSON.
    """
    rows, payloads = [], []
    for r in results:
        enc, raw = pack_values(r.values)
        rows.append((r.run_id, r.chunk_id, r.start, r.count, r.worker, r.attempt,
                     r.started_at, r.finished_at, r.error, r.redelivered, enc, len(raw),
                     zlib.crc32(raw)))
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
    for row in rows:
        if not isinstance(row, list) or len(row) != len(fields):
            raise MessageError("malformed message: a frame row does not match its fields")
        meta = dict(zip(fields, row, strict=True))
        _check(meta, _ROW_TYPES)
        if min(meta["chunk_id"], meta["start"], meta["count"] - 1, meta["attempt"] - 1,
               meta["size"]) < 0:
            raise MessageError("malformed message: chunk_id/start/size must be >= 0 and "
                               "count/attempt >= 1")
        payload = view[offset:offset + meta["size"]]  # no copy until the values array
        offset += meta["size"]
        if len(payload) != meta["size"]:
            raise MessageError("malformed message: frame shorter than its header says")
        out.append(_result(meta, payload))
    return out


def _result(meta: dict[str, Any], payload: memoryview) -> Result:
    values: Sequence[Any]
    if meta["enc"] == "i64":
        values = array("q")
        values.frombytes(payload[:len(payload) - len(payload) % 8])
        if _BIG_ENDIAN:
            values.byteswap()
    else:
        try:
            values = json.loads(bytes(payload)) if payload else []
        except (ValueError, RecursionError):  # too deeply nested counts as unreadable
            values = []
        if not isinstance(values, list):  # verification then reports a size mismatch
            values = []
    return Result(**{name: meta[name] for name in _ROW[:10]}, values=values,
                  checksum=meta["checksum"], corrupt=zlib.crc32(payload) != meta["checksum"])


def pack_values(values: Sequence[Any]) -> tuple[str, bytes]:
    """("i64", little-endian int64 bytes) when every value is a 64-bit integer, else
    ("json", JSON)."""
    try:
        packed = array("q", values)
    except (TypeError, OverflowError):
        return "json", compact_json(list(values)).encode()
    if _BIG_ENDIAN:
        packed.byteswap()
    return "i64", packed.tobytes()


def _load_object(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MessageError(f"malformed message: not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MessageError("malformed message: not a JSON object")
    version = data.get("v", PROTOCOL_VERSION)
    if type(version) is not int or version != PROTOCOL_VERSION:  # True == 1 in Python
        raise MessageError(f"malformed message: protocol version {data.get('v')!r} is not "
                           f"{PROTOCOL_VERSION}")
    return data


_MISSING = object()


def _check(data: dict[str, Any], types: dict[str, frozenset[type]]) -> None:
    """Exact types (a bool is no int here): one set lookup per field keeps decoding cheap."""
    for name, allowed in types.items():
        value = data.get(name, _MISSING)
        if type(value) not in allowed:
            if value is _MISSING:
                raise MessageError(f"malformed message: missing field {name!r}")
            raise MessageError(f"malformed message: field {name!r} has type "
                               f"{type(value).__name__}")
