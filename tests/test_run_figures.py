"""The run's headline figures are what they claim to be, not just positive numbers.

runtime_s: from the first task published to the last new result read, so it lies inside
the wall time around start()..done; ideal_runtime_s: the busiest worker's share of whole
chunks; efficiency = ideal / runtime <= 1; throughput = verified params / runtime.
"""

from __future__ import annotations

import math
import os
import time

import pytest
from test_faults import assert_verified

from ttg_lib.run import Run


def test_runtime_efficiency_and_throughput_are_consistent(make_config, backend_name,
                                                          broker_url):
    cfg = make_config(backend=backend_name, total_params=90, chunk_size=5, work_ms=20.0,
                      workers=3)
    with Run(cfg) as run:
        before_start = time.monotonic()
        run.start()
        while not run.done and time.monotonic() - before_start < 60:
            run.step(0.05)
        wall = time.monotonic() - before_start
        summary = run.finish()
    assert_verified(summary)
    ideal = math.ceil(18 / 3) * 5 * 20.0 / 1000  # 18 chunks on 3 workers: 6 each, 0.1 s a chunk
    assert summary["ideal_runtime_s"] == pytest.approx(ideal) == 0.6
    runtime = summary["runtime_s"]
    assert ideal <= runtime <= wall
    assert summary["efficiency"] == pytest.approx(ideal / runtime, abs=1e-3)
    assert 0 < summary["efficiency"] <= 1
    assert summary["throughput_params_s"] == pytest.approx(90 / runtime, rel=1e-3)
    cpu = summary["cpu_s"]
    assert 0 <= cpu["workers_compute"] <= cpu["workers"]  # the user's function is a part
    assert 0 < cpu["orchestrator"] <= runtime * (os.cpu_count() or 1)
