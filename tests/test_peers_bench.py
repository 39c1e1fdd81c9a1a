"""The peers benchmark (Dask, Ray, TTG on the same chunks) runs end to end in its quick mode.

Needs the ``bench`` extra, which scripts/test.sh installs: missing in CI it is a failure, not
a skip; elsewhere the skip says how to install it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs Dask, Ray and TTG worker processes

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers.py"
SYSTEMS = ("dask", "ray", "ttg-redis", "ttg-rabbitmq")
# Two of the five: they cover the kill, sleeping and 0 ms chunks, and a dict-valued function;
# the other three differ only in sizes (the whole quick mode takes over a minute under load).
WORKLOADS = ("small-fault", "million")


def _need_bench_extra() -> None:
    absent = [m for m in ("distributed", "ray") if importlib.util.find_spec(m) is None]
    if not absent:
        return
    message = (f"{', '.join(absent)} not installed: pip install -e '.[bench]' "
               f"(scripts/test.sh does)")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _peers(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PEERS), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_quick_peers_benchmark_measures_every_system(tmp_path):
    _need_bench_extra()
    proc = _peers("--quick", "--workloads", ",".join(WORKLOADS), "--output-dir", str(tmp_path),
                  "--ttg-set", "lease_s=2.5", timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out,) = tmp_path.iterdir()
    results = json.loads((out / "bench.json").read_text())
    assert list(results["systems"]) == list(SYSTEMS)
    for system, result in results["systems"].items():
        assert "error" not in result, (system, result)
        assert result["startup_s"] > 0
        for name in WORKLOADS:
            row = result["workloads"][name]
            assert row["checked"] is True, (system, name, row)
            assert row["runtime_s"] > 0 and row["driver_peak_rss_mib"] > 10
        fault = result["workloads"]["small-fault"]
        assert fault["killed"], (system, fault)  # a worker process really was SIGKILLed
        assert fault["chunks_rerun"] >= 0
    for peer in ("dask", "ray"):  # the driver held and checked every dict of the last run
        row = results["systems"][peer]["workloads"]["million"]
        assert row["missing_chunks"] == 0 and row["wrong_values"] == 0
    ttg = results["systems"]["ttg-redis"]["workloads"]["million"]
    config = json.loads((Path(ttg["record_dir"]) / "config.json").read_text())
    assert config["lease_s"] == 2.5  # --ttg-set reaches the TTG runs
    summary = (out / "summary.md").read_text()
    assert "| workload | Dask | Ray | TTG (Redis) | TTG (RabbitMQ) |" in summary
    assert "| 20,000 points returning a dict, chunks of 1,000 |" in summary
    assert "Peers: Dask, Ray and TTG" in proc.stdout  # the printed table


def test_packed_results_reach_the_driver_whole(tmp_path):
    """--packed-results: a Dask task returns its chunk pickled, the driver unpickles it and
    checks every value as before."""
    _need_bench_extra()
    proc = _peers("--quick", "--packed-results", "--systems", "dask", "--workloads", "million",
                  "--output-dir", str(tmp_path), timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (out,) = tmp_path.iterdir()
    results = json.loads((out / "bench.json").read_text())
    assert results["packed_results"] is True and results["systems"]["dask"]["packed"] is True
    row = results["systems"]["dask"]["workloads"]["million"]
    assert row["checked"] and row["missing_chunks"] == 0 and row["wrong_values"] == 0
    assert "--packed-results" in (out / "summary.md").read_text()


@pytest.mark.parametrize(("args", "says"), [
    (("--ttg-set", "no_such=1"), "invalid --ttg-set: invalid no_such='1': unknown setting"),
    (("--ttg-set", "workers"), "invalid --ttg-set 'workers': KEY=VALUE"),
    (("--ttg-set", "work_ms=fast"), "invalid --ttg-set: invalid work_ms='fast': a number"),
    (("--workloads", "small,huge"), "unknown workload 'huge'; allowed: small, small-fault"),
    (("--systems", "spark"), "unknown system 'spark'; allowed: dask, ray"),
])
def test_bad_options_are_one_clear_error_before_anything_starts(tmp_path, args, says):
    proc = _peers(*args, "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())  # no output directory, no run
