"""The cost of what a real sweep keeps: verification on the workers, results.parquet, and the
broker's memory on a run of 10 million points.

    python benchmarks/sweeps.py            # every suite (a few minutes)
    python benchmarks/sweeps.py --quick    # small sizes, a smoke test

Suites (issue 13's goals):

* ``verify``: a CPU-bound function (``ttg_lib.examples:pi_estimate``, 5-10 ms a point), 2,000
  points, 2 workers: the run's complete time (every result and recomputation in, on disk) with
  ``--verify sample`` and ``full``, each divided by the same run's with ``none``. Goals:
  sample <= 1.10, full <= 2.1.
* ``results``: the large preset (1,000,000 points, 0 ms, chunks of 1,000, 3 workers, no
  recomputation), throughput with results.parquet written divided by the same run without
  it (``keep_results=false``), runs interleaved; and the orchestrator's peak RSS. Goals:
  >= 0.90, < 250 MiB.
* ``memory``: 10,000,000 points (0 ms, chunks of 1,000) on a private Redis started here, so
  its ``used_memory_peak`` is this run's alone; and the orchestrator's peak RSS. Goals:
  Redis < 200 MB, orchestrator < 250 MiB.

Each run is a separate ``ttg run`` process (its peak RSS is its own). Writes bench.json and
summary.md under outputs/bench/sweeps-<stamp>/ and prints the table.
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
from benchmarks.tables import md_table, publish  # noqa: E402
from ttg_lib.summary import RunSummary  # noqa: E402

SPACE_CPU = {"axes": {"samples": [20_000], "seed": {"range": [0, 2000]}}}


def ttg_run(out: Path, *args: str, env: dict[str, str] | None = None) -> RunSummary:
    proc = subprocess.run([sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor",
                           "none", "--output-dir", str(out), "--reuse", "none",  # computed,
                           *args], cwd=ROOT, text=True,  # never reused from the last repeat
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"ttg run {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    summary = RunSummary.from_dict(json.loads(proc.stdout))
    if not summary.ok:
        raise SystemExit(f"ttg run {' '.join(args)} did not verify: {summary.problems}")
    return summary


def suite_verify(out: Path, quick: bool, repeats: int) -> dict[str, Any]:
    space = json.loads(json.dumps(SPACE_CPU))
    if quick:
        space["axes"]["seed"]["range"] = [0, 200]
        space["axes"]["samples"] = [5_000]
    args = ("--space", json.dumps(space), "--compute", "ttg_lib.examples:pi_estimate",
            "--workers", "2", "--chunk-size", "10")
    times: dict[str, list[float]] = {"none": [], "sample": [], "full": []}
    recomputed: dict[str, int] = {}
    per_point_ms = []
    for _ in range(repeats):  # interleaved, so drift hits every mode alike
        for mode in times:
            s = ttg_run(out, *args, "--verify", mode)
            times[mode].append(s.complete_s)
            recomputed[mode] = s.values_recomputed
            if mode == "none":
                per_point_ms.append(2 * s.runtime_s / s.total_params * 1000)
    base = statistics.median(times["none"])
    return {"points": space["axes"]["seed"]["range"][1], "workers": 2,
            "ms_per_point": round(statistics.median(per_point_ms), 2),
            "complete_s": {m: round(statistics.median(v), 3) for m, v in times.items()},
            "ratio": {m: round(statistics.median(v) / base, 3) for m, v in times.items()},
            "values_recomputed": recomputed, "goal": "sample <= 1.10, full <= 2.1"}


def suite_results(out: Path, quick: bool, repeats: int) -> dict[str, Any]:
    size = ["--total-params", "100000"] if quick else []
    args = ("--scale", "large", *size, "--verify", "none")
    rates: dict[str, list[float]] = {"kept": [], "dropped": []}
    rss: dict[str, list[float]] = {"kept": [], "dropped": []}
    for _ in range(repeats):
        for label, keep in (("dropped", False), ("kept", True)):
            s = ttg_run(out, *args, "--config", str(_config(out, keep)))
            rates[label].append(s.total_params / s.complete_s)
            rss[label].append(s.orchestrator_peak_rss_mib)
    ratio = statistics.median(rates["kept"]) / statistics.median(rates["dropped"])
    return {"points": 100_000 if quick else 1_000_000,
            "throughput_params_s": {k: round(statistics.median(v)) for k, v in rates.items()},
            "ratio": round(ratio, 3),
            "orchestrator_peak_rss_mib": {k: max(v) for k, v in rss.items()},
            "goal": ">= 0.90; orchestrator < 250 MiB"}


def _config(out: Path, keep: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"keep-{keep}.json"
    path.write_text(json.dumps({"keep_results": keep}))
    return path


def suite_memory(out: Path, quick: bool, repeats: int) -> dict[str, Any]:
    import redis

    from ttg_lib.cluster.brokers import start_private

    points = 1_000_000 if quick else 10_000_000
    broker = start_private("redis")
    try:
        client = redis.Redis.from_url(broker.url)
        before = int(client.info("memory")["used_memory"])
        s = ttg_run(out, "--scale", "large", "--total-params", str(points),
                    "--chunk-size", "1000", env={"TTG_REDIS_URL": broker.url})
        peak = int(client.info("memory")["used_memory_peak"])
        client.close()
    finally:
        broker.stop()
    return {"points": points, "verify_mode": s.verify_mode,
            "values_recomputed": s.values_recomputed,
            "redis_used_memory_peak_mb": round(peak / 1e6, 1),
            "redis_used_memory_before_mb": round(before / 1e6, 1),
            "orchestrator_peak_rss_mib": s.orchestrator_peak_rss_mib,
            "complete_s": s.complete_s, "results_rows": s.results_rows,
            "goal": "Redis peak < 200 MB; orchestrator < 250 MiB"}


SUITES = {"verify": suite_verify, "results": suite_results, "memory": suite_memory}


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Measured {results['when']} on {results['cores']} cores "
             f"({'quick' if results['quick'] else 'full'} mode, {results['repeats']} "
             f"repeat(s), medians). Command: `{results['command']}`.", "",
             *md_table(["what", "goal", "measured"])]
    s = results["suites"]
    if "verify" in s:
        v = s["verify"]
        lines.append(f"| {v['points']:,} points of pi_estimate ({v['ms_per_point']} ms each), "
                     f"{v['workers']} workers: complete time ÷ `--verify none` | sample ≤ 1.10, "
                     f"full ≤ 2.1 | sample {v['ratio']['sample']}, full {v['ratio']['full']} "
                     f"(none {v['complete_s']['none']} s; recomputed: sample "
                     f"{v['values_recomputed']['sample']:,}, full "
                     f"{v['values_recomputed']['full']:,}) |")
    if "results" in s:
        r = s["results"]
        lines.append(f"| Large preset ({r['points']:,} points): throughput with results.parquet "
                     f"÷ without | ≥ 0.90 | {r['ratio']} ({r['throughput_params_s']['kept']:,} "
                     f"vs {r['throughput_params_s']['dropped']:,} params/s) |")
        lines.append(f"| Large preset: orchestrator peak RSS, results kept | < 250 MiB | "
                     f"{r['orchestrator_peak_rss_mib']['kept']} MiB |")
    if "memory" in s:
        m = s["memory"]
        lines.append(f"| {m['points']:,} points, chunks of 1,000 ({m['verify_mode']} "
                     f"verification): Redis used_memory_peak | < 200 MB | "
                     f"{m['redis_used_memory_peak_mb']} MB |")
        lines.append(f"| the same: orchestrator peak RSS | < 250 MiB | "
                     f"{m['orchestrator_peak_rss_mib']} MiB ({m['complete_s']} s, "
                     f"{m['results_rows']:,} rows kept) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="all", help=f"comma list of {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    args = parser.parse_args(argv)
    suites = list(SUITES) if args.suite == "all" else args.suite.split(",")
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; allowed: {', '.join(SUITES)}")
    repeats = 1 if args.quick else args.repeats
    out = Path(args.output_dir) / time.strftime("sweeps-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                               "cores": os.cpu_count(), "quick": args.quick,
                               "repeats": repeats, "suites": {},
                               "command": " ".join(["python benchmarks/sweeps.py",
                                                    *(argv or sys.argv[1:])])}
    for name in suites:
        print(f"== {name}", flush=True)
        results["suites"][name] = SUITES[name](out / "runs", args.quick, repeats)
        print(json.dumps(results["suites"][name]), flush=True)
        (out / "bench.json").write_text(json.dumps(results, indent=2))
    publish(out, markdown(results), out / "bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
