"""Wire format shared by every backend: one task per chunk, one result per chunk.

A task names a range of params (``start``, ``count``) instead of listing them,
so a million-param run publishes a thousand small messages. Each message
carries the run id; a worker rejects (dead-letters) a message of another run.
"""

from __future__ import annotations

import json
import zlib
from array import array
from base64 import b64decode, b64encode
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PROTOCOL_VERSION = 1


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
        return json.dumps({"v": PROTOCOL_VERSION, **self.__dict__},
                          separators=(",", ":")).encode()

    def next_attempt(self) -> Task:
        return Task(**{**asdict(self), "attempt": self.attempt + 1})

    @classmethod
    def decode(cls, body: bytes | str) -> Task:
        data = _load_object(body)
        _require(data, "run_id", str)
        for name in ("chunk_id", "start", "count", "attempt", "max_retries"):
            _require(data, name, int)
        for name in ("work_ms", "retry_delay_s", "published_at"):
            _require(data, name, (int, float))
        _require(data, "compute", str)
        if data["count"] < 1 or data["start"] < 0 or data["chunk_id"] < 0:
            raise MessageError("malformed task: start/chunk_id must be >= 0 and count >= 1")
        data.pop("v", None)
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


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

    def to_wire(self) -> dict[str, Any]:
        """Values packed (int64 -> base64) when they are all integers, else JSON; one CRC32
        over the packed bytes. Packing costs ~10 us per 1,000 values, JSON ~180 us."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("values", "corrupt")}
        field_name, payload, raw = pack_values(self.values)
        data[field_name] = payload
        data["checksum"] = zlib.crc32(raw)
        return {"v": PROTOCOL_VERSION, **data}

    def encode(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes | str) -> Result:
        return cls.from_wire(_load_object(body))

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Result:
        _require(data, "run_id", str)
        for name in ("chunk_id", "start", "count", "attempt"):
            _require(data, name, int)
        if "values_i64" in data:
            _require(data, "values_i64", str)
            raw = b64decode(data.pop("values_i64"))
            packed = array("q")
            packed.frombytes(raw)
            data["values"] = packed  # 8 bytes a value, not a Python int object each
        else:
            _require(data, "values", list)
            raw = _json_bytes(data["values"])
        data.pop("v", None)
        known = cls.__dataclass_fields__
        result = cls(**{k: v for k, v in data.items() if k in known and k != "corrupt"})
        result.corrupt = bool(data.get("checksum")) and zlib.crc32(raw) != data["checksum"]
        return result


def pack_values(values: list[Any]) -> tuple[str, Any, bytes]:
    """("values_i64", base64, raw bytes) for int64 values, else ("values", list, JSON)."""
    try:
        raw = array("q", values).tobytes()
    except (TypeError, OverflowError):
        return "values", values, _json_bytes(values)
    return "values_i64", b64encode(raw).decode(), raw


def _json_bytes(values: list[Any]) -> bytes:
    return json.dumps(values, separators=(",", ":")).encode()


def encode_results(results: list[Result]) -> bytes:
    """Several chunk results in one message: one publish per worker batch, not per chunk."""
    if len(results) == 1:
        return results[0].encode()
    return json.dumps({"v": PROTOCOL_VERSION, "results": [r.to_wire() for r in results]},
                      separators=(",", ":")).encode()


def decode_results(body: bytes | str) -> list[Result | bytes]:
    """Results in a message (one or a batch); an undecodable one comes back as raw bytes."""
    try:
        data = _load_object(body)
        if "results" not in data:
            return [Result.decode(body)]
        items = data["results"]
        if not isinstance(items, list):
            raise MessageError("malformed message: 'results' is not a list")
        return [Result.from_wire(_object(item)) for item in items]
    except MessageError:
        return [body if isinstance(body, bytes) else body.encode()]


def _load_object(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"malformed message: not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MessageError("malformed message: not a JSON object")
    if data.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise MessageError(f"malformed message: protocol version {data.get('v')!r} is not "
                           f"{PROTOCOL_VERSION}")
    return data


def _object(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise MessageError("malformed message: a batched result is not a JSON object")
    return item


def _require(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> None:
    value = data.get(name)
    if name not in data:
        raise MessageError(f"malformed message: missing field {name!r}")
    if isinstance(value, bool) or not isinstance(value, kind):
        raise MessageError(f"malformed message: field {name!r} has type "
                           f"{type(value).__name__}")
