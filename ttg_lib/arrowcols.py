"""Arrow arrays built straight from numpy buffers and Python lists, and read back.

Why not ``pyarrow.array``: on its first call it imports pandas to probe its argument (about
50 MiB and most of a second in the orchestrator, which has no use for pandas). These builders
hand Arrow the buffers themselves: numbers and booleans without a copy or a Python loop,
strings with one encode per value. ``Array.to_numpy`` imports pandas too: :func:`int64s`
reads an int64 column (``param_id``) as a numpy view of its buffer instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_NUMERIC = {"i": (pa.int64(), np.int64), "f": (pa.float64(), np.float64)}


def from_numpy(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An int64, float64, bool or string array from a numpy array (``valid``: False = null)."""
    kind = values.dtype.kind
    if kind in "iu" or kind == "f":
        arrow_type, dtype = _NUMERIC["f" if kind == "f" else "i"]
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=dtype))
    elif kind == "b":
        arrow_type, data = pa.bool_(), pa.py_buffer(_bits(values))
    elif kind == "U":
        return _ascii(values, valid) or strings(values.tolist(), valid)
    elif kind == "O":
        return strings(values.tolist(), valid)
    else:
        raise TypeError(f"no Arrow column for numpy dtype {values.dtype}")
    return pa.Array.from_buffers(arrow_type, len(values), [_validity(valid), data])


def strings(values: Sequence[str | None], valid: np.ndarray | None = None) -> pa.Array:
    """A string array; None (or ``valid`` False) is null."""
    encoded = [b"" if v is None else v.encode() for v in values]
    if valid is None and None in values:
        valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)),
              out=offsets[1:])
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), len(encoded), [
            _validity(valid), pa.py_buffer(offsets.astype(np.int32)),
            pa.py_buffer(b"".join(encoded))])
    return pa.Array.from_buffers(pa.large_string(), len(encoded), [
        _validity(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]).cast(
        pa.string())


def _ascii(values: np.ndarray, valid: np.ndarray | None) -> pa.Array | None:
    """A numpy unicode array of ASCII text (axis values such as "relu") as UTF-8 without a
    Python string per row: numpy stores each as fixed-width UCS-4, padded with zeros."""
    width = values.dtype.itemsize // 4
    if not len(values) or not width:
        return None
    chars = np.ascontiguousarray(values).view(np.uint32).reshape(len(values), width)
    used = chars != 0
    lengths = used.sum(axis=1)
    if chars.max() >= 128 or (used[:, 1:] & ~used[:, :-1]).any():
        return None  # non-ASCII, or a zero inside a text: the general path
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(values), [
        _validity(valid), pa.py_buffer(offsets), pa.py_buffer(chars[used].astype(np.uint8))])


def repeat(texts: Sequence[str | None], counts: np.ndarray, decode: bool = True) -> pa.Array:
    """Each text ``counts[i]`` times (a worker name per row), without a string per row;
    ``decode=False`` keeps it a dictionary column (the texts once, an index per row)."""
    codes = np.repeat(np.arange(len(texts), dtype=np.int32), counts)
    indices = pa.Array.from_buffers(pa.int32(), len(codes), [None, pa.py_buffer(codes)])
    column = pa.DictionaryArray.from_arrays(indices, strings(texts))
    return column.dictionary_decode() if decode else column


def int64s(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 column without nulls as numpy: a view of its buffer (one chunk), no copy."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    views = []
    for chunk in chunks:
        if chunk.null_count or chunk.type != pa.int64():
            raise ValueError(f"int64s: a {chunk.type} column with {chunk.null_count} nulls")
        data = chunk.buffers()[1]
        views.append(np.frombuffer(data, dtype=np.int64, count=chunk.offset + len(chunk))
                     [chunk.offset:] if len(chunk) else np.empty(0, np.int64))
    if len(views) == 1:
        return views[0]
    return np.concatenate(views) if views else np.empty(0, np.int64)


def nulls(length: int, arrow_type: pa.DataType) -> pa.Array:
    return pa.nulls(length, arrow_type)


def _bits(flags: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(flags, dtype=bool), bitorder="little")


def _validity(valid: np.ndarray | None) -> pa.Buffer | None:
    return None if valid is None or valid.all() else pa.py_buffer(_bits(valid))
