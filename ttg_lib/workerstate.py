"""What a worker is told and what it reports about itself: its settings (flags, TTG_*
variables), its heartbeat file, how many chunks it takes per round trip, where its CPU went."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import DEFAULT_BACKEND, REGISTRY
from .errors import ConfigError
from .procs import peak_rss_mib


@dataclass
class WorkerSettings:
    backend: str
    url: str
    run_id: str
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_s: float = 2.0
    heartbeat_file: str | None = None
    max_chunks: int = 0  # 0 = until stopped; used by tests
    idle_exit_s: float = 0.0  # 0 = never exit when idle
    exit_with_parent: bool = False  # local cluster: an orphaned worker stops by itself
    kill_on_sigterm: bool = False  # Kubernetes: SIGTERM ends the process at once (exit 137)
    isolate: bool = True  # compute in a child process (crashes and hangs contained)

    @property
    def renew_every(self) -> float:
        return max(0.05, self.lease_s / 5)

    @classmethod
    def from_env(cls, **overrides: Any) -> WorkerSettings:
        backend = overrides.get("backend") or os.environ.get("TTG_BACKEND", DEFAULT_BACKEND)
        values: dict[str, Any] = {
            "backend": backend,
            "url": REGISTRY[backend].url() if backend in REGISTRY else "",
            "run_id": os.environ.get("TTG_RUN_ID", ""),
            "lease_s": _env_seconds("TTG_LEASE_S", 2.0),
            "heartbeat_file": os.environ.get("TTG_HEARTBEAT_FILE") or None,
            "exit_with_parent": os.environ.get("TTG_EXIT_WITH_PARENT") == "1",
            "kill_on_sigterm": os.environ.get("TTG_KILL_ON_SIGTERM") == "1",
            "isolate": os.environ.get("TTG_ISOLATE", "1") != "0",
        }
        if os.environ.get("TTG_WORKER_NAME"):
            values["name"] = os.environ["TTG_WORKER_NAME"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(name, raw, "a number of seconds greater than 0")
    return value


class Heartbeat:
    """A small JSON file rewritten atomically: liveness probes and the live worker table."""

    def __init__(self, path: str | None, name: str,
                 peak_rss: Callable[[], float] = peak_rss_mib):
        self.path = Path(path) if path else None
        self._peak_rss = peak_rss  # the worker's: with its compute process's
        self.state: dict[str, Any] = {"name": name, "pid": os.getpid(), "state": "starting",
                                      "chunks_done": 0, "current_chunk": None,
                                      "started_at": time.time()}
        self._last = 0.0
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    EVERY_S = 0.25  # writing the file costs ~0.5 ms on overlay filesystems
    FORCED_EVERY_S = 0.1

    def beat(self, force: bool = False, **changes: Any) -> None:
        """Record state; write at most every EVERY_S (a forced beat: every FORCED_EVERY_S,
        so a chunk that takes longer than that is always seen as busy)."""
        self.state.update(changes)
        now = time.time()
        if self.path is None or now - self._last < (self.FORCED_EVERY_S if force
                                                    else self.EVERY_S):
            return
        self._last = now
        self.state["last_heartbeat"] = now
        self.state["peak_rss_mib"] = self._peak_rss()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)


class BatchSizer:
    """How many task messages to take per round trip: one when they are slow (fair shares, a
    killed worker holds one), more when they are fast, so the broker is not the bottleneck.
    A batch holds about TARGET_S of work, which bounds the imbalance it can cause, and at
    most MAX_CHUNKS chunks (bundles): its result frame stays small enough for the
    orchestrator to check one while the next is computed."""

    TARGET_S = 0.02
    MAX = 64
    MAX_CHUNKS = 256

    def __init__(self) -> None:
        self.ema_s: float | None = None
        self._size = 1
        self._chunks = 1.0  # a message's, smoothed

    def observe(self, seconds: float, chunks: int = 1) -> None:
        """One message's compute time, and how many chunks it held."""
        chunks = max(1, chunks)
        if self.ema_s is None:
            self.ema_s, self._chunks = seconds, float(chunks)
            return
        self.ema_s = 0.7 * self.ema_s + 0.3 * seconds
        # smoothed too: tasks and recomputations travel in bundles of different sizes, and a
        # size flipping with each costs RabbitMQ a re-subscribe (its prefetch requeued)
        self._chunks = 0.7 * self._chunks + 0.3 * chunks

    @property
    def fast(self) -> bool:
        """Chunks this quick need no lease renewal while they run: compute them inline."""
        return self.ema_s is not None and self.ema_s < 0.005

    @property
    def size(self) -> int:
        if self.ema_s is None:
            return 1
        wanted = max(1, min(self.MAX, int(self.MAX_CHUNKS / self._chunks),
                            int(self.TARGET_S / max(self.ema_s, 1e-6))))
        if wanted >= 2 * self._size or wanted * 4 <= self._size:  # hysteresis: a change
            self._size = 1 << (wanted.bit_length() - 1)  # costs RabbitMQ a re-subscribe
        return self._size


class CpuMeter:
    """CPU seconds this worker spent since it was ready (its own and its compute process's),
    and how much of it went to the user's function (``compute_s``, as the compute process
    measured it): the rest is TTG's overhead, measured."""

    def __init__(self) -> None:
        self._start = 0.0
        self.compute_s = 0.0

    def start(self) -> None:
        self._start = time.process_time()

    def snapshot(self, child_cpu_s: float = 0.0) -> dict[str, float]:
        return {"cpu_s": round(time.process_time() - self._start + child_cpu_s, 4),
                "compute_cpu_s": round(self.compute_s, 4)}
