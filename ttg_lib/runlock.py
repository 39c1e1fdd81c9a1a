"""Who holds the broker: the run lock's owner, taken over when dead, waited for when live.

Two runs never share a broker's queues, so a run takes the broker's run lock first. The
lock records its owner (run id, host, pid, process start time). A new run on the same host
can then tell a dead holder (a SIGKILLed ``ttg run``) from a live one: a dead holder's lock
is taken over at once, with its leftover workers stopped, instead of blocking the broker
until the lock expires; a live holder is waited for (``wait``) or named in the error.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .backends import ExpiringLock, Producer, ResultsIndex, RunLocked
from .procs import start_ticks

WAIT_POLL_S = 0.5
WAIT_REPORT_EVERY_S = 10.0
RECORD_LOCK = "orchestrator.lock"


@dataclass(frozen=True)
class LockOwner:
    run_id: str
    host: str = ""
    pid: int = 0
    start_ticks: int | None = None
    output_dir: str = ""  # where the run's record (and process ledger) lives

    @classmethod
    def this_process(cls, run_id: str, output_dir: Path | str = "") -> LockOwner:
        pid = os.getpid()
        return cls(run_id, socket.gethostname(), pid, start_ticks(pid),
                   str(Path(output_dir).resolve()) if output_dir else "")

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> LockOwner:
        """An owner record, or (older TTG, RabbitMQ without its management API) just a run id
        or nothing: an owner that cannot be proven dead."""
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError):
            return cls(run_id=text)

    def gone(self) -> bool:
        """True only when provably dead: on this host, and no process with that pid and
        start time runs (a reused pid has another start time). Elsewhere: unknown, False."""
        if not self.pid or self.host != socket.gethostname():
            return False
        return start_ticks(self.pid) != self.start_ticks

    def describe(self) -> str:
        name = f"TTG run {self.run_id}" if self.run_id else "another TTG run"
        return name + (f" (pid {self.pid} on {self.host})" if self.pid else "")


def acquire(backend: Producer, owner: LockOwner, *, wait: bool = False,
            say: Callable[[str], None] = print,
            progress: Callable[[], str] | None = None) -> None:
    """Take the broker's run lock for ``owner``: at once when free; by taking it over when
    its holder is provably gone (say so in one line, stop the dead run's workers); after a
    live holder ends when ``wait`` (a line every WAIT_REPORT_EVERY_S naming the holder and
    its progress); else raise RunLocked."""
    next_report = time.monotonic()
    while True:
        try:
            backend.acquire_run(owner.run_id, owner.encode())
            return
        except RunLocked:
            raw = backend.lock_owner()
            if raw is None:
                continue  # released between the two calls: try again
            holder = LockOwner.decode(raw)
            if holder.gone() and isinstance(backend, ExpiringLock):
                # a lock tied to its connection is gone with a dead holder: only an expiring
                # one can outlive it
                if backend.take_over_run(raw, owner.encode()):
                    stopped = stop_leftover_workers(holder)
                    say(f"{holder.describe()} is gone; taking over its lock"
                        + (f" (stopped {stopped} of its workers)" if stopped else ""))
                    return
                continue  # someone else changed the lock meanwhile: look again
            if not wait:
                raise
            now = time.monotonic()
            if now >= next_report:
                next_report = now + WAIT_REPORT_EVERY_S
                done = f": {progress()}" if progress is not None else ""
                say(f"waiting for {holder.describe()} to finish{done}")
            time.sleep(WAIT_POLL_S)  # the holder is another process: nothing to wait on


def stop_leftover_workers(holder: LockOwner) -> int:
    """The dead run's workers may still be running (exiting as orphans): stop them now, by
    its process ledger, so none takes a task of the new run."""
    if not holder.output_dir:
        return 0
    from .cleanup import CleanupReport, cleanup_processes

    report = CleanupReport(dry_run=False)
    cleanup_processes(Path(holder.output_dir), holder.run_id, False, report)
    return sum(1 for line in report.removed if line.startswith("worker"))


def broker_progress(backend: Producer) -> str:
    """The holder's progress as the broker shows it: tasks left and results stored."""
    tasks = backend.stats().tasks
    parts = [f"{tasks.messages:,} tasks left" if tasks.messages is not None else
             f"{tasks.ready:,} tasks left waiting (in flight: unknown)"]
    if isinstance(backend, ResultsIndex):
        parts.append(f"{backend.stored_chunks():,} chunks stored")
    return ", ".join(parts)


class RecordLock:
    """One orchestrator per run record: an ``flock`` on ``<record>/orchestrator.lock``, held
    for the run's life. The kernel drops it when its process dies (SIGKILL included), so
    taking it proves that no other orchestrator of this record is alive on this machine: only
    then may the record be changed, or the old run's workers be stopped."""

    def __init__(self, record_dir: Path):
        self.path = Path(record_dir) / RECORD_LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self, owner: LockOwner, *, wait: bool = False,
             say: Callable[[str], None] = print) -> None:
        """Take the lock, or raise RunLocked naming the live holder (``wait``: poll until it
        lets go, a line every WAIT_REPORT_EVERY_S)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        next_report = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            holder = LockOwner.decode(os.pread(fd, 4096, 0).decode(errors="replace"))
            if not wait:
                os.close(fd)
                raise RunLocked(f"the record of run {owner.run_id} ({self.path.parent}) is in "
                                f"use by {holder.describe()}: one orchestrator per run record "
                                f"(wait for it, or pass --wait)")
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + WAIT_REPORT_EVERY_S
                say(f"waiting for {holder.describe()} to let go of the record "
                    f"{self.path.parent}")
            time.sleep(WAIT_POLL_S)  # the holder is another process: nothing to wait on
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode().encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
