"""Chart data: samples, throughput and event markers, from live progress or a record."""

from __future__ import annotations

from typing import Any

THROUGHPUT_WINDOW_S = 2.0


def sample_from_progress(progress: Any) -> dict[str, Any]:
    """One chart sample from a :class:`ttg_lib.run.Progress`, shaped like samples.jsonl."""
    row: dict[str, Any] = {"t": round(progress.elapsed_s, 3), "completed":
                           progress.chunks_completed, "failed": progress.chunks_failed,
                           "params_done": progress.params_done,
                           "live_workers": progress.live_workers}
    if progress.stats:
        for role in ("tasks", "results", "retry", "dlq"):
            row[role] = progress.stats[role]["messages"]
            row[f"{role}_ready"] = progress.stats[role]["ready"]
        row["consumers"] = progress.stats["tasks"]["consumers"]
    return row


def throughput(samples: list[dict[str, Any]], window_s: float = THROUGHPUT_WINDOW_S
               ) -> tuple[list[float], list[float]]:
    """Params per second over a sliding window, one value per sample."""
    xs, ys = [], []
    j = 0
    for i, s in enumerate(samples):
        while j < i and s["t"] - samples[j]["t"] > window_s:
            j += 1
        dt = s["t"] - samples[j]["t"]
        xs.append(s["t"])
        ys.append(round((s["params_done"] - samples[j]["params_done"]) / dt, 2) if dt > 0
                  else 0.0)
    return xs, ys


def marks_from_events(events: list[dict[str, Any]], t0_wall: float,
                      fault: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Vertical markers on the run's time axis: the fault injection and every worker
    death and replacement (initial starts and the final stops are not marked)."""
    marks = []
    fault_worker = (fault or {}).get("killed_worker")
    for e in events:
        kind = e["event"]
        if kind not in ("killed", "died", "replaced", "frozen", "hung"):
            continue
        t = round(e["t"] - t0_wall, 3)
        if kind == "killed" and e["worker"] == fault_worker:
            label, kind = f"fault: {e['worker']} killed", "fault"
            fault_worker = None
        elif kind == "replaced":
            label = f"{e['worker']} {e.get('detail', '').split(', ')[-1]}".strip()
        else:
            label = f"{e['worker']} {kind}"
        marks.append({"t": t, "kind": kind, "label": label})
    return marks


READY_ONLY = " ready (total unknown)"


def _series(samples: list[dict[str, Any]], key: str) -> tuple[list[float], list[Any]]:
    """One line of the chart. A queue whose total the broker could not give in any sample
    (RabbitMQ without its management API) is drawn by its ready count, which
    :func:`series_label` says; never by a total guessed from it."""
    if _ready_only(samples, key):
        key = f"{key}_ready"
    rows = [s for s in samples if key in s]
    return [s["t"] for s in rows], [s[key] for s in rows]


def series_label(samples: list[dict[str, Any]], key: str, name: str) -> str:
    return name + READY_ONLY if _ready_only(samples, key) else name


def _ready_only(samples: list[dict[str, Any]], key: str) -> bool:
    return (any(s.get(f"{key}_ready") is not None for s in samples)
            and all(s.get(key) is None for s in samples))


def _t0_wall(samples: list[dict[str, Any]]) -> float | None:
    for s in samples:
        if "wall" in s:
            return s["wall"] - s["t"]
    return None


def _final_sample(summary: dict[str, Any], samples: list[dict[str, Any]],
                  stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """The end state, when the last periodic sample came before the last result: queue
    depths from queue_stats.json, progress from summary.json, at the last result's time."""
    if not samples or not stats or summary.get("runtime_s") is None:
        return None
    last = samples[-1]
    if last.get("completed", 0) >= summary.get("chunks_completed", 0):
        return None
    row = {**last, "t": max(last["t"], summary["runtime_s"]),
           "completed": summary["chunks_completed"], "failed": summary.get("chunks_failed", 0),
           "params_done": summary.get("params_verified", last.get("params_done", 0))}
    for role in ("tasks", "results", "retry", "dlq"):
        if role in stats:  # drawn like the samples before it: totals, or ready counts
            row[role] = stats[role]["messages"] if last.get(role) is not None else None
            row[f"{role}_ready"] = stats[role]["ready"]
    row.pop("wall", None)
    return row
