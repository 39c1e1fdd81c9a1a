"""Every benchmark suite runs end to end in quick mode, and its table row says what it measured
(a tiny smoke; the real figures come from a full run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real brokers and worker processes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import SUITES  # noqa: E402

BACKENDS = ("redis", "rabbitmq")


def _bench(suite: str, out: Path) -> tuple[dict, str, str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--suite", suite,
         "--output-dir", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "TTG benchmarks" in proc.stdout  # the printed table
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "bench.json").read_text())
    assert results["quick"] and results["repeats"] == 1
    assert results["machine"]["cores"] and "redis" in results["machine"]["brokers"]
    assert (run_dir / "bench.html").stat().st_size > 100_000  # plotly.js embedded, offline
    return results["suites"][suite], (run_dir / "summary.md").read_text(), proc.stdout


def _row(summary: str, starts: str) -> list[str]:
    """The Redis and RabbitMQ cells of the summary row that starts with ``starts``."""
    (line,) = [line for line in summary.splitlines() if line.startswith(f"| {starts}")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert all(c and c != "—" for c in cells[2:]), line
    return cells[2:]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("suite", SUITES)
def test_quick_benchmark_suite(tmp_path, suite):
    result, summary, _stdout = _bench(suite, tmp_path)
    assert all(b in result for b in BACKENDS) or all(f"{b}/tiny" in result for b in BACKENDS)
    CHECKS[suite](result, summary)


def _efficiency(result: dict, summary: str) -> None:
    for b in BACKENDS:
        r = result[f"{b}/tiny"]
        assert 0 < r["efficiency"]["median"] <= 1
        assert r["runtime_s"]["median"] >= r["ideal_runtime_s"]
    _row(summary, "Efficiency, tiny, 3 workers")


def _fault(result: dict, summary: str) -> None:
    for b in BACKENDS:
        r = result[b]
        assert r["repeats"] == 1
        assert r["victim_chunk_recovered"] <= r["recovered_repeats"] <= r["killed_repeats"] <= 1
        assert r["ratio"]["median"] > 0
        if r["recovered_after_s"] is not None:
            assert r["recovered_after_s"]["median"] <= 3.0
    _row(summary, "One of 3 workers killed at 30 %")
    _row(summary, "Dead worker's chunk taken by another worker")


def _overhead(result: dict, summary: str) -> None:
    assert result["params"] == 50_000 and result["limit_params_s"] > 0
    for b in BACKENDS:
        assert result[b]["throughput_params_s"]["median"] > 0
        budget = result[b]["cpu_us_per_chunk"]
        assert budget["user_function"] > 0 and budget["orchestrator"] > 0
    _row(summary, "Large preset (50,000 params): throughput ÷ limit")


def _chunks(result: dict, summary: str) -> None:
    for b in BACKENDS:
        assert result[b]["chunks"] == 1_000 and result[b]["runtime_s"]["median"] > 0
    _row(summary, "1,000 chunks × 10 params")  # quick mode says what it measured


def _scaling(result: dict, summary: str) -> None:
    assert (result["params"], result["work_ms"]) == (2_000, 5.0)
    for b in BACKENDS:
        assert list(result[b]) == ["1", "2", "4"] and result[b]["1"]["speedup"] == 1.0
        assert all(row["speedup"] > 0 for row in result[b].values())
    _row(summary, "Scaling, 2,000 × 5 ms: speed-up at 1/2/4 workers")


def _latency(result: dict, summary: str) -> None:
    for b in BACKENDS:
        r = result[b]
        assert r["samples"] == 50 and 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["broker_ops_per_chunk"] is None or r["broker_ops_per_chunk"] > 0
    _row(summary, "Per-chunk latency, one in flight")
    _row(summary, "Broker operations per chunk")


def _memory(result: dict, summary: str) -> None:
    for b in BACKENDS:
        assert list(result[b]) == ["10000", "50000"]
        for row in result[b].values():
            assert 0 < row["worker_peak_rss_mib"] < 1024
            assert 0 < row["orchestrator_peak_rss_mib"] < 4096
    _row(summary, "Peak RSS of a worker, 10,000 → 50,000 params")
    _row(summary, "Peak RSS of the orchestrator")


def _monitor(result: dict, summary: str) -> None:
    for b in BACKENDS:
        r = result[b]
        assert r["ratio"] > 0 and r["per_sample"]["client_cpu_ms"] > 0
    _row(summary, "Monitor on (0.1 s sampling")
    _row(summary, "One queue sample")


def _contain(result: dict, summary: str) -> None:
    assert result["params"] == 50_000 and result["reference"] == "in_worker"
    for b in BACKENDS:
        assert result[b]["throughput_ratio"]["median"] > 0
        assert 0 < result[b]["small_efficiency"]["compute_process"]["median"] <= 1
    _row(summary, "Compute process, large (50,000 params)")
    _row(summary, "Compute process, tiny: efficiency")


CHECKS = {"contain": _contain, "efficiency": _efficiency, "fault": _fault,
          "overhead": _overhead, "chunks": _chunks, "scaling": _scaling,
          "latency": _latency, "memory": _memory, "monitor": _monitor}


def test_every_suite_has_a_check():
    assert set(CHECKS) == set(SUITES)


def test_an_unknown_suite_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--suite",
                           "nope", "--output-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "unknown suite 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_micro_measurements_write_their_table(tmp_path):
    """The script behind the README's prose figures (the cheap parts; pika and monitor need
    seconds of broker traffic and run with the full script)."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "micro.py"), "--only",
                           "pack,packer", "--output-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    parts = json.loads((run_dir / "micro.json").read_text())["parts"]
    assert parts["pack"]["values"] == 1_000 and parts["pack"]["us"] > 0
    assert parts["packer"]["hiredis_ms"] > 0 and parts["packer"]["python_ms"] > 0
    summary = (run_dir / "summary.md").read_text()
    assert "| packing 1,000 values into int64 |" in summary
    assert "hiredis / pure Python" in summary
