"""One offline HTML page of benchmark charts (plotly.js embedded, no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import plotly.graph_objects  # noqa: F401  (checks plotly is installed)
        from plotly.subplots import make_subplots
    except ImportError:
        print("plotly not installed (pip install 'ttg[notebooks]'): no chart written")
        return None
    suites = results["suites"]
    fig = make_subplots(rows=3, cols=2, subplot_titles=(
        "Efficiency (ideal / runtime)", "Scaling: speed-up vs workers",
        "Fault: runtime vs no-fault", "Peak memory (MiB)",
        "Large preset: CPU µs per 1,000-param chunk", "Per chunk (ms)"))
    for name, row in suites.get("efficiency", {}).items():
        eff = row["efficiency"]
        fig.add_bar(x=[name], y=[eff["median"]], name=name, row=1, col=1,
                    error_y={"type": "data", "symmetric": False,
                             "array": [eff["max"] - eff["median"]],
                             "arrayminus": [eff["median"] - eff["min"]]})
    scaling = {b: rows for b, rows in suites.get("scaling", {}).items()
               if b in ("redis", "rabbitmq")}  # the suite also holds its goal and size
    for backend, rows in scaling.items():
        workers = [int(w) for w in rows]
        fig.add_scatter(x=workers, y=[rows[str(w)]["speedup"] for w in workers],
                        mode="lines+markers", name=f"{backend} speed-up", row=1, col=2)
    if scaling:
        top = max(int(w) for rows in scaling.values() for w in rows)
        fig.add_scatter(x=[1, top], y=[1, top], mode="lines", name="linear",
                        line={"dash": "dot"}, row=1, col=2)
    for backend, row in suites.get("fault", {}).items():
        fig.add_bar(x=[backend], y=[row["ratio"]["median"]], name=f"{backend} fault/no-fault",
                    row=2, col=1)
    for backend, rows in suites.get("memory", {}).items():
        if backend == "goal":
            continue
        sizes = list(rows)
        fig.add_scatter(x=[int(s) for s in sizes], y=[rows[s]["worker_peak_rss_mib"]
                                                      for s in sizes],
                        mode="lines+markers", name=f"{backend} worker", row=2, col=2)
        fig.add_scatter(x=[int(s) for s in sizes], y=[rows[s]["orchestrator_peak_rss_mib"]
                                                      for s in sizes],
                        mode="lines+markers", name=f"{backend} orchestrator", row=2, col=2)
    fig.update_xaxes(type="log", row=2, col=2)
    fig.update_yaxes(rangemode="tozero", row=2, col=2)  # flat must look flat
    _cpu_budget(fig, suites.get("overhead", {}))
    _per_chunk(fig, suites.get("chunks", {}), suites.get("latency", {}))
    machine = results["machine"]
    fig.update_layout(height=1200, barmode="group",
                      title=f"TTG benchmarks — {machine['when']}, {machine['cores']} cores")
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path


BUDGET = (("user_function", "user function"), ("worker_rest", "worker, rest"),
          ("orchestrator", "orchestrator"), ("broker", "broker"))


def _cpu_budget(fig: Any, overhead: dict[str, Any]) -> None:
    """Stacked per backend: how far the user's function is from being all the CPU spent."""
    backends = [b for b in ("redis", "rabbitmq") if b in overhead]
    for key, label in BUDGET:
        values = [(overhead[b].get("cpu_us_per_chunk") or {}).get(key) for b in backends]
        fig.add_bar(x=backends, y=values, name=label, row=3, col=1,
                    offsetgroup="budget", legendgroup="budget")
    fig.update_yaxes(title_text="µs", row=3, col=1)
    # Stack the four parts: each bar starts where the previous ones end.
    bases = [0.0] * len(backends)
    for trace in fig.data[-len(BUDGET):]:
        trace.base = list(bases)
        bases = [b + (v or 0) for b, v in zip(bases, trace.y, strict=True)]


def _per_chunk(fig: Any, chunks: dict[str, Any], latency: dict[str, Any]) -> None:
    for backend in ("redis", "rabbitmq"):
        x, y = [], []
        if backend in chunks:
            x.append("10,000-chunk run, per chunk")
            y.append(chunks[backend]["ms_per_chunk"])
        if backend in latency:
            x += ["latency p50", "latency p99"]
            y += [latency[backend]["p50_ms"], latency[backend]["p99_ms"]]
        if x:
            fig.add_bar(x=x, y=y, name=f"{backend} per chunk", row=3, col=2)
