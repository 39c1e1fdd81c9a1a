"""The compute processes' fork server: a new one in a few ms, not a fresh interpreter's ~0.7 s.

A worker forks nothing once it holds a broker connection or a second thread (a fork would
copy them: :func:`ttg_lib.childproc.may_fork`), and a crashing point or ``--recycle-after``
replaces its compute process again and again. So before it connects the worker forks this
small single-threaded process (or, when it is too late for that, starts it with
``python -m ttg_lib.zygote``), which imports the compute modules once and forks each compute
process on request, handed its socket and cursor fds over SCM_RIGHTS. The user's module is
never imported here: each compute process imports it afresh, as before.

The zygote is the compute processes' parent: it reaps them, reports each exit status to the
worker, and kills one only on the worker's request and only while it is its own unreaped
child (a pid is never reused under it). It dies with its worker (PDEATHSIG, or the socket's
end-of-file), and its compute processes die with it (theirs).

Protocol (one datagram each, SOCK_SEQPACKET): worker -> zygote ``spawn`` (with the two fds),
``kill PID``; zygote -> worker ``pid PID`` (the answer to a spawn), ``exit PID CODE``
(``CODE`` as :attr:`subprocess.Popen.returncode`: negative for a signal).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

SPAWN_TIMEOUT_S = 30.0


class Forked:
    """A process forked to run ``target`` (its return value is the exit code), with the
    face of the ``subprocess.Popen`` used otherwise (pid, poll, wait, kill, returncode)."""

    def __init__(self, target: Callable[[], int]):
        self.returncode: int | None = None
        pid = os.fork()
        if pid == 0:  # never returns into the caller's code
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the worker's handler
                code = target()
            finally:
                os._exit(code)
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"process {self.pid}", timeout or 0)
            time.sleep(0.005)
        return code

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


class Zygote:
    """The worker's side: start the fork server, ask it for compute processes."""

    def __init__(self, fork: bool):
        """``fork``: this process may fork (one thread, no connection); else exec."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = os.getpid()
        if fork:
            def target() -> int:
                ours.close()
                return serve(theirs, worker)

            self.proc: Forked | subprocess.Popen[bytes] = Forked(target)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ttg_lib.zygote", str(theirs.fileno()), str(worker)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.sock = ours
        self.alive = True
        self._lock = threading.Lock()
        self._spawned: list[int] = []  # answers to spawn requests, not taken yet
        self._codes: dict[int, int] = {}  # exit codes reported, not taken yet
        self._live: set[int] = set()  # spawned, no exit reported

    def spawn(self, fds: tuple[int, int]) -> ZygoteChild:
        """A new compute process, given ``fds`` (its socket, its cursor); OSError if the
        zygote is gone or does not answer."""
        with self._lock:
            try:
                if not self.alive:
                    raise OSError("the zygote is gone")
                socket.send_fds(self.sock, [b"spawn"], list(fds))
                deadline = time.monotonic() + SPAWN_TIMEOUT_S
                while not self._spawned:
                    if not self.alive or not self._read(deadline - time.monotonic()):
                        raise OSError("the zygote did not start a compute process")
            except OSError:
                self._lost()  # the supervisor starts another one
                raise
            pid = self._spawned.pop(0)
            self._live.add(pid)
        return ZygoteChild(self, pid)

    def exit_code(self, pid: int, timeout: float = 0.0) -> int | None:
        """``pid``'s exit code once the zygote reported it (waiting up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while pid not in self._codes and self.alive:
                if not self._read(max(0.0, deadline - time.monotonic())):
                    break
            return self._codes.pop(pid, None)

    def kill(self, pid: int) -> None:
        """SIGKILL ``pid``, by its parent, if it has not been reaped yet."""
        with self._lock, contextlib.suppress(OSError):
            if pid in self._live:
                self.sock.send(b"kill %d" % pid)

    def close(self, timeout: float = 2.0) -> None:
        """End it: it kills and reaps any compute process it still has, then exits."""
        with contextlib.suppress(OSError):
            self.sock.close()
        self._lost()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _read(self, timeout: float) -> bool:
        """One message within ``timeout`` (False: none came or the zygote is gone)."""
        try:
            self.sock.settimeout(timeout if timeout > 0 else 0.0)
            message = self.sock.recv(64)
        except (BlockingIOError, TimeoutError):
            return False
        except OSError:
            message = b""
        if not message:
            self._lost()
            return False
        kind, *numbers = message.split()
        if kind == b"pid":
            self._spawned.append(int(numbers[0]))
        elif kind == b"exit":
            self._live.discard(int(numbers[0]))
            self._codes[int(numbers[0])] = int(numbers[1])
        return True

    def _lost(self) -> None:
        """Gone or closed: its compute processes die with it (PDEATHSIG: SIGKILL)."""
        self.alive = False
        self._codes.update((pid, -signal.SIGKILL) for pid in self._live)
        self._live.clear()


class ZygoteChild:
    """A compute process the zygote forked, with the face of ``subprocess.Popen``."""

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote = zygote
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.exit_code(
                self.pid, SPAWN_TIMEOUT_S * 100 if timeout is None else timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"compute process {self.pid}", timeout or 0)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.zygote.kill(self.pid)


def serve(sock: socket.socket, worker: int) -> int:
    """The zygote's loop: fork on request, reap, report; end when the worker does."""
    from .child import die_with_parent

    die_with_parent(worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from . import child  # noqa: F401  (the point of a zygote: imported once, here)

    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below
    live: set[int] = set()
    while True:
        ready = select.select([sock, wake_r], [], [])[0]
        if wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(wake_r, 512)
        _reap(sock, live)
        if sock not in ready:
            continue
        try:
            message, fds, _flags, _addr = socket.recv_fds(sock, 64, 2)
        except OSError:
            message, fds = b"", []
        if not message:
            break  # the worker closed its end, or died
        kind, *numbers = message.split()
        if kind == b"spawn" and len(fds) == 2:
            pid = _fork_compute(sock, (fds[0], fds[1]), (wake_r, wake_w))
            live.add(pid)
            with contextlib.suppress(OSError):
                sock.send(b"pid %d" % pid)
        elif kind == b"kill" and int(numbers[0]) in live:  # ours, and not reaped: safe
            os.kill(int(numbers[0]), signal.SIGKILL)
        for fd in fds:
            os.close(fd)
    for pid in live:  # nothing of ours outlives the worker
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in live:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return 0


def _reap(sock: socket.socket, live: set[int]) -> None:
    while live:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        live.discard(pid)
        with contextlib.suppress(OSError):
            sock.send(b"exit %d %d" % (pid, os.waitstatus_to_exitcode(status)))


def _fork_compute(sock: socket.socket, fds: tuple[int, int], wake: tuple[int, int]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the compute process: never returns into the zygote's loop
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sock.close()
            for fd in wake:
                os.close(fd)
            from .child import main

            code = main([str(fds[0]), str(fds[1]), str(parent)])
        finally:
            os._exit(code)
    return pid


if __name__ == "__main__":
    sys.exit(serve(socket.socket(fileno=int(sys.argv[1])), int(sys.argv[2])))
