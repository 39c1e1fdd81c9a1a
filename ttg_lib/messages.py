"""Wire format shared by every backend: one task per chunk, one result per chunk.

A task names a range of params (``start``, ``count``) instead of listing them,
so a million-param run publishes a thousand small messages. Each message
carries the run id; a worker rejects (dead-letters) a message of another run.
"""

from __future__ import annotations

import json
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
    values: list[Any] = field(default_factory=list)
    checksum: int = 0
    error: str | None = None
    redelivered: bool = False

    def encode(self) -> bytes:
        """Shallow: ``asdict`` would deep-copy the values list of every chunk."""
        return json.dumps({"v": PROTOCOL_VERSION, **self.__dict__},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes | str) -> Result:
        data = _load_object(body)
        _require(data, "run_id", str)
        for name in ("chunk_id", "start", "count", "attempt"):
            _require(data, name, int)
        _require(data, "values", list)
        data.pop("v", None)
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def encode_results(results: list[Result]) -> bytes:
    """Several chunk results in one message: one publish per worker batch, not per chunk."""
    if len(results) == 1:
        return results[0].encode()
    return json.dumps({"v": PROTOCOL_VERSION, "results": [r.__dict__ for r in results]},
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
        return [Result.decode(json.dumps(item)) for item in items]
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


def _require(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> None:
    value = data.get(name)
    if name not in data:
        raise MessageError(f"malformed message: missing field {name!r}")
    if isinstance(value, bool) or not isinstance(value, kind):
        raise MessageError(f"malformed message: field {name!r} has type "
                           f"{type(value).__name__}")
