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
    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "Efficiency (ideal / runtime)", "Scaling: speed-up vs workers",
        "Fault: runtime vs no-fault", "Peak memory (MiB)"))
    for name, row in suites.get("efficiency", {}).items():
        eff = row["efficiency"]
        fig.add_bar(x=[name], y=[eff["median"]], name=name, row=1, col=1,
                    error_y={"type": "data", "symmetric": False,
                             "array": [eff["max"] - eff["median"]],
                             "arrayminus": [eff["median"] - eff["min"]]})
    scaling = suites.get("scaling", {})
    for backend, rows in scaling.items():
        if backend == "goal":
            continue
        workers = [int(w) for w in rows]
        fig.add_scatter(x=workers, y=[rows[str(w)]["speedup"] for w in workers],
                        mode="lines+markers", name=f"{backend} speed-up", row=1, col=2)
    if scaling:
        top = max(int(w) for b, rows in scaling.items() if b != "goal" for w in rows)
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
    fig.update_layout(height=800, title=f"TTG benchmarks — {results['machine']['when']}, "
                                        f"{results['machine']['cores']} cores")
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
