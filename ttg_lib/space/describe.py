"""A space in words, for the lines printed before a run (``ttg run --dry-run``, notebooks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Scalar, Space


def describe_space(data: Mapping[str, Any]) -> str:
    """``grid over lr × depth`` from a space's dict (the run record's), without loading it."""
    if "union" in data:
        text = "union of " + " and ".join(describe_space(part) for part in data["union"])
    else:
        names = [*(data.get("axes") or {}), *(data.get("derived") or {})]
        text = f"{data.get('mode', 'grid')} over {' × '.join(names)}"
        return text + (f" where {data['where']}" if data.get("where") else "")
    if data.get("derived"):
        text += f", with {', '.join(data['derived'])}"
    return text + (f" where {data['where']}" if data.get("where") else "")


def preview(space: Space, count: int = 5) -> list[dict[str, Scalar]]:
    """The space's first ``count`` points, as the function will receive them."""
    return space.points(0, min(count, space.size))


def run_preview(config: Any, count: int = 5) -> dict[str, Any]:
    """What ``ttg run --dry-run`` shows of a run on any cluster: how many points and chunks,
    and the first points the function will be called with. Nothing is started."""
    from .. import compute
    from .load import check_signature, load_space

    fn = compute.load(config.compute)  # what the run would refuse, the dry run refuses
    if config.space is not None:
        space = load_space(config.space)
        check_signature(space, fn, config.compute)
        first: list[dict[str, Any]] = preview(space, count)
        what = describe_space(config.space)
    else:
        first = [{"param_id": i} for i in range(min(count, config.total_params))]
        what = f"param ids 0..{config.total_params - 1} ({config.work_ms:g} ms each)"
    return {"run_id": config.run_id, "backend": config.backend, "cluster": config.cluster,
            "workers": config.workers, "compute": config.compute, "space": what,
            "points": config.total_params, "chunks": config.chunks_total,
            "chunk_size": config.chunk_size, "first_points": first}


def format_preview(plan: Mapping[str, Any]) -> str:
    lines = [f"dry run {plan['run_id']}: {plan['points']:,} points in {plan['chunks']:,} chunks "
             f"of {plan['chunk_size']:,}, {plan['workers']} workers on {plan['cluster']} "
             f"({plan['backend']}); nothing started",
             f"space: {plan['space']}, computed by {plan['compute']}",
             f"first {len(plan['first_points'])} points:"]
    lines += [f"  {i}: " + ", ".join(f"{k}={v!r}" for k, v in point.items())
              for i, point in enumerate(plan["first_points"])]
    reused = plan.get("reused") or {}
    if reused:
        lines.append(f"reused from earlier runs (before their check): {sum(reused.values()):,} "
                     f"points (" + ", ".join(f"{n:,} from {run}" for run, n in reused.items())
                     + ")")
    return "\n".join(lines)
