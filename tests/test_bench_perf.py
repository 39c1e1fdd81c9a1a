"""The issue-23 harnesses: beside the original worker (benchmarks/original.py), the scale series
(benchmarks/scale.py) and the CPU profile (benchmarks/cpuprofile.py). Bad options fail with one
clear line; each runs end to end at a smoke size (figures come from a quiet machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

from scale import UsageError, parse_sizes  # noqa: E402


def _script(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_original_without_a_checkout_says_how_to_get_one(tmp_path):
    proc = _script("original.py", "--original", str(tmp_path))
    assert proc.returncode == 2
    assert "not a checkout of xmedinavei/ttg-distributed-compute" in proc.stderr
    assert "src/worker.py" in proc.stderr and "Traceback" not in proc.stderr


def test_original_rejects_an_unknown_broker(tmp_path):
    for name in ("worker.py", "queue_utils.py", "rabbitmq_queue.py", "logging_config.py"):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / name).write_text("")
    proc = _script("original.py", "--original", str(tmp_path), "--backends", "kafka")
    assert proc.returncode == 2 and "allowed redis, rabbitmq" in proc.stderr


def test_scale_sizes_parse_and_bad_ones_are_named():
    assert parse_sizes("1e6, 1e7,100") == [1_000_000, 10_000_000, 100]
    for bad, why in (("1e6,lots", "'lots' is not a number"), ("0.5", "whole number"),
                     ("", "at least one size")):
        with pytest.raises(UsageError, match=why):
            parse_sizes(bad)
    proc = _script("scale.py", "--sizes", "ten")
    assert proc.returncode == 2 and "--sizes: 'ten' is not a number" in proc.stderr


def test_scale_refuses_to_start_without_the_disk_it_needs(tmp_path):
    proc = _script("scale.py", "--sizes", "1e12", "--backends", "redis",
                   "--output-dir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "scale.py: not enough disk: the series needs about 32000.0 GB on" in proc.stderr
    assert "GB are free; free some space, run fewer --sizes" in proc.stderr
    assert not list(tmp_path.glob("scale-*"))  # refused before anything was made
    proc = _script("scale.py", "--total", "1e13", "--output-dir", str(tmp_path))
    assert proc.returncode == 2 and "needs about 320000.0 GB" in proc.stderr  # one run


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scale_reads_back_a_table_in_every_way(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 200_000
    ids = np.random.default_rng(0).permutation(rows)  # written out of order, as a run does
    table = tmp_path / "results.parquet"
    pq.write_table(pa.table({"param_id": ids, "value": ids * 2.0,  # a run's columns
                             "worker": pa.array(["w-1"] * rows).dictionary_encode(),
                             "attempt": np.ones(rows, dtype=np.int64),
                             "error": pa.nulls(rows, pa.string())}), table,
                   row_group_size=65_536)
    proc = _script("scale.py", "--read-back-only", str(table), "--output-dir", str(tmp_path),
                   timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result_file,) = tmp_path.glob("scale-*/scale.json")
    cases = json.loads(result_file.read_text())["read_back"]["cases"]
    assert cases["slice"]["rows"] == 2_000 and cases["filter"]["rows"] == 200
    assert cases["notebook"]["rows"] == rows and cases["scan"]["rows"] == rows
    assert "--columns param_id,value --where param_id >= 100000" in cases["export-slice"]["via"]
    assert all(c["under_1_gib"] and "error" not in c for c in cases.values())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scale_series_and_read_back_smoke(tmp_path):
    proc = _script("scale.py", "--sizes", "1e4,3e4", "--backends", "redis,rabbitmq",
                   "--read-back", "--output-dir", str(tmp_path), timeout=540)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result_file,) = tmp_path.glob("scale-*/scale.json")
    result = json.loads(result_file.read_text())
    for backend in ("redis", "rabbitmq"):
        for size in (10_000, 30_000):
            row = result["series"][backend][str(size)]
            assert row["ok"] and row["results_rows"] == size
            assert row["broker_peak_rss_mib"] > 1 and row["orchestrator_peak_rss_mib"] > 1
            assert row["record_bytes"] >= row["results_parquet_bytes"] > 0
    assert result["series"]["redis"]["30000"]["used_memory_peak_mb"] > 0
    cases = result["read_back"]["cases"]
    assert cases["scan"]["rows"] == 30_000 and cases["notebook"]["rows"] == 30_000
    assert cases["slice"]["rows"] == 300  # the middle 1 % of the ids
    assert cases["filter"]["rows"] == 30  # the middle 0.1 %
    assert set(cases) == {"baseline", "slice", "filter", "notebook", "scan", "export",
                          "export-slice"}
    assert all(c["peak_rss_mib"] > 10 and c["under_1_gib"] and "error" not in c
               for c in cases.values())
    assert all(all(r["holds"].values()) for s in result["series"].values() for r in s.values())


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
                         .exists()), reason="py-spy is not installed (the bench extra)")
def test_cpu_profile_smoke(tmp_path):
    proc = _script("cpuprofile.py", "--quick", "--cases", "chunks", "--backends", "redis",
                   "--output-dir", str(tmp_path), timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result_file,) = tmp_path.glob("profile-*/profile.json")
    run = json.loads(result_file.read_text())["runs"]["chunks/redis"]
    assert run["plain"]["ok"] and run["plain"]["chunks"] == 1_000
    assert set(run["plain"]["cpu_us_per_chunk"]) == {"user_function", "worker_rest",
                                                     "orchestrator", "broker"}
    assert run["frames"]["worker"]["samples"] > 0 and run["frames"]["orchestrator"]["samples"] > 0
    assert "### chunks/redis" in (result_file.parent / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.original
@pytest.mark.skipif(not os.environ.get("TTG_ORIGINAL_DIR"),
                    reason="TTG_ORIGINAL_DIR: a checkout of the original system (not shipped)")
def test_beside_the_original_smoke(tmp_path):
    proc = _script("original.py", "--original", os.environ["TTG_ORIGINAL_DIR"], "--params",
                   "5000", "--repeats", "1", "--output-dir", str(tmp_path), timeout=540)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result_file,) = tmp_path.glob("original-*/original.json")
    result = json.loads(result_file.read_text())
    assert result["original_default_chunk"] == 100  # read from the original's worker.py
    assert result["rows"]["headline"] == {"original_chunk": 100, "ttg_chunk": 1000}
    for backend in result["backends"].values():
        assert backend["all_checked"] and set(backend["rows"]) == {"headline", "same-100",
                                                                  "same-1000"}
        assert all(row["ratio"] > 0 for row in backend["rows"].values())
        assert len(backend["runs"]) == 4  # original and TTG at 100 and 1,000: none twice
    assert "headline" in (result_file.parent / "table.txt").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rabbit_cost_per_message_smoke(tmp_path):
    proc = _script("rabbitcost.py", "--messages", "40", "--size", "2000", "--repeats", "1",
                   "--output-dir", str(tmp_path), timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result_file,) = tmp_path.glob("rabbitcost-*/rabbitcost.json")
    medians = json.loads(result_file.read_text())["median"]
    assert set(medians) == {"tx-persistent", "confirm-persistent", "tx-transient",
                            "plain-transient"}
    assert all(m["wall_us"] > 0 and m["client_us"] > 0 for m in medians.values())
