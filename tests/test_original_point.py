"""ttg_lib.examples.original_point: the original system's per-point work, deterministic."""

from __future__ import annotations

import hashlib

from ttg_lib.examples import original_point


def test_original_point_is_the_original_computation_without_worker_fields():
    point = original_point(123456, 0.0)
    assert point == {
        "param_id": 123456,
        "result": (123456 * 7 + 13) % 1000 + 0.56,
        "hash": hashlib.sha256(b"param_123456_worker_0").hexdigest()[:16],
    }
    assert "worker_id" not in point and "timestamp" not in point


def test_original_point_is_deterministic_so_recomputation_verifies():
    assert [original_point(i, 0.0) for i in range(50)] == [original_point(i, 0.0)
                                                             for i in range(50)]
    assert original_point(5, 0.0)["result"] == 48.5  # float("0.5"), as the original computes
