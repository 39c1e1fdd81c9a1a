"""Does the ETA that knows the axes beat the naive one? (issue 22, item 6)

A space whose point duration grows linearly with one axis (``x``, the slowest axis, so the
chunks published first are the cheap ones). At 25 % of the chunks done, the modelled ETA
(:class:`ttg_lib.eta.EtaModel`) and the naive rate-based ETA (elapsed x chunks left / chunks
done) are compared with the true remaining time. Acceptance: the modelled ETA is within 20 %
of the truth, the naive one is not.

    python benchmarks/eta.py --quick          # simulated clock: a second, no broker
    python benchmarks/eta.py                  # simulated, the full sizes
    python benchmarks/eta.py --real           # a real `ttg run` on the local cluster

The simulated run is an event simulation of W workers taking chunks in index order, with a
seeded ±10 % noise on every chunk; the model is fed exactly what the orchestrator sees (the
worker's started_at / finished_at per chunk). The real run drives :class:`ttg_lib.run.Run`
with a function that sleeps ``base_ms + slope_ms * x`` per point, and reads the ETA from the
run's own progress. Writes eta.json and summary.md under outputs/bench/eta-<stamp>/.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.stamp import fresh_dir  # noqa: E402
from benchmarks.tables import md_table, publish  # noqa: E402
from ttg_lib.eta import EtaModel  # noqa: E402
from ttg_lib.space import load_space  # noqa: E402

AT = 0.25  # compare the ETAs when this fraction of the chunks is done
TOLERANCE = 0.20


def sleepy(x: int, rep: int, base_ms: float, slope_ms: float) -> int:
    """The real run's function: ``base_ms + slope_ms * x`` of sleep, then x (workers import
    it as ``eta:sleepy`` with benchmarks/ on their path)."""
    time.sleep((base_ms + slope_ms * x) / 1000)
    return x + rep


def space_dict(xs: int, reps: int) -> dict[str, Any]:
    return {"axes": {"x": {"range": [1, xs + 1]}, "rep": {"range": [0, reps]}}}


def simulate(xs: int, reps: int, chunk: int, workers: int, base_ms: float, slope_ms: float,
             seed: int = 0) -> dict[str, Any]:
    """An event simulation: workers take chunks in order; the ETAs at AT done vs the truth."""
    space = load_space(space_dict(xs, reps))
    model = EtaModel(space, chunk, space.size)
    rng = random.Random(seed)
    chunks = model.chunks_total
    durations = []
    for c in range(chunks):
        start = c * chunk
        cols = space.columns(start, min(chunk, space.size - start), ("x",))
        work = float(sum(base_ms + slope_ms * cols["x"])) / 1000
        durations.append(work * rng.uniform(0.9, 1.1))
    free = [(0.0, w) for w in range(workers)]  # (time the worker is free, worker)
    finish: list[tuple[float, int, float]] = []  # (finished_at, chunk, started_at)
    for c in range(chunks):
        t, w = heapq.heappop(free)
        heapq.heappush(finish, (t + durations[c], c, t))
        heapq.heappush(free, (t + durations[c], w))
    end = max(f for f, _c, _s in finish)
    snapshot: dict[str, Any] = {}
    done = 0
    while finish:
        finished_at, c, started_at = heapq.heappop(finish)
        model.observe(c, started_at, finished_at)
        done += 1
        if done >= AT * chunks and not snapshot:
            eta = model.estimate(finished_at)
            assert eta is not None
            snapshot = {"at_s": finished_at, "chunks_done": done, "eta": eta.to_dict()}
    return _verdict(snapshot, end - snapshot["at_s"], {
        "mode": "simulated", "points": space.size, "chunks": chunks, "workers": workers,
        "base_ms": base_ms, "slope_ms": slope_ms, "total_s": end})


def real(xs: int, reps: int, chunk: int, workers: int, backend: str, out: Path,
         base_ms: float, slope_ms: float) -> dict[str, Any]:
    """A real run on the local cluster: the ETA the run's progress shows at AT done."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ttg_lib.config import RunConfig
    from ttg_lib.run import Run, execute
    from ttg_lib.summary import RunSummary

    space = space_dict(xs, reps)
    space["axes"].update(base_ms=[base_ms], slope_ms=[slope_ms])  # what sleepy sleeps
    config = RunConfig.build(backend=backend, workers=workers, chunk_size=chunk,
                             space=json.dumps(space), compute="eta:sleepy",
                             verify="none", monitor="none", output_dir=str(fresh_dir(out)),
                             run_id=f"eta-{int(time.time())}")
    snapshot: dict[str, Any] = {}
    t0, end = 0.0, 0.0

    def started(_run: Run) -> None:
        nonlocal t0
        t0 = time.monotonic()

    def watch(p: Any) -> None:
        nonlocal snapshot, end
        done = p.chunks_completed + p.chunks_failed
        if not snapshot and done >= AT * p.chunks_total and p.eta is not None:
            snapshot = {"at_s": time.monotonic() - t0, "chunks_done": done,
                        "eta": p.eta.to_dict()}
        end = time.monotonic() - t0  # the last step's: the run is done, not yet finished

    summary = RunSummary.from_dict(execute(config, watch, step_s=0.05, on_start=started))
    if not summary.ok:
        raise SystemExit(f"the run did not verify: {summary.problems}")
    return _verdict(snapshot, end - snapshot["at_s"], {
        "mode": "real", "backend": backend, "points": config.total_params,
        "chunks": config.chunks_total, "workers": workers, "base_ms": base_ms,
        "slope_ms": slope_ms, "total_s": end, "run_id": config.run_id})


def _verdict(snapshot: dict[str, Any], true_s: float, setup: dict[str, Any]) -> dict[str, Any]:
    eta = snapshot["eta"]
    model_err = abs(eta["remaining_s"] - true_s) / true_s
    naive_err = abs(eta["naive_s"] - true_s) / true_s
    return {**setup, **snapshot, "true_remaining_s": round(true_s, 3),
            "model_error": round(model_err, 4), "naive_error": round(naive_err, 4),
            "model_within": model_err <= TOLERANCE, "naive_within": naive_err <= TOLERANCE,
            "accepted": model_err <= TOLERANCE < naive_err}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--real", action="store_true", help="a real run, not a simulation")
    parser.add_argument("--backend", default="redis")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--output-dir", default="outputs/bench")
    args = parser.parse_args(argv)
    xs, reps, chunk = (20, 50, 50) if args.quick else (100, 200, 100)
    base_ms, slope_ms = (0.2, 0.1) if args.real else (1.0, 0.5)
    out = Path(args.output_dir) / f"eta-{time.strftime('%Y-%m-%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    if args.real:
        result = real(xs, reps, chunk, args.workers, args.backend, out, base_ms, slope_ms)
    else:
        result = simulate(xs, reps, chunk, args.workers, base_ms, slope_ms)
    result["quick"] = args.quick
    (out / "eta.json").write_text(json.dumps(result, indent=2) + "\n")
    eta = result["eta"]
    lines = [f"# ETA at {AT:.0%} done ({result['mode']}, {result['points']:,} points in "
             f"{result['chunks']} chunks, {result['workers']} workers, "
             f"{result['base_ms']} + {result['slope_ms']}·x ms a point)", "",
             *md_table(["ETA", "seconds", "error vs true", "within 20 %"], [
                 ["true remaining", f"{result['true_remaining_s']:.2f}", "", ""],
                 ["modelled on the axes", f"{eta['remaining_s']:.2f} ± {eta['spread_s']:.2f}",
                  f"{result['model_error']:.1%}", "yes" if result["model_within"] else "no"],
                 ["naive (rate)", f"{eta['naive_s']:.2f}", f"{result['naive_error']:.1%}",
                  "yes" if result["naive_within"] else "no"]]), "",
             f"Accepted: {'yes' if result['accepted'] else 'NO'}"]
    publish(out, "\n".join(lines), out / "eta.json")
    return 0 if result["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
