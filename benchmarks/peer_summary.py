"""The peers benchmark as markdown: one column per system, one row per workload.

Written as summary.md beside bench.json and printed, so the README and a closing note quote
the numbers the JSON holds.
"""

from __future__ import annotations

from typing import Any

LABELS = {"dask": "Dask", "ray": "Ray", "ttg-redis": "TTG (Redis)",
          "ttg-rabbitmq": "TTG (RabbitMQ)"}


def _cell(w: dict[str, Any], row: dict[str, Any] | None) -> str:
    """Time from first submit to last result, with what this workload is about."""
    if row is None:
        return "—"
    if "error" in row:
        return f"failed: {row['error'][:60]}"
    text = f"{row['runtime_s']:.2f} s"
    if w["work_ms"] > 0:
        text += f" (eff. {row['efficiency']:.3f})"
    else:
        rate = row["throughput_params_s"]
        text += f" ({rate / 1e6:.2f} M/s)" if rate >= 1e6 else f" ({rate:,.0f} params/s)"
    if w.get("kill_at"):
        n = row.get("chunks_rerun")
        killed = row.get("killed")
        text += (" (no worker killed)" if not killed else
                 f", {n} chunk{'s' if n != 1 else ''} re-run" if n is not None else "")
    if not row.get("checked"):
        text += " ✗ not all results checked"
    return text


def _rss(row: dict[str, Any] | None) -> str:
    if row is None or "error" in row:
        return "—"
    return f"{row['driver_peak_rss_mib']:.0f}"


def markdown(results: dict[str, Any]) -> str:
    systems = list(results["systems"])
    m = results["machine"]
    head = "| workload | " + " | ".join(LABELS.get(s, s) for s in systems) + " |"
    rule = "|---|" + "---|" * len(systems)

    def rows(fn: Any) -> list[str]:
        out = []
        for name, w in results["workloads"].items():
            ideal = w["ideal_s"]
            label = w["label"] + (f" (ideal {ideal:.1f} s)" if ideal else "")
            cells = [fn(w, results["systems"][s].get("workloads", {}).get(name))
                     for s in systems]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        return out

    startup = [("—" if r.get("startup_s") is None else f"{r['startup_s']:.1f} s")
               + (f" (+ {r['broker_start_s']:.1f} s private broker)"
                  if r.get("broker_start_s") is not None else "")
               for r in results["systems"].values()]
    load = m.get("loadavg_at_start")
    lines = [
        f"### Peers: Dask, Ray and TTG on the same chunks{' (quick)' if results['quick'] else ''}",
        "",
        f"`{results['command']}` — {m['when']}, {m['cores']} cores, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
        + (f"; load average {load[0]:.2f} at start" if load else "")
        + (f"; under nice {results['nice']}" if results.get("nice") else "")
        + ("; TTG on private brokers started by the benchmark"
           if results.get("private_brokers") else "")
        + ("; Dask and Ray tasks return their values pickled (--packed-results)"
           if results.get("packed_results") else "")
        + (f"; TTG settings {results['ttg_settings']}" if results["ttg_settings"] else ""),
        "",
        "Time from the first chunk submitted to the last result in hand (3 workers):",
        "",
        head, rule,
        "| start-up: cluster and 3 workers ready (TTG: per run, median) | "
        + " | ".join(startup) + " |",
        *rows(_cell),
        "",
        "Driver's peak RSS while the workload ran, MiB (TTG: the orchestrator; Dask: client "
        "and scheduler, which LocalCluster runs in the driver; Ray: the driver, not its "
        "raylet or object store):",
        "",
        head, rule,
        *rows(lambda w, r: _rss(r)),
        "",
        "Dask's and Ray's results are gathered in the driver and checked against a direct "
        "recomputation; TTG keeps its results in results.parquet and verifies them itself "
        "(every point present once; values recomputed on other workers: all for TTG's own "
        "functions, a sample for the dict function), and its time runs to complete_s (every "
        "result and recomputation in, on disk). ✗ marks a cell whose results were not all "
        "there and right.",
    ]
    errors = [f"- {LABELS.get(s, s)}: {r['error']}" for s, r in results["systems"].items()
              if "error" in r]
    if errors:
        lines += ["", "Systems that did not run:", *errors]
    return "\n".join(lines) + "\n"

