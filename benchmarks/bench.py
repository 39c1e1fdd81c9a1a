"""TTG benchmarks: every figure measured by real runs on the real brokers, both backends.

    python benchmarks/bench.py                       # every suite, 3 repeats
    python benchmarks/bench.py --suite efficiency,fault --repeats 5
    python benchmarks/bench.py --quick               # a smoke test in about a minute

Each run is a separate `ttg run --json` process, so peak memory is per run. Results go to
outputs/bench/<stamp>/bench.json and bench.html (Plotly, offline) and a table is printed.
Suites and goals:

efficiency  small and medium, 3 workers: ideal / runtime            goal >= 0.99
fault       small, one of 3 workers killed at 30 % (replaced):
            runtime vs no-fault in the same invocation             goal <= 1.05 x
            dead worker's chunk taken by another worker             goal <= 3 s
overhead    large (1,000,000 params, chunk 1,000, 0 ms): throughput vs
            one plain Python loop x min(cores, workers)             goal >= 0.8
chunks      100,000 params in 10,000 chunks of 10, 0 ms             goal <= 2 s
scaling     20,000 params x 5 ms, chunk 100, 1/2/4/8/16 workers     goal >= 0.9 x workers
latency     one chunk in flight: publish -> result stored, p50/p99; broker ops per chunk
memory      peak RSS of workers and orchestrator, 10k -> 1M params  goal < 100 / 250 MiB
monitor     the large run with queue sampling on vs off             goal: no measurable cost
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ttg_lib.compute import placeholder  # noqa: E402
from ttg_lib.config import env_broker_urls  # noqa: E402

BACKENDS = ("redis", "rabbitmq")
SUITES = ("efficiency", "fault", "overhead", "chunks", "scaling", "latency", "memory", "monitor")


def ttg_run(out: Path, **flags: Any) -> dict[str, Any]:
    """One `ttg run --json` in its own process; returns summary.json."""
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
            "--output-dir", str(out)]
    for key, value in flags.items():
        if value is True:
            args.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ttg run failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    summary = json.loads(proc.stdout)
    if not summary["ok"]:
        raise RuntimeError(f"run {summary['run_id']} failed verification: {summary['problems']}")
    return summary


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def suite_efficiency(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scale in ctx.pick(("small", "medium"), ("tiny",)):
        for backend in ctx.backends:
            runs = [ttg_run(ctx.out, backend=backend, scale=scale, workers=3)
                    for _ in range(ctx.repeats)]
            out[f"{backend}/{scale}"] = {
                "efficiency": spread([r["efficiency"] for r in runs]),
                "runtime_s": spread([r["runtime_s"] for r in runs]),
                "ideal_runtime_s": runs[0]["ideal_runtime_s"], "goal": ">= 0.99"}
            ctx.say(f"efficiency {backend}/{scale}: {out[f'{backend}/{scale}']['efficiency']}")
    return out


def suite_fault(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    scale = ctx.pick("small", "tiny")
    for backend in ctx.backends:
        base, hit = [], []
        for _ in range(ctx.repeats):  # interleaved, so drift hits both alike
            base.append(ttg_run(ctx.out, backend=backend, scale=scale))
            hit.append(ttg_run(ctx.out, backend=backend, scale=scale, fault_demo=True,
                               kill_at=0.3))
        base_rt = statistics.median(r["runtime_s"] for r in base)
        recovered = [r["fault"]["recovered_after_s"] for r in hit
                     if r["fault"]["recovered_after_s"] is not None]
        out[backend] = {
            "no_fault_runtime_s": spread([r["runtime_s"] for r in base]),
            "fault_runtime_s": spread([r["runtime_s"] for r in hit]),
            "ratio": spread([r["runtime_s"] / base_rt for r in hit]),
            "recovered_after_s": spread(recovered) if recovered else None,
            "goal": "ratio <= 1.05, recovered <= 3 s"}
        ctx.say(f"fault {backend}: ratio {out[backend]['ratio']['median']:.3f}, "
                f"recovered {out[backend]['recovered_after_s']}")
    return out


def plain_loop_rate(n: int = 1_000_000) -> float:
    """The limit: params per second of one bare Python loop, no broker, no bookkeeping."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for param in range(n):
            placeholder(param, 0.0)
        best = min(best, time.perf_counter() - start)
    return n / best


def suite_overhead(ctx: Context) -> dict[str, Any]:
    params = ctx.pick(1_000_000, 50_000)
    rate = plain_loop_rate(min(params, 1_000_000))
    workers = 3
    limit = rate * min(os.cpu_count() or 1, workers)
    out: dict[str, Any] = {"plain_loop_params_s": rate, "limit_params_s": limit}
    for backend in ctx.backends:
        runs = [ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                        workers=workers) for _ in range(ctx.repeats)]
        tput = [r["throughput_params_s"] for r in runs]
        out[backend] = {"throughput_params_s": spread(tput),
                        "fraction_of_limit": spread([t / limit for t in tput]),
                        "runtime_s": spread([r["runtime_s"] for r in runs]), "goal": ">= 0.8"}
        ctx.say(f"overhead {backend}: {statistics.median(tput):,.0f} params/s = "
                f"{statistics.median(tput) / limit:.2f} of limit {limit:,.0f}")
    return out


def suite_chunks(ctx: Context) -> dict[str, Any]:
    params = ctx.pick(100_000, 10_000)
    out: dict[str, Any] = {}
    for backend in ctx.backends:
        runs = [ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                        chunk_size=10, workers=3) for _ in range(ctx.repeats)]
        rts = [r["runtime_s"] for r in runs]
        out[backend] = {"chunks": params // 10, "runtime_s": spread(rts),
                        "ms_per_chunk": statistics.median(rts) / (params // 10) * 1000,
                        "goal": "<= 2 s for 10,000 chunks"}
        ctx.say(f"chunks {backend}: {statistics.median(rts):.2f}s for {params // 10} chunks")
    return out


def suite_scaling(ctx: Context) -> dict[str, Any]:
    params, work_ms = ctx.pick((20_000, 5.0), (2_000, 5.0))
    counts = ctx.pick((1, 2, 4, 8, 16), (1, 2, 4))
    out: dict[str, Any] = {}
    for backend in ctx.backends:
        times: dict[int, list[float]] = {}
        for workers in counts:
            runs = [ttg_run(ctx.out, backend=backend, scale="medium", total_params=params,
                            chunk_size=100, work_ms=work_ms, workers=workers, no_restart=True)
                    for _ in range(ctx.repeats)]
            times[workers] = [r["runtime_s"] for r in runs]
        one = statistics.median(times[1])
        out[backend] = {str(w): {"runtime_s": spread(t), "speedup": one / statistics.median(t),
                                 "speedup_per_worker": one / statistics.median(t) / w}
                        for w, t in times.items()}
        ctx.say(f"scaling {backend}: " + ", ".join(
            f"{w}w x{one / statistics.median(t):.2f}" for w, t in times.items()))
    out["goal"] = "speedup >= 0.9 x workers"
    return out


def suite_latency(ctx: Context) -> dict[str, Any]:
    from latency import measure_latency

    samples = ctx.pick(300, 50)
    out = {}
    for backend in ctx.backends:
        out[backend] = measure_latency(backend, _url(backend), samples, ctx.out)
        ops = out[backend]["broker_ops_per_chunk"]
        ctx.say(f"latency {backend}: p50 {out[backend]['p50_ms']:.2f} ms, "
                f"p99 {out[backend]['p99_ms']:.2f} ms, "
                f"{'n/a' if ops is None else f'{ops:.1f}'} broker ops/chunk")
    return out


def suite_memory(ctx: Context) -> dict[str, Any]:
    sizes = ctx.pick((10_000, 100_000, 1_000_000), (10_000, 50_000))
    out: dict[str, Any] = {}
    for backend in ctx.backends:
        rows = {}
        for params in sizes:
            r = ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                        chunk_size=min(1_000, params // 10), workers=3)
            rows[str(params)] = {"worker_peak_rss_mib": r["worker_peak_rss_mib"],
                                 "orchestrator_peak_rss_mib": r["orchestrator_peak_rss_mib"]}
        out[backend] = rows
        ctx.say(f"memory {backend}: {rows}")
    out["goal"] = "worker < 100 MiB, orchestrator < 250 MiB, flat"
    return out


def suite_monitor(ctx: Context) -> dict[str, Any]:
    params = ctx.pick(1_000_000, 50_000)
    out: dict[str, Any] = {}
    for backend in ctx.backends:
        on, off = [], []
        for _ in range(ctx.repeats):
            on.append(ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                              sample_s=0.1)["runtime_s"])
            off.append(ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                               sample_s=0)["runtime_s"])
        out[backend] = {"sampling_every_0.1s": spread(on), "sampling_off": spread(off),
                        "ratio": statistics.median(on) / statistics.median(off)}
        ctx.say(f"monitor {backend}: on/off = {out[backend]['ratio']:.3f}")
    return out


def _url(backend: str) -> str:
    return env_broker_urls()[backend]


class Context:
    def __init__(self, args: argparse.Namespace, out: Path):
        self.quick = args.quick
        self.repeats = 1 if args.quick else args.repeats
        self.backends = args.backends.split(",")
        self.out = out

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def machine() -> dict[str, Any]:
    from ttg_lib.backends import make_backend

    versions = {}
    for backend in BACKENDS:
        try:
            with make_backend(backend, _url(backend)) as b:
                versions[backend] = b.server_version()
        except Exception as exc:  # a missing broker is reported, not fatal here
            versions[backend] = f"unavailable: {exc}"
    return {"cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), "brokers": versions,
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="all", help=f"comma list of {', '.join(SUITES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="redis,rabbitmq")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke)")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    args = parser.parse_args(argv)
    suites = SUITES if args.suite == "all" else tuple(args.suite.split(","))
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; allowed: {', '.join(SUITES)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.output_dir) / stamp
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, out / "runs-root")
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick,
                               "repeats": ctx.repeats, "suites": {}}
    started = time.monotonic()
    for name in suites:
        ctx.say(f"== {name}")
        results["suites"][name] = globals()[f"suite_{name}"](ctx)
        (out / "bench.json").write_text(json.dumps(results, indent=2))
    results["wall_s"] = time.monotonic() - started
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    from charts import write_chart

    chart = write_chart(results, out / "bench.html")
    print(json.dumps(results["suites"], indent=1, default=str)[:4000])
    print(f"\nwrote {out / 'bench.json'}" + (f" and {chart}" if chart else ""))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
