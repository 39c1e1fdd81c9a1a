"""Redis Streams backend.

Keys (fixed names, all created and deleted only by TTG):

``ttg:tasks``          stream of tasks, consumer group ``ttg-workers``
``ttg:tasks:retry``    sorted set of tasks waiting for their retry time (score = due ms)
``ttg:tasks:dlq``      stream of dead-lettered messages with their reason
``ttg:results``        stream of result frames, one per worker batch (the results queue)
``ttg:results:index``  hash chunk id -> task id: a batch whose chunks are all stored
                       already is dropped (counted as duplicates); the orchestrator
                       dedups a batch that mixes new and already-stored chunks
``ttg:stats``          hash of counters (duplicates)
``ttg:run``            the run lock (expires unless the orchestrator renews it); its value
                       names the owner (JSON: run id, host, pid, process start time)

A worker's lease on its chunk is the pending entry's idle time: the worker
resets it with ``XCLAIM ... JUSTID`` while it computes; an entry idle longer
than ``lease_s`` belongs to a dead or frozen worker and is taken with
XAUTOCLAIM. A worker the orchestrator saw die has its entries moved at once to
the consumer ``ttg-freed`` with their idle time set past any lease, so the next
worker's sweep takes them (``lua/release_pending.lua``). Storing a batch's results,
acking and deleting its tasks is one Lua script (``lua/complete.lua``), so a chunk is
either done in the index or still pending, never both.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any

import redis

from ..messages import Result, Task, decode_results
from . import base
from .base import (
    ConsumerInfo,
    QueueStat,
    QueueStats,
    text,
)
from .redis_blobs import RedisBlobs  # functions shipped by value (issue 20)
from .registry import BackendSpec, KubernetesWorkload, QueueNames
from .tls import ca_file as tls_ca_file  # rediss:// with a CA of your own (issue 20)


def _k8s_secret(password: str, host: str, port: int) -> dict[str, str]:
    """Redis in the cluster runs with ``--requirepass $(REDIS_PASSWORD)``."""
    return {"TTG_REDIS_URL": f"redis://:{password}@{host}:{port}/0", "REDIS_PASSWORD": password}


SPEC = BackendSpec(
    name="redis", title="Redis", module=__name__, client_package="redis",
    url_env="TTG_REDIS_URL", default_url="redis://127.0.0.1:6379/0",
    url_schemes=("redis", "rediss", "unix"), default_port=6379,
    queues=QueueNames.joined(":"), recovery="XAUTOCLAIM after a {lease_s:g} s lease",
    private_broker="ttg_lib.backends.private:start_redis",
    consumer_module="ttg_lib.backends.redis_consumer",
    kubernetes=KubernetesWorkload("Deployment", "ttg-redis", "redis", port=6379,
                                  node_port=30379, secret_key="TTG_REDIS_URL",
                                  secret_entries=_k8s_secret))
TASKS, RETRY, DLQ, RESULTS = SPEC.queues.as_tuple()
INDEX = "ttg:results:index"
STATS = "ttg:stats"
RUN_LOCK = "ttg:run"
GROUP = "ttg-workers"
FREED = "ttg-freed"  # holds a dead worker's entries until a live worker's sweep takes them
TTG_KEYS = (TASKS, RETRY, DLQ, RESULTS, INDEX, STATS)
RUN_LOCK_TTL_MS = 15_000
SCRIPTS = ("complete", "dead_letter", "retry", "promote", "renew_lock", "release_lock",
           "take_over_lock", "release_pending")

redis_errors = base.translate_errors(redis.ConnectionError, redis.TimeoutError, OSError)


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


class RedisConnection(base.Connection):
    spec = SPEC

    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self.client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    @redis_errors
    def connect(self) -> None:
        tls = {"ssl_ca_certs": tls_ca_file()} if self.url.startswith("rediss:") else {}
        self.client = redis.Redis.from_url(
            self.url, socket_timeout=10, socket_connect_timeout=3, retry_on_timeout=False,
            **tls, **_zero_copy_packer())
        self.client.ping()
        self._scripts = {name: self.client.register_script(_lua(name)) for name in SCRIPTS}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    @property
    def r(self) -> redis.Redis:
        if self.client is None:
            raise base.BrokerUnavailable(f"Redis at {self.display_url}: not connected")
        return self.client

    @redis_errors
    def server_version(self) -> str:
        return str(self.r.info("server").get("redis_version", "unknown"))

    def _consumers(self) -> list[ConsumerInfo]:
        try:
            raw = self.r.xinfo_consumers(TASKS, GROUP)
        except redis.ResponseError:  # no stream or group yet
            return []
        return [ConsumerInfo(text(c["name"]), int(c["pending"]), int(c["idle"])) for c in raw]

    @redis_errors
    def declare(self) -> None:
        try:
            self.r.xgroup_create(TASKS, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class RedisInspector(RedisConnection, base.Inspector, base.ListsConsumers):
    @redis_errors
    def stats(self) -> QueueStats:
        pipe = self.r.pipeline(transaction=False)
        pipe.xlen(TASKS)
        pipe.zcard(RETRY)
        pipe.xlen(DLQ)
        pipe.xlen(RESULTS)
        tasks_len, retry_len, dlq_len, results_len = pipe.execute()
        consumers = self._consumers()
        pending = sum(c.pending for c in consumers)
        live = sum(c.name != FREED and c.idle_ms < 2 * self.lease_s * 1000 for c in consumers)
        return QueueStats(
            tasks=QueueStat(TASKS, tasks_len, tasks_len - pending, pending, live),
            retry=QueueStat(RETRY, retry_len, retry_len, 0, 0),
            dlq=QueueStat(DLQ, dlq_len, dlq_len, 0, 0),
            results=QueueStat(RESULTS, results_len, results_len, 0, 0),
        )

    @redis_errors
    def read_dead_letters(self) -> list[dict[str, Any]]:
        records = []
        for _id, fields in self.r.xrange(DLQ, "-", "+"):
            try:
                records.append(json.loads(fields.get(b"d", b"{}")))
            except ValueError:
                records.append({"reason": "unreadable DLQ entry", "body": repr(fields)})
        return records

    @redis_errors
    def consumers(self) -> list[ConsumerInfo]:
        return self._consumers()


class RedisProducer(RedisInspector, base.Producer, base.ExpiringLock, base.ResultsIndex,
                    RedisBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self._results_cursor = "0-0"
        self._points_per_entry = 0.0  # what a results entry has held so far (0: not known)
        self._lock_values: dict[str, str] = {}  # run id -> the value this process locked with

    @redis_errors
    def acquire_run(self, run_id: str, owner: str = "") -> None:
        value = self._lock_values.setdefault(run_id, owner or run_id)
        if not self.r.set(RUN_LOCK, value, nx=True, px=RUN_LOCK_TTL_MS):
            holder = self.r.get(RUN_LOCK)
            if holder is not None and holder.decode() != value:
                raise base.RunLocked(f"Redis at {self.display_url} is in use by TTG run "
                                     f"{_lock_run_id(holder.decode())!r}; wait for it (ttg "
                                     f"run --wait) or run 'ttg cleanup --queues' if that run "
                                     f"is gone")

    @redis_errors
    def lock_owner(self) -> str | None:
        holder = self.r.get(RUN_LOCK)
        return holder.decode() if holder is not None else None

    @redis_errors
    def take_over_run(self, stale_owner: str, owner: str) -> bool:
        self._lock_values[_lock_run_id(owner)] = owner
        return bool(self._scripts["take_over_lock"](keys=[RUN_LOCK],
                                                    args=[stale_owner, owner, RUN_LOCK_TTL_MS]))

    @redis_errors
    def keep_run(self, run_id: str) -> None:
        """The lock expires unless renewed: it outlives a crashed holder, not a live one."""
        self._scripts["renew_lock"](keys=[RUN_LOCK],
                                    args=[self._lock_values.get(run_id, run_id), RUN_LOCK_TTL_MS])

    @redis_errors
    def release_run(self, run_id: str) -> None:
        self._scripts["release_lock"](keys=[RUN_LOCK],
                                      args=[self._lock_values.get(run_id, run_id)])

    @redis_errors
    def lock_holder(self) -> str | None:
        holder = self.r.get(RUN_LOCK)
        return _lock_run_id(holder.decode()) if holder else None

    @redis_errors
    def free(self, consumer: str) -> int:
        """Move the dead consumer's pending entries to ``ttg-freed`` with an idle time far
        past any lease, and delete the consumer (the monitor stops counting it)."""
        idle_ms = 1000 * 1000 * max(1, int(self.lease_s))
        with group_lost():
            return int(self._scripts["release_pending"](
                keys=[TASKS], args=[GROUP, consumer, FREED, idle_ms]))
        return 0

    @redis_errors
    def drop_lock(self, dry_run: bool = False) -> list[str]:
        holder = self.lock_holder()
        if holder is None:
            return []
        if not dry_run:
            self.r.delete(RUN_LOCK)
        return [f"redis key {RUN_LOCK} (run {holder})"]

    @redis_errors
    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        sent = 0
        pipe = self.r.pipeline(transaction=False)
        for batch in base.publish_batches(tasks):
            for task in batch:
                pipe.xadd(TASKS, {"t": task.encode()})
            pipe.execute()
            sent += len(batch)
        return sent

    READ_POINTS = 1 << 18  # values one read brings at most, about what a second's flush holds

    @redis_errors
    def read_results(self, timeout: float) -> list[Result | bytes]:
        """A read is bounded in points, not entries: an entry holds a worker's batch, and
        1,000 entries of 10,000-point chunks were 10^7 values in the orchestrator at once when
        the workers ran ahead (10^8 runs went past 300 MiB)."""
        count = (max(1, min(1000, int(self.READ_POINTS / self._points_per_entry)))
                 if self._points_per_entry else 16)
        reply = self.r.xread({RESULTS: self._results_cursor}, count=count,
                             block=block_ms(timeout))
        out: list[Result | bytes] = []
        entries_read = 0
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._results_cursor = entry_id.decode()
                out.extend(decode_results(fields.get(b"r", b"")))
                entries_read += 1
        if entries_read:
            points = sum(r.count for r in out if isinstance(r, Result))
            self._points_per_entry = max(1.0, points / entries_read)
        return out

    @redis_errors
    def settle_results(self) -> None:
        """XTRIM MINID just past the last entry read: what was read goes, unread entries stay."""
        if self._results_cursor != "0-0":
            ms, seq = self._results_cursor.split("-")
            self.r.xtrim(RESULTS, minid=f"{ms}-{int(seq) + 1}", approximate=False)

    @redis_errors
    def stored_chunks(self) -> int:
        return int(self.r.hlen(INDEX))

    def rewind_results(self) -> None:
        self._results_cursor = "0-0"

    @redis_errors
    def final_counts(self) -> base.FinalCounts:
        """The index drops a duplicate result before it is stored, and counts it."""
        counts = super().final_counts()
        return base.FinalCounts(counts.stats, counts.dead_letters,
                                int(self.r.hget(STATS, "duplicates") or 0))

    @redis_errors
    def purge(self, dry_run: bool = False) -> list[str]:
        present = [key for key in TTG_KEYS if self.r.exists(key)]
        if not dry_run and present:
            self.r.delete(*present)
            self._results_cursor = "0-0"  # a new stream: its first entry may reuse an old id
        return [f"redis key {key}" for key in present] + self.drop_blobs(dry_run)


Inspector, Producer = RedisInspector, RedisProducer  # Consumer: redis_consumer.py


@contextlib.contextmanager
def group_lost(recreate: Callable[[], None] | None = None) -> Iterator[None]:
    """A Redis that restarted without its data has no consumer group (NOGROUP), and a new
    run's purge deletes the stream under a worker blocked on it (UNBLOCKED: a worker that
    joined from another host waits across runs): a worker recreates it (``recreate``) or
    lets the operation go, instead of crashing."""
    try:
        yield
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
            raise
        if recreate is not None:
            recreate()


def block_ms(timeout: float) -> int | None:
    """XREAD's BLOCK for a wait of ``timeout`` s; None (no BLOCK) for no wait at all. Redis
    times blocked clients out in its cron (hz 10), so even BLOCK 1 can wait ~100 ms: a caller
    that must not wait (a worker looking ahead while it computes) must not block."""
    return max(1, int(timeout * 1000)) if timeout > 0 else None


def _zero_copy_packer() -> dict[str, Any]:
    """redis-py's pure-Python packer sends a large argument as is; hiredis's copies it into
    one buffer, ~1 ms for a 500 KB result frame against ~0.04 ms. hiredis still parses
    replies."""
    try:
        from redis.connection import Encoder, PythonRespSerializer
    except ImportError:  # a redis-py without them: its default packer works, only slower
        return {}
    encode = Encoder("utf-8", "strict", False).encode
    return {"command_packer": PythonRespSerializer(6000, encode)}


def _lock_run_id(value: str) -> str:
    """The run id in a lock value: an owner record (JSON) or, from older TTG, the bare id."""
    try:
        return str(json.loads(value)["run_id"])
    except (ValueError, TypeError, KeyError):
        return value
