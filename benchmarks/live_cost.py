"""What the live Results chart costs a run: the same preset with it on and off, side by side.

    python benchmarks/live_cost.py                       # small preset, redis, 3 repeats
    python benchmarks/live_cost.py --repeats 5 --backend rabbitmq --scale tiny

Each run is its own process driving ``notebook.run_live`` as a notebook cell does (the queue
chart on in both), with the Results chart on or off; every repeat runs both back to back,
alternating which goes first, since only figures measured side by side mean anything on a
shared machine. Two figures per run: the run's ``runtime_s``, and the time the Results
chart itself took (every ``LiveResults.poll`` and the final static chart, wall and CPU),
which is the cost the chart adds to the loop that drives the run (the static chart drawn
after the run, ``final_s``, is reported apart: a static notebook draws it too). The table shows the
median of on / off runtime and of chart time / runtime, with the load average around each
run. Results: ``outputs/bench/live-cost-<stamp>/live_cost.json`` (or --out DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stamp import BROKERS, UsageError, header, stamped_dir  # noqa: E402


def child(results: bool, backend: str, scale: str, out: str) -> dict[str, Any]:
    """One run in this process: run_live with the Results chart ``results``; its figures."""
    from ttg_lib.notebook import landscape, live, params

    spent = {"wall_s": 0.0, "cpu_s": 0.0, "polls": 0, "redraws": 0, "final_s": 0.0}

    class Timed(landscape.LiveResults):
        def poll(self, force: bool = False) -> bool:  # in the loop that drives the run
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return super().poll(force)
            finally:
                spent["wall_s"] += time.perf_counter() - wall
                spent["cpu_s"] += time.thread_time() - cpu
                spent["polls"] += 1
                spent["redraws"] = self.redraws

        def final(self, record_dir: Any) -> Any:  # after the run: the static chart
            wall = time.perf_counter()
            try:
                return super().final(record_dir)
            finally:
                spent["final_s"] += time.perf_counter() - wall

    live.LiveResults = Timed  # type: ignore[misc]
    config = params.build_config(backend=backend, scale=scale, workers=3, output_dir=out)
    load = os.getloadavg()[0]
    summary = live.run_live(config, chart=True, results=results)
    return {"results": results, "runtime_s": summary.runtime_s, "ok": summary.ok,
            "efficiency": summary.efficiency, "load_before": load,
            "load_after": os.getloadavg()[0], **spent}


def one(results: bool, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "on" if results else "off",
           "--backend", args.backend, "--scale", args.scale, "--out", str(out / "runs")]
    reply = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(reply.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="redis", choices=BROKERS)
    parser.add_argument("--scale", default="small", choices=("tiny", "small", "medium"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child == "on", args.backend, args.scale, str(args.out))))
        return
    try:
        if args.repeats < 1:
            raise UsageError(f"--repeats {args.repeats}: at least 1")
    except UsageError as exc:
        parser.exit(2, f"live_cost.py: {exc}\n")
    if args.out is not None:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = stamped_dir(ROOT / "outputs" / "bench", "live-cost")
    stamp = header("live_cost.py", argv)
    runs: list[dict[str, Any]] = []
    for i in range(args.repeats):
        for results in ((True, False) if i % 2 == 0 else (False, True)):
            row = one(results, args, out)
            runs.append({"repeat": i, **row})
            print(f"repeat {i} results={'on ' if results else 'off'} runtime "
                  f"{row['runtime_s']:.2f}s chart {row['wall_s']:.3f}s wall "
                  f"{row['cpu_s']:.3f}s cpu ({row['redraws']} redraws) load "
                  f"{row['load_before']:.2f}->{row['load_after']:.2f}", flush=True)
    on = [r for r in runs if r["results"]]
    off = [r for r in runs if not r["results"]]
    ratios = [a["runtime_s"] / b["runtime_s"] for a, b in zip(on, off, strict=True)]
    share = [r["wall_s"] / r["runtime_s"] for r in on]
    report = {**stamp, "backend": args.backend, "scale": args.scale, "repeats": args.repeats,
              "runtime_on_over_off_median": statistics.median(ratios),
              "chart_wall_share_median": statistics.median(share),
              "load_median": statistics.median(r["load_before"] for r in runs), "runs": runs}
    (out / "live_cost.json").write_text(json.dumps(report, indent=2))
    print(f"runtime on/off (median of {len(ratios)}): {report['runtime_on_over_off_median']:.4f}"
          f"; chart time / runtime: {report['chart_wall_share_median']:.2%}; load "
          f"{report['load_median']:.2f}; {out / 'live_cost.json'}")


if __name__ == "__main__":
    main()
