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
latency     one chunk in flight: publish -> result read, p50/p99; broker ops per chunk
memory      peak RSS of workers and orchestrator, 10k -> 1M params  goal < 100 / 250 MiB
monitor     the large run with queue sampling on vs off             goal: no measurable cost
contain     the compute process (a point fails alone) vs computing in the worker
            (TTG_ISOLATE=0) and, with --baseline TREE, vs another checkout (e.g. the
            commit before it), interleaved (the large preset 5 x a repeat): large
            throughput goal >= 0.95 x, small efficiency goal >= 0.99

The fault table (hung, killed, broker outages, a killed orchestrator, the monitor against
the broker's own figures) is benchmarks/faults.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from brokercpu import broker_pid, process_cpu_s  # noqa: E402

from benchmarks.stamp import fresh_dir, header  # noqa: E402
from ttg_lib.backends import backend_names, env_urls  # noqa: E402
from ttg_lib.compute import placeholder  # noqa: E402
from ttg_lib.record import git_commit  # noqa: E402
from ttg_lib.summary import RunSummary  # noqa: E402

BACKENDS = backend_names(runnable=True)
SUITES = ("efficiency", "fault", "overhead", "chunks", "scaling", "latency", "memory", "monitor",
          "contain")


def ttg_run(out: Path, env: dict[str, str] | None = None, cwd: Path = ROOT,
            **flags: Any) -> RunSummary:
    """One `ttg run --json` in its own process (``env``: added to the environment; ``cwd``:
    the checkout whose ttg_lib runs); returns its summary, typed."""
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
            "--output-dir", str(fresh_dir(out))]
    for key, value in flags.items():
        if value is True:
            args.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ttg run failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    summary = RunSummary.from_dict(json.loads(proc.stdout))
    if not summary.ok:
        raise RuntimeError(f"run {summary.run_id} failed verification: {summary.problems}")
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
                "efficiency": spread([r.efficiency for r in runs]),
                "runtime_s": spread([r.runtime_s for r in runs]),
                "ideal_runtime_s": runs[0].ideal_runtime_s, "goal": ">= 0.99"}
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
        base_rt = statistics.median(r.runtime_s for r in base)
        faults = [r.fault for r in hit]  # None: the run ended before the kill
        recovered = [f.recovered_after_s for f in faults
                     if f is not None and f.recovered_after_s is not None]
        out[backend] = {
            "no_fault_runtime_s": spread([r.runtime_s for r in base]),
            "fault_runtime_s": spread([r.runtime_s for r in hit]),
            "ratio": spread([r.runtime_s / base_rt for r in hit]),
            "recovered_after_s": spread(recovered) if recovered else None,
            # every repeat is counted: one without a kill (the run was over first), without
            # a recovery (no chunk in flight) or recovering another chunk shows in the table
            "repeats": len(faults), "killed_repeats": sum(bool(f) for f in faults),
            "recovered_repeats": len(recovered),
            "victim_chunk_recovered": sum(f is not None and f.victim_chunk is not None
                                          and f.recovered_chunk == f.victim_chunk
                                          for f in faults),
            "goal": "ratio <= 1.05, recovered <= 3 s"}
        ctx.say(f"fault {backend}: ratio {out[backend]['ratio']['median']:.3f}, "
                f"recovered {out[backend]['recovered_after_s']} in "
                f"{len(recovered)} of {len(faults)} repeats")
    return out


LARGE_RUNS = 5  # large-preset runs per repeat and variant: ~0.5 s each, so one hiccup moves
# one by 10 % (three repeats once gave 0.845-0.994); five cost ~10 s beside a 35-s small run


def suite_contain(ctx: Context) -> dict[str, Any]:
    """What computing in a supervised compute process costs, side by side in one invocation:
    this tree with it, this tree without it (TTG_ISOLATE=0), and --baseline TREE if given."""
    params = ctx.pick(1_000_000, 50_000)
    small = ctx.pick("small", "tiny")
    variants: dict[str, tuple[dict[str, str], Path]] = {
        "compute_process": ({}, ROOT), "in_worker": ({"TTG_ISOLATE": "0"}, ROOT)}
    if ctx.baseline:
        variants["baseline"] = ({"PYTHONPATH": str(ctx.baseline)}, ctx.baseline)
    reference = "baseline" if ctx.baseline else "in_worker"
    out: dict[str, Any] = {"params": params, "small_scale": small, "reference": reference,
                           "variants": list(variants)}
    for backend in ctx.backends:
        large: dict[str, list[float]] = {v: [] for v in variants}
        eff: dict[str, list[float]] = {v: [] for v in variants}
        names = list(variants)
        for repeat in range(ctx.repeats):  # interleaved, each variant first in turn, so
            order = names[repeat % len(names):] + names[:repeat % len(names)]  # drift and
            for _ in range(ctx.pick(LARGE_RUNS, 1)):  # order hit every variant alike
                for name in order:
                    env, tree = variants[name]
                    run = ttg_run(ctx.out, env=env, cwd=tree, backend=backend, scale="large",
                                  total_params=params, workers=3)
                    large[name].append(run.throughput_params_s)
            for name in order:
                env, tree = variants[name]
                run = ttg_run(ctx.out, env=env, cwd=tree, backend=backend, scale=small,
                              workers=3)
                eff[name].append(run.efficiency)
        ref = statistics.median(large[reference])
        out[backend] = {
            "large_throughput_params_s": {v: spread(t) for v, t in large.items()},
            "small_efficiency": {v: spread(e) for v, e in eff.items()},
            "throughput_ratio": spread([t / ref for t in large["compute_process"]]),
            "goal": "throughput ratio >= 0.95, efficiency >= 0.99"}
        ctx.say(f"contain {backend}: throughput x{out[backend]['throughput_ratio']['median']:.3f}"
                f" of {reference}; small efficiency "
                + ", ".join(f"{v} {statistics.median(e):.4f}" for v, e in eff.items()))
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
    out: dict[str, Any] = {"params": params, "plain_loop_params_s": rate,
                           "limit_params_s": limit}
    for backend in ctx.backends:
        pid = broker_pid(backend, _url(backend))
        runs, budgets = [], []
        for _ in range(ctx.repeats):
            before = process_cpu_s(pid)
            runs.append(ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                                workers=workers))
            after = process_cpu_s(pid)
            broker = None if before is None or after is None else after - before
            budgets.append(cpu_budget(runs[-1], broker))
        tput = [r.throughput_params_s for r in runs]
        out[backend] = {"throughput_params_s": spread(tput),
                        "fraction_of_limit": spread([t / limit for t in tput]),
                        "runtime_s": spread([r.runtime_s for r in runs]),
                        "verify_s": spread([r.verify_s for r in runs]),
                        "cpu_us_per_chunk": _median_budget(budgets), "goal": ">= 0.8"}
        ctx.say(f"overhead {backend}: {statistics.median(tput):,.0f} params/s = "
                f"{statistics.median(tput) / limit:.2f} of limit {limit:,.0f}; CPU per chunk "
                + ", ".join(f"{k} {v:.0f} us" for k, v in out[backend]["cpu_us_per_chunk"].items()
                            if v is not None))
    return out


def cpu_budget(summary: RunSummary, broker_s: float | None) -> dict[str, float | None]:
    """CPU microseconds per chunk by where they went; the broker's is its whole-run CPU (it
    includes set-up and the final queue reads, so it is an upper bound)."""
    cpu, chunks = summary.cpu_s or {}, summary.chunks_total

    def per_chunk(seconds: float | None) -> float | None:
        return None if seconds is None else seconds / chunks * 1e6

    workers, compute = cpu.get("workers"), cpu.get("workers_compute")
    return {"user_function": per_chunk(compute),
            "worker_rest": per_chunk(None if workers is None else workers - compute),
            "orchestrator": per_chunk(cpu.get("orchestrator")), "broker": per_chunk(broker_s)}


def _median_budget(budgets: list[dict[str, float | None]]) -> dict[str, float | None]:
    keys = budgets[0].keys()
    return {k: (statistics.median(v) if (v := [b[k] for b in budgets if b[k] is not None])
                else None) for k in keys}


def suite_chunks(ctx: Context) -> dict[str, Any]:
    params = ctx.pick(100_000, 10_000)
    out: dict[str, Any] = {}
    for backend in ctx.backends:
        runs = [ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                        chunk_size=10, workers=3) for _ in range(ctx.repeats)]
        rts = [r.runtime_s for r in runs]
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
            times[workers] = [r.runtime_s for r in runs]
        one = statistics.median(times[1])
        out[backend] = {str(w): {"runtime_s": spread(t), "speedup": one / statistics.median(t),
                                 "speedup_per_worker": one / statistics.median(t) / w}
                        for w, t in times.items()}
        ctx.say(f"scaling {backend}: " + ", ".join(
            f"{w}w x{one / statistics.median(t):.2f}" for w, t in times.items()))
    out.update(goal="speedup >= 0.9 x workers", params=params, work_ms=work_ms)
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
            rows[str(params)] = {"worker_peak_rss_mib": r.worker_peak_rss_mib,
                                 "orchestrator_peak_rss_mib": r.orchestrator_peak_rss_mib}
        out[backend] = rows
        ctx.say(f"memory {backend}: {rows}")
    out["goal"] = "worker < 100 MiB, orchestrator < 250 MiB, flat"
    return out


def suite_monitor(ctx: Context) -> dict[str, Any]:
    """The monitor's cost two ways: CPU per queue sample (client and broker), and the runtime
    of a CPU-bound run (2,000,000 params, below the deferred-verification cap) with sampling
    every 0.1 s plus a `ttg monitor --interval 0.1` process, against neither, interleaved."""
    params = ctx.pick(2_000_000, 50_000)
    out: dict[str, Any] = {}
    for backend in ctx.backends:
        on, off = [], []
        for _ in range(ctx.pick(max(3, ctx.repeats), 1)):
            with external_monitor(backend, ctx.out):
                on.append(ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                                  sample_s=0.1).runtime_s)
            off.append(ttg_run(ctx.out, backend=backend, scale="large", total_params=params,
                               sample_s=0).runtime_s)
        sample = sample_cost(backend)
        out[backend] = {"monitored_runtime_s": spread(on), "unmonitored_runtime_s": spread(off),
                        "ratio": statistics.median(on) / statistics.median(off),
                        "per_sample": sample, "goal": "no measurable cost"}
        ctx.say(f"monitor {backend}: runtime on/off = {out[backend]['ratio']:.3f}; a sample "
                f"costs {sample['client_cpu_ms']:.2f} ms CPU here + "
                f"{sample['broker_cpu_ms'] or 0:.2f} ms in the broker")
    return out


@contextlib.contextmanager
def external_monitor(backend: str, out: Path) -> Iterator[None]:
    """`ttg monitor --interval 0.1` in its own process for the duration; waits for its
    first frame so start-up is not billed to the run."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"monitor-{backend}.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "ttg_lib.cli", "monitor", "--backend",
                                 backend, "--interval", "0.1"], stdout=sink,
                                stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "TTY_INTERACTIVE": "1",  # render every
                                     "TTY_COMPATIBLE": "1"})  # refresh, as on a terminal
        try:
            deadline = time.monotonic() + 20
            while log.stat().st_size == 0 and proc.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("ttg monitor printed nothing within 20 s")
                time.sleep(0.05)
            yield
        finally:
            proc.terminate()
            proc.wait(10)


def sample_cost(backend_name: str, samples: int = 200) -> dict[str, float | None]:
    """What one queue sample (Backend.stats(), as the run and `ttg monitor` take) costs."""
    from ttg_lib.backends import open_producer

    pid = broker_pid(backend_name, _url(backend_name))
    with open_producer(backend_name, _url(backend_name)) as backend:
        backend.stats()  # warm-up
        broker0, cpu0, wall0 = process_cpu_s(pid), time.process_time(), time.perf_counter()
        for _ in range(samples):
            backend.stats()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        broker1 = process_cpu_s(pid)
    broker = None if broker0 is None or broker1 is None else (broker1 - broker0) / samples
    return {"wall_ms": wall / samples * 1000, "client_cpu_ms": cpu / samples * 1000,
            "broker_cpu_ms": None if broker is None else broker * 1000}


def _url(backend: str) -> str:
    return env_urls()[backend]


class Context:
    def __init__(self, args: argparse.Namespace, out: Path):
        self.quick = args.quick
        self.repeats = 1 if args.quick else args.repeats
        self.backends = args.backends.split(",")
        self.out = out
        self.baseline = Path(args.baseline).resolve() if args.baseline else None

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def machine() -> dict[str, Any]:
    from ttg_lib.backends import open_producer

    versions = {}
    for backend in BACKENDS:
        try:
            with open_producer(backend, _url(backend)) as b:
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
    parser.add_argument("--baseline", default=None, metavar="TREE",
                        help="contain suite: also run this checkout (e.g. a git worktree of "
                             "the commit before the compute process) side by side")
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
    stamp_info = {k: v for k, v in header("bench.py", argv).items() if k != "machine"}
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick,
                               "repeats": ctx.repeats, **stamp_info,
                               "commit": git_commit(short=True, cwd=ROOT), "suites": {}}
    started = time.monotonic()
    for name in suites:
        ctx.say(f"== {name}")
        results["suites"][name] = globals()[f"suite_{name}"](ctx)
        (out / "bench.json").write_text(json.dumps(results, indent=2))
    results["wall_s"] = time.monotonic() - started
    results["load_at_end"] = os.getloadavg()
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    from charts import write_chart
    from summary import markdown, print_table

    chart = write_chart(results, out / "bench.html")
    (out / "summary.md").write_text(markdown(results))
    print_table(results)
    print(f"\nwrote {out / 'bench.json'}, {out / 'summary.md'}"
          + (f" and {chart}" if chart else ""))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
