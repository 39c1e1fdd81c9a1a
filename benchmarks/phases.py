"""Where one `ttg run` spends its wall time, launch to exit: a timestamp at each phase.

    python benchmarks/phases.py run --json --monitor none --backend redis --scale large \
        --compute ttg_lib.examples:original_point --workers 3 > summary.json

It runs the `ttg` command line in this process with the run's phases wrapped (nothing else
changes): imports, the run's start (broker, record, workers started, workers ready), the
last result in, the workers asked to stop, results.parquet merged, the workers gone, the late
results drained, the record written, exit. Each line on stderr is milliseconds since the
process started (from /proc, so the interpreter's own start-up counts). Used for
benchmarks/results/2026-12-05-startup-profile/README.md.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import time
from typing import Any

with open("/proc/self/stat") as _stat:
    _TICKS = int(_stat.read().rsplit(")", 1)[1].split()[19])
with open("/proc/stat") as _proc:
    _BOOT = float(next(line for line in _proc if line.startswith("btime")).split()[1])
START = _BOOT + _TICKS / os.sysconf("SC_CLK_TCK")


def mark(what: str) -> None:
    print(f"[phase] {1000 * (time.time() - START):8.0f} ms  {what}", file=sys.stderr,
          flush=True)


def wrap(owner: Any, name: str) -> None:
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args: Any, **kwargs: Any) -> Any:
        mark(f"{owner.__name__}.{name} begins")
        try:
            return inner(*args, **kwargs)
        finally:
            mark(f"{owner.__name__}.{name} ends")

    setattr(owner, name, timed)


def main() -> None:
    mark("interpreter started")
    from ttg_lib import cli

    mark("ttg_lib.cli imported")
    from ttg_lib import ledger, run, session
    from ttg_lib.cluster import local

    mark("ttg_lib.run imported")
    for name in ("_start", "finish"):
        wrap(run.Run, name)
    for name in ("start_workers", "wait_ready", "request_stop", "stop"):
        if hasattr(local.LocalCluster, name):
            wrap(local.LocalCluster, name)
    wrap(ledger.Ledger, "close")
    for name in ("open", "clear", "final_state"):
        wrap(session.BrokerSession, name)
    check_end = run.Run._check_end

    def _check_end(self: Any) -> None:
        check_end(self)
        if self.done and not getattr(self, "_phase_done", False):
            self._phase_done = True
            mark(f"the run is {self.state}")

    run.Run._check_end = _check_end
    atexit.register(mark, "exit")
    sys.argv = ["ttg", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
