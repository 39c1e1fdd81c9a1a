"""Sweep functions to try TTG with (``--compute ttg_lib.examples:NAME``), and that the tests,
the notebooks and the benchmarks use.

Each takes its point as keyword arguments, named like the axes of the space it sweeps,
and is deterministic in them, so a recomputation by another worker gives the same values.
"""

from __future__ import annotations

import math
import random


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
