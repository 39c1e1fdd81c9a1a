"""What a TTG process says about itself: its peak memory, its Arrow allocator."""

from __future__ import annotations


def test_the_cli_orchestrator_prefers_jemalloc_unless_told_otherwise(monkeypatch):
    import os
    import sys

    from ttg_lib.procs import prefer_jemalloc

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    prefer_jemalloc()
    expected = "jemalloc" if sys.platform.startswith("linux") else None
    assert os.environ.get("ARROW_DEFAULT_MEMORY_POOL") == expected
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    prefer_jemalloc()
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"  # the user's choice stands


def test_a_spawned_process_reports_its_own_peak_not_its_parents():
    """ru_maxrss survives exec on Linux: a worker spawned by a large orchestrator reported
    the orchestrator's size as its own peak."""
    import subprocess
    import sys

    ballast = bytearray(300 << 20)  # this process: 300 MiB more
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched, so resident
    out = subprocess.run([sys.executable, "-c", "from ttg_lib.procs import peak_rss_mib; "
                          "print(peak_rss_mib())"], capture_output=True, text=True, check=True)
    del ballast
    assert float(out.stdout) < 150, out.stdout
