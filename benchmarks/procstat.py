"""CPU and memory of a private broker: every process in its session, read from /proc.

A private broker (``ttg_lib.cluster.brokers.start_private``) runs in a session of its own
whose id is its launcher's pid, so its whole process tree (RabbitMQ's launcher script, the
Erlang VM, epmd if it started one) is found by session id, and nothing else is.
"""

from __future__ import annotations

import os
import threading
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def session_pids(sid: int) -> list[int]:
    """Processes whose session id is ``sid``."""
    pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    return [pid for pid in pids if (fields := _stat(pid)) and int(fields[3]) == sid]


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of the processes (clock ticks, 10 ms resolution)."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in map(_stat, pids) if fields)
    return ticks / TICK


class PeakRss(threading.Thread):
    """The peak of a session's summed RSS, sampled every ``every_s`` while it runs."""

    def __init__(self, sid: int, every_s: float = 0.1):
        super().__init__(daemon=True)
        self.sid, self.every_s, self.peak = sid, every_s, 0
        self._halt = threading.Event()

    def run(self) -> None:
        pids = session_pids(self.sid)
        rounds = 0
        while True:
            self.peak = max(self.peak, rss_bytes(pids))
            if self._halt.wait(self.every_s):
                return
            rounds += 1
            if rounds % 20 == 0:  # a child may start late (RabbitMQ's VM after its script)
                pids = session_pids(self.sid)

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._halt.set()
        self.join(5)

    @property
    def mib(self) -> float:
        return round(self.peak / 2**20, 1)
