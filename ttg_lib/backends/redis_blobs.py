"""Redis blobs: one hash, ``ttg:blobs``, a field per key (see :mod:`.blobs`)."""

from __future__ import annotations

from typing import Any

import redis

from . import base
from .blobs import StoresBlobs

BLOBS = "ttg:blobs"

_errors = base.translate_errors(redis.ConnectionError, redis.TimeoutError, OSError)


class RedisBlobs(StoresBlobs):
    r: Any  # the connection's client (RedisConnection)

    @_errors
    def put_blob(self, key: str, data: bytes) -> None:
        self.r.hset(BLOBS, key, data)

    @_errors
    def get_blob(self, key: str) -> bytes | None:
        data = self.r.hget(BLOBS, key)
        return None if data is None else bytes(data)

    @_errors
    def drop_blobs(self, dry_run: bool = False) -> list[str]:
        count = int(self.r.hlen(BLOBS))
        if not count:
            return []
        if not dry_run:
            self.r.delete(BLOBS)
        return [f"redis key {BLOBS} ({count} function(s) shipped by value)"]
