"""Reuse across runs: a run computes only the points no earlier run here computed already.

An earlier run in the same output directory is a source when its record names the same
function fingerprint (:mod:`.fingerprint`) and its table the same axes. Its points are
matched with the new space's by their exact values (:mod:`.keys`, :mod:`.lookup`), so a wider
axis, more samples of a random space with the same seed or a linspace whose floats partly
coincide reuse exactly what they share. The run publishes only the missing points, checks a
sample of the reused ones on its workers and rejects a source that disagrees
(:mod:`.plan`), and copies the reused rows into its own table with ``source_run``
(:mod:`.rows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..config import RunConfig
from ..verify import VerifyMode
from .fingerprint import function_fingerprint
from .lookup import ReuseMap, Source, find_sources, lookup
from .plan import CHECKER, ReusePlan
from .rows import SOURCE_RUN, reused_rows

__all__ = ["CHECKER", "SOURCE_RUN", "ReuseMap", "ReusePlan", "Source", "find_sources",
           "function_fingerprint", "lookup", "plan_reuse", "reused_rows"]


def plan_reuse(config: RunConfig, space: Any, say: Callable[[str], None]) -> ReusePlan | None:
    """The run's reuse (None when it is off or finds nothing), said in one line."""
    if config.reuse == "none" or space is None or not config.fingerprint:
        return None
    sources = find_sources(config.output_dir, config.run_id, config.fingerprint, space)
    if not sources:
        return None
    began = time.monotonic()
    rmap = lookup(space, sources)
    if not len(rmap):
        return None
    plan = ReusePlan(rmap, run_id=config.run_id, chunk_size=config.chunk_size,
                     total_params=config.total_params, mode=VerifyMode(config.verify_mode),
                     rtol=config.verify_rtol, say=say)
    runs = ", ".join(f"{n:,} from {run}" for run, n in rmap.by_source().items())
    checked = sum(len(c.offsets) for checks in plan.checks.values() for c in checks)
    say(f"reuse: {len(rmap):,} of {config.total_params:,} points computed before ({runs}; "
        f"looked up in {time.monotonic() - began:.1f} s); {checked:,} of them recomputed "
        f"to check (--verify {config.verify_mode})")
    return plan
