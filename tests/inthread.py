"""Workers as threads on the in-memory backend: the local cluster's contract without
processes or a broker, so the worker loop and the run's own logic run in the unit layer."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

from ttg_lib.backends import open_consumer, open_producer
from ttg_lib.backends.memory import MemoryProducer
from ttg_lib.cluster import Cluster, ClusterError, WorkerInfo, WorkerState
from ttg_lib.worker import Worker, WorkerSettings


def memory_broker(name: str) -> Iterator[tuple[str, MemoryProducer]]:
    """An in-memory broker of a test's own (a fresh url), its queues declared: the url and a
    producer on it, closed after (a fixture's ``yield from``)."""
    url = f"memory://{name}-{uuid.uuid4().hex}"
    producer = cast(MemoryProducer, open_producer("memory", url))
    producer.connect()
    producer.declare()
    yield url, producer
    producer.close()


def thread_worker(url: str, run_id: str = "", name: str = "u1", lease_s: float = 0.5,
                  **settings: Any) -> tuple[Worker, threading.Thread]:
    """A worker on the memory broker at ``url``, running on a daemon thread of its own."""
    worker = Worker(WorkerSettings(backend="memory", url=url, run_id=run_id, name=name,
                                   lease_s=lease_s, **settings),
                    open_consumer("memory", url, lease_s=lease_s))
    worker.FETCH_WAIT_S = 0.05  # a stop is seen at once: the unit layer stays fast
    thread = threading.Thread(target=worker.run, name=f"worker-{name}", daemon=True)
    thread.start()
    return worker, thread


class ThreadCluster(Cluster):
    kind = "threads"

    def __init__(self, url: str, run_id: str, lease_s: float = 0.5):
        super().__init__()
        self.url, self.run_id, self.lease_s = url, run_id, lease_s
        self.live: dict[str, tuple[Worker, threading.Thread, WorkerInfo]] = {}
        self.gone: list[WorkerInfo] = []

    def ensure_brokers(self, timeout: float) -> str:
        return self.url

    def start_workers(self, count: int) -> list[WorkerInfo]:
        return [self._spawn(f"t{len(self.live) + len(self.gone) + 1}") for _ in range(count)]

    def _spawn(self, name: str) -> WorkerInfo:
        worker, thread = thread_worker(self.url, self.run_id, name, self.lease_s)
        info = WorkerInfo(name=name, ident=name, state=WorkerState.RUNNING,
                          started_at=time.time())
        self.live[name] = (worker, thread, info)
        self.book.add("started", name)
        return info

    def workers(self) -> list[WorkerInfo]:
        return [info for _w, _t, info in self.live.values()] + self.gone

    def wait_ready(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while sum(w.heartbeat.state["state"] != "starting"
                  for w, _t, _i in self.live.values()) < count:
            if time.monotonic() > deadline:
                raise ClusterError("thread workers not ready")
            time.sleep(0.01)  # the worker thread sets its state without notification

    def kill_worker(self, name: str | None = None) -> WorkerInfo:
        """Like SIGKILL: the worker's connection drops with whatever it held."""
        name = name or next(iter(self.live))
        worker, _thread, info = self.live.pop(name)
        worker.stopping.set()
        worker.backend.sever()  # type: ignore[attr-defined]  # a MemoryConsumer
        info.state, info.ended_at = WorkerState.DEAD, time.time()
        self.gone.append(info)
        self.book.add("killed", name)
        return info

    def stop(self, timeout: float = 10.0) -> None:
        for worker, _thread, _info in self.live.values():
            worker.stopping.set()  # all at once: each finishes its fetch in parallel
        for name in list(self.live):
            _worker, thread, info = self.live.pop(name)
            thread.join(timeout)
            info.state, info.ended_at = WorkerState.STOPPED, time.time()
            self.gone.append(info)
            self.book.add("stopped", name)
