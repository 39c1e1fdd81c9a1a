"""The compute process: runs the user's function for its worker, and nothing else.

``python -m ttg_lib.child CONN_FD CURSOR_FD PARENT_PID``, started by
:class:`ttg_lib.childproc.ComputeChild` (or forked by :mod:`ttg_lib.zygote`, its parent then).
It holds no broker connection, so whatever the function does to this process (a segfault,
``os._exit``, the OOM killer, an endless loop) leaves its worker standing: the worker sees
the pipe close, reads the cursor to learn which point was running, and starts another one.

Protocol (pickles over a socket pair): the child says ``("ready", [], cpu_s)`` once it has
started; the worker sends ``("jobs", [Job, ...])``; the child
answers ``("done", [ChunkOutcome, ...], cpu_s)`` in order, in one or more messages (it
flushes at least every FLUSH_S, so a slow batch's finished chunks are never lost to a crash
later in it); ``("stop",)`` or a closed pipe ends it. The child's messages travel as
:func:`send` frames them: the packed values out of band, written from where they lie and
read into one buffer the worker's results point into (no copy into and out of a pickle).
"""

from __future__ import annotations

import ctypes
import faulthandler
import mmap
import os
import pickle
import signal
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from .points import OFFSET, SEQ, TRACK_ABOVE_S, UNTRACKED, ChunkOutcome, Job, compute_job

FLUSH_S = 0.05
CURSOR_BYTES = 16


def main(argv: list[str]) -> int:
    conn_fd, cursor_fd, parent = int(argv[0]), int(argv[1]), int(argv[2])
    die_with_parent(parent)
    faulthandler.enable()  # a segfault's Python stack goes to the worker's log
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    cursor = memoryview(mmap.mmap(cursor_fd, CURSOR_BYTES)).cast("q")
    conn = Connection(conn_fd)
    send(conn, ("ready", [], time.process_time()))
    return ChildLoop(conn, cursor).serve()


class ChildLoop:
    def __init__(self, conn: Connection, cursor: Any):
        self.conn = conn
        self.cursor = cursor
        self.slow = True  # the first chunk is tracked: its pace decides the next ones

    def serve(self) -> int:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return 0  # the worker is gone
            if message[0] != "jobs":
                return 0
            self.run(message[1])

    def run(self, jobs: list[Job]) -> None:
        buffer: list[ChunkOutcome] = []
        flushed = time.monotonic()
        for job in jobs:
            self.cursor[OFFSET] = UNTRACKED
            self.cursor[SEQ] += 1
            buffer.append(self.one(job))
            if time.monotonic() - flushed >= FLUSH_S:
                self.send(buffer)
                buffer, flushed = [], time.monotonic()
        self.send(buffer)

    def send(self, outcomes: list[ChunkOutcome]) -> None:
        send(self.conn, ("done", outcomes, time.process_time()))

    def one(self, job: Job) -> ChunkOutcome:
        outcome = compute_job(job, tracked=self.slow, cursor=self.cursor)
        spent = outcome.finished_at - outcome.started_at
        self.slow = spent / max(1, job.task.count) >= TRACK_ABOVE_S
        return outcome


_COUNT, _SIZE = struct.Struct("<I"), 8  # a frame's buffer count; each buffer's size (<Q)
_IOV_MAX = 512  # buffers a writev takes at a time (Linux allows 1,024)


def send(conn: Connection, message: Any) -> None:
    """``message`` as one frame (the pickle, with its out-of-band buffers' count and sizes
    ahead of it), then those buffers (:class:`~ttg_lib.packing.Packed` values) as they are."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    sizes = struct.pack(f"<{len(views)}Q", *(v.nbytes for v in views))
    conn.send_bytes(b"".join((_COUNT.pack(len(views)), sizes, data)))
    fd = conn.fileno()
    while views:
        sent = os.writev(fd, views[:_IOV_MAX])
        while views and sent >= views[0].nbytes:
            sent -= views.pop(0).nbytes
        if sent:
            views[0] = views[0][sent:]


def receive(conn: Connection) -> Any:
    """A message :func:`send` framed; its buffers are views into one bytearray read whole.
    EOFError if the pipe closes within it."""
    frame = memoryview(conn.recv_bytes())
    (count,) = _COUNT.unpack_from(frame)
    sizes = struct.unpack_from(f"<{count}Q", frame, _COUNT.size)
    buffer = memoryview(bytearray(sum(sizes)))
    got, fd = 0, conn.fileno()
    while got < len(buffer):
        n = os.readv(fd, [buffer[got:]])
        if n == 0:
            raise EOFError("the compute process closed its pipe within a message")
        got += n
    parts, offset = [], 0
    for size in sizes:
        parts.append(buffer[offset:offset + size])
        offset += size
    return pickle.loads(frame[_COUNT.size + _SIZE * count:], buffers=parts)


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent (the worker, or the zygote that
    dies with it) dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above took effect
        sys.exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
