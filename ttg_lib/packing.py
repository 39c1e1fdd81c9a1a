"""A chunk's values as bytes and back: int64 and float64 columns travel raw (8 bytes a value),
dicts of scalars as one such column per key, anything else as JSON. What a user's function
returns is made packable first (:mod:`ttg_lib.values`), so packing never raises."""

from __future__ import annotations

import functools
import json
import pickle
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import MessageError

compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one a call
_BIG_ENDIAN = sys.byteorder == "big"  # the wire is little-endian on every host


@dataclass(frozen=True)
class Packed:
    """A chunk's values packed where they were computed (the compute process), so the
    worker sends them on without unpacking: :func:`pack_chunk`'s output and the count."""

    enc: str
    raw: bytes | memoryview  # a memoryview: received from the compute process, not copied
    cols: list[list[Any]] | None
    count: int

    def __len__(self) -> int:
        return self.count

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle protocol 5 may carry ``raw`` out of band (:func:`ttg_lib.child.send`)."""
        raw = pickle.PickleBuffer(self.raw) if int(protocol) >= 5 else self.raw
        return Packed, (self.enc, raw, self.cols, self.count)



_WIDE = {"i64": "q", "f64": "d"}  # 8-byte little-endian columns
_WIRE_ENCODINGS = {code: enc for enc, code in _WIDE.items()}
_EXACT_IN_FLOAT = 2**53


def unpack(enc: str, payload: memoryview) -> Sequence[Any]:
    """One packed column; a JSON column that does not parse (corrupted) is empty."""
    code = _WIDE.get(enc)
    if code is not None:
        values = array(code)
        values.frombytes(payload[:len(payload) - len(payload) % 8])
        if _BIG_ENDIAN:
            values.byteswap()
        return values
    try:
        values = json.loads(bytes(payload)) if payload else []
    except (ValueError, RecursionError):  # too deeply nested counts as unreadable
        return []
    return values if isinstance(values, list) else []  # verification reports a size mismatch


def unpack_columns(schema: Any, payload: memoryview) -> Sequence[Any]:
    """Dict values from their columns; the schema is checked before a byte is read."""
    if (not isinstance(schema, list) or not schema
            or not all(isinstance(c, list) and len(c) == 3 and type(c[0]) is str
                       and c[1] in _COLUMN_ENCODINGS and type(c[2]) is int and c[2] >= 0
                       for c in schema)
            or sum(c[2] for c in schema) != len(payload)):
        raise MessageError("malformed message: a 'cols' row needs its columns' schema "
                           "([key, i64|f64|json, size], ...) matching the values")
    columns, raw, offset = {}, {}, 0
    for key, enc, size in schema:
        raw[key] = payload[offset:offset + size]
        columns[key] = unpack(enc, raw[key])
        offset += size
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        return []  # a corrupted column: the checksum flags it, the size check counts it wrong
    # verify.fingerprint of these values, from the bytes they came in: packing is
    # deterministic, so packing them again would give these bytes
    return ValueColumns(columns, columns_crc((key, raw[key]) for key in sorted(raw)))


def columns_crc(packed: Iterable[tuple[str, bytes | memoryview]]) -> int:
    """CRC32 of dict values as packed columns, (key, bytes) in sorted key order: what
    verify.fingerprint compares, computed once here for packing and unpacking alike."""
    crc = 0
    for key, raw in packed:
        crc = zlib.crc32(raw, zlib.crc32(key.encode("utf-8", "surrogatepass") + b"\0", crc))
    return crc


_COLUMN_ENCODINGS = frozenset({"i64", "f64", "json"})


class ValueColumns(Sequence[dict[str, Any]]):
    """Dict values as one column per key: reads as a sequence of dicts (verification compares
    them one by one), while a results table takes ``columns`` as they are."""

    __slots__ = ("columns", "crc", "_length")

    def __init__(self, columns: dict[str, Sequence[Any]], crc: int | None = None):
        self.columns = columns
        self.crc = crc  # their fingerprint, when known from the wire (verify.fingerprint)
        self._length = len(next(iter(columns.values()))) if columns else 0

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError("ValueColumns index out of range")
        return {key: column[index] for key, column in self.columns.items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ValueColumns({list(self.columns)}, {self._length} rows)"


def pack_chunk(values: Sequence[Any], types: set[type] | None = None
               ) -> tuple[str, bytes, list[list[Any]] | None]:
    """A chunk's values as (encoding, bytes, column schema): dicts that share their keys and
    hold only scalars become ("cols", the columns back to back, [[key, encoding, size], ...]);
    anything else is :func:`pack_values` (``types``: the values' types, when known already)."""
    packed = _pack_dicts(values)
    if packed is not None:
        return "cols", packed[1], packed[0]
    enc, raw = pack_values(values, types)
    return enc, raw, None


_SCALAR_TYPES = (int, float, str, bool, type(None))


def _pack_dicts(values: Sequence[Any]) -> tuple[list[list[Any]], bytes] | None:
    first = next((v for v in values if v is not None), None)  # None: a point not computed
    if type(first) is not dict or not first:  # (failed, or not asked): null in every column
        return None
    keys = first.keys()
    if not all(v is None or (type(v) is dict and v.keys() == keys) for v in values):
        return None
    if not all(type(key) is str for key in keys):
        return None
    schema, parts = [], []
    for key in keys:
        column = [None if v is None else v[key] for v in values]
        types = set(map(type, column))
        if not all(issubclass(t, _SCALAR_TYPES) for t in types):
            return None  # a nested value: the whole chunk goes as JSON
        enc, raw = pack_values(column, types)
        schema.append([key, enc, len(raw)])
        parts.append(raw)
    return schema, b"".join(parts)


def pack_values(values: Sequence[Any], types: set[type] | None = None) -> tuple[str, bytes]:
    """("i64", little-endian int64 bytes) when every value is a 64-bit integer, ("f64",
    little-endian float64) when every value is a float (integers up to 2**53 among them),
    else ("json", JSON). Booleans go as JSON, so they come back as booleans."""
    if type(values) is array and values.typecode in _WIRE_ENCODINGS:  # as unpacked: its
        if _BIG_ENDIAN:  # bytes as they came (verify.fingerprint's 2,000 chunks of a 10^6
            values = array(values.typecode, values)  # run: no int made per value)
            values.byteswap()
        return _WIRE_ENCODINGS[values.typecode], values.tobytes()
    if types is None:
        types = set(map(type, values))
    if bool not in types:
        try:
            return "i64", _wide("q", len(values)).pack(*values)
        except (struct.error, TypeError, OverflowError):
            pass
        if all(issubclass(t, float) or t is int for t in types) and (
                int not in types or all(-_EXACT_IN_FLOAT <= v <= _EXACT_IN_FLOAT
                                        for v in values if type(v) is int)):
            return "f64", _wide("d", len(values)).pack(*values)
    try:
        return "json", compact_json(list(values)).encode()
    except (TypeError, ValueError):  # not normalised first (values.normalise): the values
        from .values import normalise  # it cannot store go as null rather than a crash

        return "json", compact_json(normalise(list(values))[0]).encode()


@functools.lru_cache(maxsize=64)
def _wide(code: str, count: int) -> struct.Struct:
    """``count`` little-endian int64s or float64s: one struct call packs a chunk, ~20 %
    (int64) to ~60 % (float64) faster than through an array (whose items are parsed one
    PyArg_Parse at a time); a chunk's values are packed in its compute process."""
    return struct.Struct(f"<{count}{code}")
