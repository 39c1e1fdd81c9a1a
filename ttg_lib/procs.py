"""A ledger of the OS processes TTG started, so TTG only ever signals its own.

A pid alone is not an identity: pids are reused. Each entry also keeps the
process start time (from /proc) and a marker expected on its command line; a
signal is sent only when all three still match.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

LEDGER_NAME = "processes.jsonl"


@dataclass(frozen=True)
class ProcessEntry:
    kind: str  # worker | broker
    name: str
    pid: int
    start_ticks: int | None
    marker: str  # a string the command line must contain
    run_id: str

    def is_alive_and_ours(self) -> bool:
        return (start_ticks(self.pid) == self.start_ticks and self.start_ticks is not None
                and self.marker in command_line(self.pid))

    def signal(self, sig: int) -> bool:
        """Send ``sig`` only if the pid is still the process we started."""
        if not self.is_alive_and_ours():
            return False
        try:
            os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            return False


def start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Ledger:
    """Append-only JSON lines in the run's record directory."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def record(self, entry: ProcessEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a") as fh:
            fh.write(json.dumps(asdict(entry)) + "\n")

    def entries(self) -> list[ProcessEntry]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(ProcessEntry(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn line from a crash: it names nothing we can prove is ours
        return out


def all_ledgers(output_dir: Path) -> list[Ledger]:
    return [Ledger(p) for p in sorted((output_dir / "runs").glob(f"*/{LEDGER_NAME}"))]


def stop_entry(entry: ProcessEntry, grace_s: float = 5.0) -> bool:
    """SIGTERM, wait, then SIGKILL; every signal re-checks identity."""
    import time

    if not entry.signal(signal.SIGTERM):
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and entry.is_alive_and_ours():
        time.sleep(0.05)  # no pidfd wait for a process that is not our child
    entry.signal(signal.SIGKILL)
    return True


def peak_rss_mib() -> float:
    """This program's peak resident memory so far: Linux's VmHWM. Not ``ru_maxrss``: Linux
    carries that across exec, so a worker spawned by a 130-MiB orchestrator reported 133 MiB
    before computing anything (every worker the same figure, even its own)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource  # elsewhere: the best there is (macOS reports bytes, Linux KiB)

    scale = 1 if sys.platform.startswith("linux") else 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / scale, 1)


def prefer_jemalloc() -> None:
    """An orchestrator's Arrow memory in jemalloc unless the user chose (before pyarrow is
    imported: Arrow reads it once). pyarrow's default, mimalloc, keeps what the writer's
    threads freed: a 10^8-point run peaked at 343-355 MiB with it, 270 MiB with jemalloc."""
    if sys.platform.startswith("linux"):  # where pyarrow's wheels ship jemalloc
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")


def tighten_timer_slack() -> None:
    """Linux pads every sleep by 50 us of timer slack; 1 us keeps simulated work honest."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
        except (OSError, AttributeError):
            pass
