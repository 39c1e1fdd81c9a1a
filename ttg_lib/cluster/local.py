"""The embedded default cluster: worker OS processes on this machine.

It behaves like a small Kubernetes Deployment: ``restart="always"`` replaces a
worker that dies (the replacement gets a new name, like a new pod), and every
start, death and replacement is written to the event book for the run record.
Like a liveness probe, it SIGKILLs a worker whose heartbeat is older than
``liveness_s`` (a frozen or wedged process) so that it is replaced too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..procs import Ledger, ProcessEntry, start_ticks
from .base import Cluster, ClusterError, WorkerInfo, WorkerState, WorkerStatus
from .brokers import PrivateBroker, ensure_broker

WORKER_MARKER = "ttg_lib.worker"


class LocalCluster(Cluster):
    kind = "local"

    def __init__(self, *, backend: str, broker_url: str, run_id: str, record_dir: Path,
                 restart: str = "never", lease_s: float = 2.0, liveness_s: float = 0.0,
                 python: str | None = None):
        super().__init__()
        self.backend = backend
        self.broker_url = broker_url
        self.run_id = run_id
        self.record_dir = Path(record_dir)
        self.restart = restart
        self.lease_s = lease_s
        self.liveness_s = liveness_s  # 0: no liveness check
        self._next_liveness = 0.0
        self.python = python or sys.executable
        self.ledger = Ledger(self.record_dir / "processes.jsonl")
        self.private_broker: PrivateBroker | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._info: dict[str, WorkerInfo] = {}
        self._serial = _last_worker_number(self.record_dir)  # a resumed run: new names
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._killed: set[str] = set()
        self._asked: set[str] = set()  # workers sent SIGTERM by request_stop
        self._restart_due: list[tuple[float, str]] = []
        self._crash_streak = 0

    # -- starting ----------------------------------------------------------
    def ensure_brokers(self, timeout: float = 60.0) -> str:
        """The configured broker if it answers; else, on loopback, a private one for this run
        (Redis with AOF on), recorded in the process ledger so cleanup can find it."""
        self.broker_url, broker = ensure_broker(self.backend, self.broker_url, aof=True)
        if broker is not None:
            self.private_broker = broker
            self.ledger.record(ProcessEntry("broker", f"private-{broker.kind}", broker.pid,
                                            start_ticks(broker.pid), broker.data_dir,
                                            self.run_id))
        return self.broker_url

    def release_brokers(self) -> None:
        if self.private_broker is not None:
            self.private_broker.stop()
            self.private_broker = None

    def start_workers(self, count: int) -> list[WorkerInfo]:
        started = [self._spawn() for _ in range(count)]
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._supervise, name="ttg-supervisor",
                                                daemon=True)
            self._supervisor.start()
        return started

    def _spawn(self, replaces: str | None = None) -> WorkerInfo:
        with self._lock:
            self._serial += 1
            name = f"w{self._serial}"
            workers_dir = self.record_dir / "workers"
            workers_dir.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TTG_RUN_ID": self.run_id,
                   "TTG_EXIT_WITH_PARENT": "1"}
            args = [self.python, "-m", WORKER_MARKER, "--backend", self.backend,
                    "--url", self.broker_url, "--run-id", self.run_id, "--name", name,
                    "--lease-s", str(self.lease_s),
                    "--heartbeat-file", str(workers_dir / f"{name}.json")]
            log = (workers_dir / f"{name}.log").open("ab")
            try:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            finally:
                log.close()
            info = WorkerInfo(name=name, ident=str(proc.pid), state=WorkerState.STARTING,
                              started_at=time.time(), replaces=replaces)
            self._procs[name] = proc
            self._info[name] = info
            self.ledger.record(ProcessEntry("worker", name, proc.pid, start_ticks(proc.pid),
                                            WORKER_MARKER, self.run_id))
            detail = f"pid {proc.pid}" + (f", replaces {replaces}" if replaces else "")
            self.book.add("replaced" if replaces else "started", name, detail)
            return info

    # -- watching ----------------------------------------------------------
    def _supervise(self) -> None:
        """Reap dead workers, kill hung ones and, under restart=always, replace them like a
        Deployment.

        A worker that dies soon after starting is replaced with exponential backoff
        (Kubernetes' CrashLoopBackOff), so a broken worker cannot spin the machine.
        """
        while not self._stopping.wait(0.05):
            with self._lock:
                if self._stopping.is_set():
                    return
                for name, proc in list(self._procs.items()):
                    if self._info[name].state.live and proc.poll() is not None:
                        self._reap(name)
                self._kill_hung()
                now = time.monotonic()
                for due, name in [r for r in self._restart_due if r[0] <= now]:
                    self._restart_due.remove((due, name))
                    self._spawn(replaces=name)

    def _reap(self, name: str) -> None:
        """Record a worker's exit, tell the run (its tasks go to others now), replace it."""
        proc, info = self._procs[name], self._info[name]
        info.state, info.ended_at = WorkerState.DEAD, time.time()
        info.exit_code = proc.returncode
        if name not in self._killed:
            self.book.add("died", name, f"exit code {proc.returncode}")
        self.note_exit(name)
        if self.restart == "always":
            self._schedule_restart(info)

    def _kill_hung(self) -> None:
        """The liveness probe: a running worker whose heartbeat is older than liveness_s is
        frozen or wedged (its heartbeat comes from the main thread, which only waits while a
        chunk computes); SIGKILL it so it is replaced. Reconnecting workers are exempt: a
        connection attempt may legitimately block for seconds."""
        now = time.monotonic()
        if not self.liveness_s or now < self._next_liveness:
            return
        self._next_liveness = now + 0.1
        for name, info in self._info.items():
            if info.state != WorkerState.RUNNING or name in self._killed:
                continue
            beat = self._heartbeat(name)
            age = time.time() - float(beat.get("last_heartbeat") or time.time())
            if age <= self.liveness_s or beat.get("state") not in ("ready", "idle", "busy"):
                continue
            chunk = beat.get("current_chunk")
            holds = f", holding chunk {chunk}" if chunk is not None else ""
            self.book.add("hung", name, f"no heartbeat for {age:.1f} s{holds}; "
                                        f"SIGKILL pid {info.ident}")
            self._kill_and_reap(name)

    def _kill_and_reap(self, name: str) -> None:
        """SIGKILL and wait for the exit (milliseconds), so the run hears of it at once."""
        self._killed.add(name)
        proc = self._procs[name]
        proc.send_signal(signal.SIGKILL)
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:  # the supervisor reaps it when it finally goes
            return
        self._reap(name)

    def _schedule_restart(self, info: WorkerInfo) -> None:
        lifetime = (info.ended_at or 0) - info.started_at
        crashed_early = info.name not in self._killed and lifetime < 10
        self._crash_streak = self._crash_streak + 1 if crashed_early else 0
        delay = 0.0 if not crashed_early else min(30.0, 0.5 * 2 ** (self._crash_streak - 1))
        if delay:
            self.book.add("backoff", info.name, f"restart in {delay:.1f}s (crash loop)")
        self._restart_due.append((time.monotonic() + delay, info.name))

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            for name, info in self._info.items():
                if info.state == WorkerState.STARTING and self._heartbeat(name).get(
                        "state") not in (None, "starting"):
                    info.state = WorkerState.RUNNING
            return list(self._info.values())

    def _heartbeat(self, name: str) -> dict:
        path = self.record_dir / "workers" / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def worker_status(self) -> list[WorkerStatus]:
        return [WorkerStatus.of(info, self._heartbeat(info.name)) for info in self.workers()]

    def wait_ready(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [w for w in self.workers() if w.state == WorkerState.RUNNING]
            if len(ready) >= count:
                return
            dead = [w for w in self.workers() if w.state == WorkerState.DEAD]
            if dead and self.restart == "never":
                log = self.record_dir / "workers" / f"{dead[0].name}.log"
                raise ClusterError(f"worker {dead[0].name} exited with code {dead[0].exit_code} "
                                   f"before it was ready; see {log}")
            time.sleep(0.05)  # heartbeat files carry no notification
        laggards = [w.name for w in self.workers() if w.state != WorkerState.RUNNING]
        raise ClusterError(f"workers not ready after {timeout:.0f}s: {', '.join(laggards)} "
                           f"(logs in {self.record_dir / 'workers'})")

    # -- faults and stopping ----------------------------------------------
    def kill_worker(self, name: str | None = None) -> WorkerInfo:
        with self._lock:
            live = [w for w in self.live_workers() if name is None or w.name == name]
            if not live:
                raise ClusterError(f"no live worker named {name!r}" if name else
                                   "no live worker to kill")
            victim = live[0] if name else self.pick_victim(live)
            self.book.add("killed", victim.name, f"SIGKILL pid {victim.ident}")
            self._kill_and_reap(victim.name)
            return victim

    def pick_victim(self, live: list[WorkerInfo]) -> WorkerInfo:
        """The worker that started its chunk last: it is surely mid-chunk, so the fault
        shows what recovery does (a worker between chunks would lose nothing)."""
        beats = {w.name: self._heartbeat(w.name) for w in live}
        busy = [w for w in live if beats[w.name].get("state") == "busy"]
        if not busy:
            return live[0]
        return max(busy, key=lambda w: beats[w.name].get("chunk_started_at") or 0)

    def freeze_worker(self, name: str) -> WorkerInfo:
        """SIGSTOP: the process lives but does nothing (a hung worker)."""
        with self._lock:
            info = self._info[name]
            self._procs[name].send_signal(signal.SIGSTOP)
            self.book.add("frozen", name, f"SIGSTOP pid {info.ident}")
            return info

    def thaw_worker(self, name: str) -> WorkerInfo:
        """SIGCONT: a frozen worker carries on."""
        with self._lock:
            info = self._info[name]
            self._procs[name].send_signal(signal.SIGCONT)
            self.book.add("thawed", name, f"SIGCONT pid {info.ident}")
            return info

    def request_stop(self) -> None:
        """SIGTERM every live worker (once), without waiting for it to exit."""
        with self._lock:
            self._stopping.set()
            procs = [p for name, p in self._procs.items() if name not in self._asked]
            self._asked.update(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a frozen worker cannot act on SIGTERM
                proc.terminate()

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        with self._lock:
            procs = dict(self._procs)
        deadline = time.monotonic() + timeout
        for name, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            info = self._info[name]
            if info.state.live:
                info.state, info.ended_at = WorkerState.STOPPED, time.time()
                info.exit_code = proc.returncode
                self.book.add("stopped", name, f"exit code {proc.returncode}")
        if self._supervisor is not None:
            self._supervisor.join(2)


def _last_worker_number(record_dir: Path) -> int:
    """The highest wN a record's workers/ holds already (0 for a new run), so a resumed run's
    workers never share a name, heartbeat file or log with the dead run's."""
    numbers = [int(p.stem[1:]) for p in (record_dir / "workers").glob("w*.json")
               if p.stem[1:].isdigit()]
    return max(numbers, default=0)
