"""Sweep functions to try TTG with (``--compute ttg_lib.examples:NAME``), and that the tests,
the notebooks and the benchmarks use.

Each takes its point as keyword arguments, named like the axes of the space it sweeps,
and is deterministic in them, so a recomputation by another worker gives the same values.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime, timezone

from .compute import simulate_work


def train(lr: float, depth: int, seed: int = 0) -> dict[str, float]:
    """A toy training run: a loss that is best near lr = 10^-2 and depth 6, with seeded noise;
    returns a dict (one results column per key)."""
    rng = random.Random(hash((round(lr, 12), depth, seed)) & 0xFFFFFFFF)
    loss = (math.log10(lr) + 2) ** 2 + 0.05 * (depth - 6) ** 2 + rng.gauss(0, 0.01)
    return {"loss": round(loss, 6), "accuracy": round(1 / (1 + loss), 6)}


def pi_estimate(samples: int, seed: int) -> float:
    """Monte Carlo pi from ``samples`` seeded points: CPU-bound, about 1 ms per 3,000
    samples in CPython (the benchmarks' 5-10 ms per point)."""
    rng = random.Random(seed)
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    return 4.0 * inside / samples


def fragile(x: int) -> int:
    """Fails for x = 13 (to see a failed point with its error in the results), else x²."""
    if x == 13:
        raise ValueError("13 is unlucky")
    return x * x


def original_point(param_id: int, work_ms: float) -> dict[str, object]:
    """The original system's per-point work (xmedinavei/ttg-distributed-compute,
    ``QueueWorker._compute_parameter``): a sha256 of ``param_<id>_worker_<n>`` cut to 16 hex
    digits and a number from the id, returned as a dict. Used by benchmarks/original.py so
    TTG and the original worker do the same work per point.

    Two fields of the original are left out of the value on purpose: ``worker_id`` and
    ``timestamp`` differ between two computations of the same point, so TTG's verification (a
    recomputation by another worker) would reject every value. The timestamp is still made
    and dropped, because making it is about a third of the original's per-point time (2 of
    7 us here); the hashed string names worker 0 for every point (the same string, the same
    length as the original's worker 0 hashes)."""
    simulate_work(work_ms)  # the original sleeps work_ms when it is > 0
    digest = hashlib.sha256(f"param_{param_id}_worker_0".encode()).hexdigest()[:16]
    result = (param_id * 7 + 13) % 1000 + float(f"0.{param_id % 100}")
    datetime.now(timezone.utc).isoformat()  # the original's timestamp: same work, not kept
    return {"param_id": param_id, "result": result, "hash": digest}
