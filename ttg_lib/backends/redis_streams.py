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
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any

import redis

from ..messages import Result, Task, decode_results, encode_results
from . import base
from .base import (
    ConsumerInfo,
    Delivery,
    QueueStat,
    QueueStats,
    dead_letter_record,
    result_key,
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
PUBLISH_BATCH = 500
SCRIPTS = ("complete", "dead_letter", "retry", "promote", "renew_lock", "release_lock",
           "take_over_lock", "release_pending")

_errors = base.translate_errors(redis.ConnectionError, redis.TimeoutError, OSError)


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


class RedisConnection(base.Connection):
    spec = SPEC

    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self.client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    @_errors
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

    @_errors
    def server_version(self) -> str:
        return str(self.r.info("server").get("redis_version", "unknown"))

    def _consumers(self) -> list[ConsumerInfo]:
        try:
            raw = self.r.xinfo_consumers(TASKS, GROUP)
        except redis.ResponseError:  # no stream or group yet
            return []
        return [ConsumerInfo(text(c["name"]), int(c["pending"]), int(c["idle"])) for c in raw]

    @_errors
    def declare(self) -> None:
        try:
            self.r.xgroup_create(TASKS, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class RedisInspector(RedisConnection, base.Inspector, base.ListsConsumers):
    @_errors
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

    @_errors
    def read_dead_letters(self) -> list[dict[str, Any]]:
        records = []
        for _id, fields in self.r.xrange(DLQ, "-", "+"):
            try:
                records.append(json.loads(fields.get(b"d", b"{}")))
            except ValueError:
                records.append({"reason": "unreadable DLQ entry", "body": repr(fields)})
        return records

    @_errors
    def consumers(self) -> list[ConsumerInfo]:
        return self._consumers()


class RedisProducer(RedisInspector, base.Producer, base.ExpiringLock, base.ResultsIndex,
                    base.BrokerDedup, base.FreesDeadConsumers, RedisBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self._results_cursor = "0-0"
        self._lock_values: dict[str, str] = {}  # run id -> the value this process locked with

    @_errors
    def acquire_run(self, run_id: str, owner: str = "") -> None:
        value = self._lock_values.setdefault(run_id, owner or run_id)
        if not self.r.set(RUN_LOCK, value, nx=True, px=RUN_LOCK_TTL_MS):
            holder = self.r.get(RUN_LOCK)
            if holder is not None and holder.decode() != value:
                raise base.RunLocked(f"Redis at {self.display_url} is in use by TTG run "
                                     f"{_lock_run_id(holder.decode())!r}; wait for it (ttg "
                                     f"run --wait) or run 'ttg cleanup --queues' if that run "
                                     f"is gone")

    @_errors
    def lock_owner(self) -> str | None:
        holder = self.r.get(RUN_LOCK)
        return holder.decode() if holder is not None else None

    @_errors
    def take_over_run(self, stale_owner: str, owner: str) -> bool:
        self._lock_values[_lock_run_id(owner)] = owner
        return bool(self._scripts["take_over_lock"](keys=[RUN_LOCK],
                                                    args=[stale_owner, owner, RUN_LOCK_TTL_MS]))

    @_errors
    def renew_run(self, run_id: str) -> None:
        self._scripts["renew_lock"](keys=[RUN_LOCK],
                                    args=[self._lock_values.get(run_id, run_id), RUN_LOCK_TTL_MS])

    @_errors
    def release_run(self, run_id: str) -> None:
        self._scripts["release_lock"](keys=[RUN_LOCK],
                                      args=[self._lock_values.get(run_id, run_id)])

    @_errors
    def lock_holder(self) -> str | None:
        holder = self.r.get(RUN_LOCK)
        return _lock_run_id(holder.decode()) if holder else None

    @_errors
    def release_pending_of(self, consumer: str) -> int:
        """Move the dead consumer's pending entries to ``ttg-freed`` with an idle time far
        past any lease, and delete the consumer (the monitor stops counting it)."""
        idle_ms = 1000 * 1000 * max(1, int(self.lease_s))
        with _group_lost():
            return int(self._scripts["release_pending"](
                keys=[TASKS], args=[GROUP, consumer, FREED, idle_ms]))
        return 0

    @_errors
    def drop_lock(self, dry_run: bool = False) -> list[str]:
        holder = self.lock_holder()
        if holder is None:
            return []
        if not dry_run:
            self.r.delete(RUN_LOCK)
        return [f"redis key {RUN_LOCK} (run {holder})"]

    @_errors
    def publish_tasks(self, tasks: Iterable[Task]) -> int:
        sent = 0
        pipe = self.r.pipeline(transaction=False)
        for task in tasks:
            pipe.xadd(TASKS, {"t": task.encode()})
            sent += 1
            if sent % PUBLISH_BATCH == 0:
                pipe.execute()
        pipe.execute()
        return sent

    @_errors
    def read_results(self, timeout: float) -> list[Result | bytes]:
        block = max(1, int(timeout * 1000))
        reply = self.r.xread({RESULTS: self._results_cursor}, count=1000, block=block)
        out: list[Result | bytes] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._results_cursor = entry_id.decode()
                out.extend(decode_results(fields.get(b"r", b"")))
        return out

    @_errors
    def settle_results(self) -> None:
        """XTRIM MINID just past the last entry read: what was read goes, unread entries stay."""
        if self._results_cursor != "0-0":
            ms, seq = self._results_cursor.split("-")
            self.r.xtrim(RESULTS, minid=f"{ms}-{int(seq) + 1}", approximate=False)

    @_errors
    def stored_chunks(self) -> int:
        return int(self.r.hlen(INDEX))

    def rewind_results(self) -> None:
        self._results_cursor = "0-0"

    @_errors
    def duplicate_count(self) -> int:
        return int(self.r.hget(STATS, "duplicates") or 0)

    @_errors
    def purge(self, dry_run: bool = False) -> list[str]:
        present = [key for key in TTG_KEYS if self.r.exists(key)]
        if not dry_run and present:
            self.r.delete(*present)
            self._results_cursor = "0-0"  # a new stream: its first entry may reuse an old id
        return [f"redis key {key}" for key in present] + self.drop_blobs(dry_run)


class RedisConsumer(RedisConnection, base.Consumer, base.ForgetsConsumers, RedisBlobs):
    def __init__(self, url: str, *, lease_s: float = 2.0):
        super().__init__(url, lease_s=lease_s)
        self._last_sweep = 0.0
        self._idle = True

    @_errors
    def leave(self, consumer: str) -> None:
        """Deleting a consumer drops its pending entries, so only one that holds none goes."""
        mine = [c for c in self._consumers() if c.name == consumer]
        if mine and mine[0].pending == 0:
            self.r.xgroup_delconsumer(TASKS, GROUP, consumer)

    @_errors
    def fetch(self, consumer: str, timeout: float, max_count: int = 1) -> list[Delivery]:
        with _group_lost(self.declare):  # the orchestrator refills the tasks
            return self._fetch(consumer, timeout, max_count)
        return []

    def _fetch(self, consumer: str, timeout: float, max_count: int) -> list[Delivery]:
        now = time.monotonic()
        if now - self._last_sweep >= min(0.5, self.lease_s / 4):
            self._last_sweep = now
            self._scripts["promote"](keys=[RETRY, TASKS])
            stale = self._claim_stale(consumer)
            if stale is not None:
                return [stale]
        if self._idle:  # issue 20: a blocked XREADGROUP creates no consumer (Redis < 7.2),
            # yet a run waiting for workers to join counts them: a waiting worker is one
            self.r.xgroup_createconsumer(TASKS, GROUP, consumer)
        reply = self.r.xreadgroup(GROUP, consumer, {TASKS: ">"}, count=max_count,
                                  block=max(1, int(timeout * 1000)))
        out = [Delivery(body=_task_body(fields), handle=entry_id)
               for _stream, entries in reply or [] for entry_id, fields in entries]
        self._idle = not out
        if not out:
            self._last_sweep = 0.0  # idle: look for stale work again on the next call
        return out

    def _claim_stale(self, consumer: str) -> Delivery | None:
        cursor = "0-0"
        min_idle = int(self.lease_s * 1000)
        for _ in range(100):  # XAUTOCLAIM scans at most 10 x COUNT entries per call
            reply = self.r.xautoclaim(TASKS, GROUP, consumer, min_idle, cursor, count=1)
            cursor, entries = text(reply[0]), reply[1]
            for entry in entries:
                if entry and entry[1] is not None:
                    return Delivery(body=_task_body(entry[1]), handle=entry[0], redelivered=True)
            if cursor == "0-0":
                return None
        return None

    @_errors
    def keepalive(self, consumer: str, deliveries: list[Delivery]) -> None:
        if deliveries:
            with _group_lost():  # nothing left to keep: storing the result still counts
                self.r.xclaim(TASKS, GROUP, consumer, 0, [d.handle for d in deliveries],
                              justid=True)

    @_errors
    def complete(self, done: list[tuple[Delivery, Result]]) -> None:
        if not done:
            return
        args: list[Any] = [GROUP, encode_results([result for _d, result in done])]
        for delivery, result in done:
            args += [delivery.handle, result_key(result)]
        self._scripts["complete"](keys=[TASKS, RESULTS, INDEX, STATS], args=args)

    @_errors
    def retry(self, delivery: Delivery, task: Task, delay_s: float) -> None:
        self._scripts["retry"](keys=[TASKS, RETRY],
                               args=[GROUP, delivery.handle, int(delay_s * 1000), task.encode()])

    @_errors
    def hand_back(self, items: list[tuple[Delivery, Task]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for delivery, task in items:  # a retry due at once: straight back to the stream
            self._scripts["retry"](keys=[TASKS, RETRY],
                                   args=[GROUP, delivery.handle, 0, task.encode()], client=pipe)
        pipe.execute()

    @_errors
    def dead_letter(self, delivery: Delivery, reason: str, attempts: int,
                    failure: Result | None = None) -> None:
        record = dead_letter_record(delivery.body, reason, attempts, time.time())
        self._scripts["dead_letter"](
            keys=[TASKS, RESULTS, INDEX, STATS, DLQ],
            args=[GROUP, delivery.handle,
                  "" if failure is None else result_key(failure),
                  b"" if failure is None else failure.encode(),
                  json.dumps(record)])


Inspector, Producer, Consumer = RedisInspector, RedisProducer, RedisConsumer


@contextlib.contextmanager
def _group_lost(recreate: Callable[[], None] | None = None) -> Iterator[None]:
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


def _task_body(fields: dict[bytes, bytes]) -> bytes:
    """The task JSON, or the whole entry re-encoded so a malformed one can be dead-lettered."""
    if b"t" in fields:
        return fields[b"t"]
    return json.dumps({text(k): text(v) for k, v in fields.items()}).encode()
