"""The hard stop a deleted pod's worker makes on SIGTERM (TTG_KILL_ON_SIGTERM=1).

A process cannot SIGKILL itself when it is PID 1 of its PID namespace, which a container's
entrypoint is: the kernel drops a signal sent to a namespace's init from inside that namespace
unless init handles it, and SIGKILL cannot be handled (pid_namespaces(7)). ``os._exit`` ends
the process in every case: nothing is flushed, nothing is acked, so the broker redelivers the
chunks the worker held, as after ``kill -9`` of a local worker. 137 = 128 + SIGKILL, the code a
container runtime reports for a killed process.
"""

from __future__ import annotations

import os
import signal

KILLED_EXIT_CODE = 137


def end_now(signum: int) -> None:
    """End the calling process at once, mid-chunk, when ``signum`` is SIGTERM (returns for
    any other signal so the caller's graceful stop goes on)."""
    if signum == signal.SIGTERM:
        os._exit(KILLED_EXIT_CODE)
