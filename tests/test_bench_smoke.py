"""The benchmark script runs end to end (a tiny smoke; the real figures come from a full run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real brokers and worker processes

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_json_table_and_chart(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick",
         "--suite", "overhead,chunks", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (out,) = tmp_path.iterdir()
    results = json.loads((out / "bench.json").read_text())
    overhead = results["suites"]["overhead"]
    for backend in ("redis", "rabbitmq"):
        assert overhead[backend]["throughput_params_s"]["median"] > 0
        budget = overhead[backend]["cpu_us_per_chunk"]
        assert budget["user_function"] > 0 and budget["orchestrator"] > 0
        assert results["suites"]["chunks"][backend]["runtime_s"]["median"] > 0
    assert results["machine"]["cores"] and "redis" in results["machine"]["brokers"]
    summary = (out / "summary.md").read_text()
    assert "| 1,000 chunks × 10 params" in summary  # quick mode says what it measured
    assert "throughput ÷ limit" in summary
    assert "TTG benchmarks" in proc.stdout  # the printed table
    assert (out / "bench.html").stat().st_size > 100_000  # plotly.js embedded, offline
