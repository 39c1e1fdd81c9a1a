"""The chaos soak's short form (benchmarks/chaos.py --short): a random worker SIGKILLed every
5 s, one SIGSTOPped for 10 s, a broker fault at the half - and still every point verified,
nothing lost, each param_id once in results.parquet, on each broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_short_chaos_soak_loses_nothing(tmp_path, backend):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--short",
                           "--backends", backend, "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result_file,) = tmp_path.glob("chaos-*/chaos.json")
    soak = json.loads(result_file.read_text())["backends"][backend]
    hit = soak["chaos"]
    assert hit["kills"] >= 2, hit  # the faults really happened
    assert hit["frozen"], hit
    assert hit["broker_outages"] >= 1 or backend == "redis", hit
    assert hit["lost_params"] == 0 and hit["duplicate_rows"] == 0, hit
    assert hit["results_rows"] == hit["total_params"] == hit["params_verified"], hit
    assert all(soak["holds"].values()), soak["holds"]
