"""The benchmark results as one table: every figure beside its goal, one column per backend.

Printed at the end of a run and written as summary.md next to bench.json, so the README's
Performance section and a closing note quote the same numbers the JSON holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.tables import md_table

Row = tuple[str, str, dict[str, str]]


def rows(results: dict[str, Any]) -> list[Row]:
    suites = results["suites"]
    out: list[Row] = []
    for name, build in BUILDERS.items():
        if name in suites:
            out.extend(build(suites[name]))
    return out


def _spread(s: dict[str, float], fmt: str = "{:.3f}") -> str:
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def _backends(suite: dict[str, Any]) -> Iterator[str]:
    return (k for k in ("redis", "rabbitmq") if k in suite)


def _per_backend(suite: dict[str, Any], fn: Callable[[dict[str, Any]], str]) -> dict[str, str]:
    return {b: fn(suite[b]) for b in _backends(suite)}


def _efficiency(suite: dict[str, Any]) -> list[Row]:
    scales = sorted({key.split("/")[1] for key in suite}, key=["tiny", "small",
                                                              "medium"].index)
    return [(f"Efficiency, {scale}, 3 workers (ideal ÷ runtime)", "≥ 0.99",
             {b: _spread(suite[f"{b}/{scale}"]["efficiency"]) for b in ("redis", "rabbitmq")
              if f"{b}/{scale}" in suite}) for scale in scales]


def _fault(suite: dict[str, Any]) -> list[Row]:
    return [("One of 3 workers killed at 30 %: runtime ÷ no-fault", "≤ 1.05",
             _per_backend(suite, lambda r: _spread(r["ratio"]))),
            ("Dead worker's chunk taken by another worker after", "≤ 3 s",
             _per_backend(suite, _recovery))]


def _recovery(r: dict[str, Any]) -> str:
    """The recovery time, and how many repeats it covers when not every one recovered the
    victim's own chunk (a repeat is never dropped without a word)."""
    text = "n/a" if not r["recovered_after_s"] else _spread(r["recovered_after_s"], "{:.2f} s")
    repeats = r.get("repeats")
    if repeats is None:  # results written before repeats were counted
        return text
    if r["victim_chunk_recovered"] < repeats:
        text += (f" [of {repeats} repeats: {r.get('killed_repeats', repeats)} killed a worker, "
                 f"{r['recovered_repeats']} recovered, {r['victim_chunk_recovered']} the "
                 f"victim's own chunk]")
    return text


def _overhead(suite: dict[str, Any]) -> list[Row]:
    limit = suite["limit_params_s"]

    def budget(r: dict[str, Any]) -> str:
        cpu = r.get("cpu_us_per_chunk") or {}
        parts = [f"{label} {cpu[key]:.0f}" for key, label in (
            ("user_function", "function"), ("worker_rest", "worker rest"),
            ("orchestrator", "orchestrator"), ("broker", "broker")) if cpu.get(key) is not None]
        return " / ".join(parts) + " µs" if parts else "n/a"

    return [(f"Large preset ({suite.get('params', 1_000_000):,} params): throughput ÷ limit "
             f"({limit:,.0f} params/s)",
             "≥ 0.8", _per_backend(suite, lambda r: _spread(r["fraction_of_limit"], "{:.2f}"))),
            ("Large preset: runtime (verification after it)", "seconds",
             _per_backend(suite, lambda r: _spread(r["runtime_s"], "{:.2f} s")
                          + f" (+{r['verify_s']['median']:.2f} s)" if "verify_s" in r
                          else _spread(r["runtime_s"], "{:.2f} s"))),
            ("Large preset: CPU per 1,000-param chunk", "—", _per_backend(suite, budget))]


def _chunks(suite: dict[str, Any]) -> list[Row]:
    count = next((suite[b]["chunks"] for b in _backends(suite)), 0)
    return [(f"{count:,} chunks × 10 params, 0 ms", "≤ 2 s (10,000 chunks)",
             _per_backend(suite, lambda r: _spread(r["runtime_s"], "{:.2f} s")))]


def _scaling(suite: dict[str, Any]) -> list[Row]:
    def curve(r: dict[str, Any]) -> str:
        return " / ".join(f"{row['speedup']:.1f}" for row in r.values())

    counts = next((list(suite[b]) for b in _backends(suite)), [])
    size = (f"{suite['params']:,} × {suite['work_ms']:g} ms" if "params" in suite
            else "size not recorded")
    return [(f"Scaling, {size}: speed-up at {'/'.join(counts)} workers",
             "≥ 0.9 × workers", _per_backend(suite, curve))]


def _latency(suite: dict[str, Any]) -> list[Row]:
    return [("Per-chunk latency, one in flight, p50 / p99", "—",
             _per_backend(suite, lambda r: f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms")),
            ("Broker operations per chunk (Redis: every command, polls included; "
             "RabbitMQ: publishes + deliveries + acks + confirms in the vhost)", "—",
             _per_backend(suite, lambda r: "n/a" if r["broker_ops_per_chunk"] is None
                          else f"{r['broker_ops_per_chunk']:.1f}"))]


def _memory(suite: dict[str, Any]) -> list[Row]:
    def growth(key: str) -> Callable[[dict[str, Any]], str]:
        def text(r: dict[str, Any]) -> str:
            values = [row[key] for row in r.values()]
            return " → ".join("n/a" if v is None else f"{v:.0f}" for v in values) + " MiB"
        return text

    sizes = next((list(suite[b]) for b in _backends(suite)), [])
    span = f"{int(sizes[0]):,} → {int(sizes[-1]):,} params" if sizes else ""
    return [(f"Peak RSS of a worker, {span}", "< 100 MiB, flat",
             _per_backend(suite, growth("worker_peak_rss_mib"))),
            (f"Peak RSS of the orchestrator, {span}", "< 250 MiB, flat",
             _per_backend(suite, growth("orchestrator_peak_rss_mib")))]


def _monitor(suite: dict[str, Any]) -> list[Row]:
    def cost(r: dict[str, Any]) -> str:
        sample = r["per_sample"]
        broker = sample.get("broker_cpu_ms")
        total = sample["client_cpu_ms"] + (broker or 0)
        return f"{total:.2f} ms CPU ({total:.1f} % of a core at 10 Hz)"  # ms x 10/s

    return [("Monitor on (0.1 s sampling + `ttg monitor`) ÷ off, CPU-bound run", "≈ 1.00",
             _per_backend(suite, lambda r: f"{r['ratio']:.3f}")),
            ("One queue sample (client + broker)", "—", _per_backend(suite, cost))]


def _contain(suite: dict[str, Any]) -> list[Row]:
    ref = suite["reference"].replace("_", " ")
    return [(f"Compute process, large ({suite['params']:,} params): throughput ÷ {ref}",
             "≥ 0.95", _per_backend(suite, lambda r: _spread(r["throughput_ratio"]))),
            (f"Compute process, {suite['small_scale']}: efficiency", "≥ 0.99",
             _per_backend(suite, lambda r: _spread(
                 r["small_efficiency"]["compute_process"], "{:.4f}")))]


BUILDERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "efficiency": _efficiency, "fault": _fault, "overhead": _overhead, "chunks": _chunks,
    "scaling": _scaling, "latency": _latency, "memory": _memory, "monitor": _monitor,
    "contain": _contain}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    load = results.get("load_at_start")
    lines = [f"Measured {m['when']} on {m['cores']} cores, Python {m['python']}, "
             f"Redis {m['brokers'].get('redis')}, RabbitMQ {m['brokers'].get('rabbitmq')}; "
             f"{results['repeats']} repeat(s), median (min–max).", "",
             *([f"`{results['command']}` at {results.get('commit')}; load average "
                f"{load[0]:.2f} at the start, {results['load_at_end'][0]:.2f} at the end; "
                f"{results['wall_s'] / 60:.0f} min.", ""] if load and "load_at_end" in results
               else []),
             *md_table(["what", "goal", "Redis", "RabbitMQ"])]
    for what, goal, values in rows(results):
        lines.append(f"| {what} | {goal} | {values.get('redis', '—')} | "
                     f"{values.get('rabbitmq', '—')} |")
    return "\n".join(lines) + "\n"


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="TTG benchmarks (median, min–max)")
    for col in ("what", "goal", "Redis", "RabbitMQ"):
        table.add_column(col, overflow="fold")
    for what, goal, values in rows(results):
        table.add_row(what, goal, values.get("redis", "—"), values.get("rabbitmq", "—"))
    Console(width=160).print(table)
