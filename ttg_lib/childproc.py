"""The worker's handle on its compute process (:mod:`ttg_lib.child`): start, send, receive,
read the cursor, kill. No policy here: :class:`ttg_lib.supervise.Supervisor` decides."""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from . import child as protocol
from .points import OFFSET, SEQ, UNTRACKED, ChunkOutcome, Job
from .zygote import Zygote

CURSOR_BYTES = 16


class ChildDied(Exception):
    """The compute process ended while it owed results; ``how`` says how it ended."""

    def __init__(self, how: str):
        super().__init__(how)
        self.how = how


def exit_text(code: int | None) -> str:
    """How a process ended, as a point's error: 'signal 9 (SIGKILL)' or 'exit code 3'."""
    if code is None:
        return "ended without an exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"signal {-code} ({name})"
    return f"exit code {code}"


class ComputeChild:
    """One compute process, talking over a socket pair; its cursor (which job, which point)
    is 16 bytes of shared memory the worker reads without asking."""

    def __init__(self, zygote: Zygote | None = None) -> None:
        """Forked by ``zygote`` (a few ms); without one, or if it is gone, a fresh
        interpreter (``python -m ttg_lib.child``)."""
        ours, theirs = socket.socketpair()
        with tempfile.TemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) \
                as backing:  # unlinked already: nothing to clean up, whatever dies
            backing.truncate(CURSOR_BYTES)
            self._map = mmap.mmap(backing.fileno(), CURSOR_BYTES)
            self.cursor = memoryview(self._map).cast("q")
            self.cursor[OFFSET] = UNTRACKED
            self.proc: Any = None
            if zygote is not None:
                with contextlib.suppress(OSError):  # gone: the slow way below
                    self.proc = zygote.spawn((theirs.fileno(), backing.fileno()))
            if self.proc is None:
                args = [str(theirs.fileno()), str(backing.fileno()), str(os.getpid())]
                self.proc = subprocess.Popen([sys.executable, "-m", "ttg_lib.child", *args],
                                             pass_fds=(theirs.fileno(), backing.fileno()),
                                             stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.sent = 0  # jobs sent so far: the n-th one runs with the cursor's SEQ at n
        self.functions: set[str] = set()  # functions shipped by value it has been sent
        self.ready = False  # its hello arrived
        self.cpu_s = 0.0  # the process's CPU seconds, as it last reported them

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def seq(self) -> int:
        return int(self.cursor[SEQ])

    def where(self) -> tuple[int, int]:
        """(jobs started so far, offset of the point running: -1 untracked, -2 waiting)."""
        return int(self.cursor[SEQ]), int(self.cursor[OFFSET])

    def wait_ready(self, timeout: float) -> bool:
        """Until its hello arrives (True) or ``timeout`` passes; ChildDied if it ended."""
        deadline = time.monotonic() + timeout
        while not self.ready and (left := deadline - time.monotonic()) > 0:
            self.receive(left)
        return self.ready

    def send(self, jobs: list[Job]) -> None:
        try:
            self.conn.send(("jobs", jobs))
        except OSError:
            raise ChildDied(self._ended()) from None

    def receive(self, timeout: float) -> list[ChunkOutcome] | None:
        """Outcomes the process sent (None: nothing within ``timeout``); ChildDied if it
        ended."""
        try:
            if not self.conn.poll(timeout):
                if self.proc.poll() is not None:
                    raise ChildDied(self._ended())
                return None
            message: Any = protocol.receive(self.conn)
        except (EOFError, OSError):
            raise ChildDied(self._ended()) from None
        kind, outcomes, self.cpu_s = message
        if kind == "ready":
            self.ready = True
            return []
        return outcomes

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory now (``VmHWM``: its peak) from Linux /proc; 0 where unknown."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def kill(self) -> str:
        """End it now (a hung point); returns how it ended."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        return self._ended()

    def stop(self, timeout: float = 2.0) -> None:
        """Close the pipe (it exits between chunks); kill it if it does not."""
        with contextlib.suppress(OSError):
            self.conn.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._release()

    def _ended(self) -> str:
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:  # the pipe broke but it lives on: end it
            self.proc.kill()
            code = self.proc.wait()
        with contextlib.suppress(OSError):
            self.conn.close()
        return exit_text(code)

    def _release(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self.cursor.release()
            self._map.close()


def may_fork() -> bool:
    """Fork (the zygote: a few ms) instead of starting an interpreter (~0.1-0.7 s) only while
    this process is one thread with no broker connection yet: a fork then copies nothing
    that could deadlock or keep a connection open. Later, the zygote forks for it."""
    return hasattr(os, "fork") and threading.active_count() == 1 and not _connected.is_set()


_connected = threading.Event()


def connected() -> None:
    """The worker has opened its broker connection: from now on, never fork."""
    _connected.set()
