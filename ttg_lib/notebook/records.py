"""Reading a finished run back from its record (``outputs/runs/<run_id>/``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..paths import record_dir
from ..record import load_json, load_summary_dict


def load_run(run_id: str, output_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    path = record_dir(run_id, output_dir)
    if not (path / "summary.json").exists():
        raise FileNotFoundError(f"no finished run {run_id!r}: {path / 'summary.json'} is missing"
                                f" (runs there: {', '.join(_run_ids(path.parent)) or 'none'})")
    return load_summary_dict(path)


def _run_ids(runs_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in runs_dir.glob("*/summary.json"))




def queue_stats(summary: dict[str, Any]) -> dict[str, Any] | None:
    return load_json(Path(summary["record_dir"]) / "queue_stats.json", None)


def check_verified(summary: dict[str, Any]) -> None:
    """Fail the cell (and so papermill and CI) when the run is not fully verified."""
    if not summary.get("ok"):
        problems = "; ".join(summary.get("problems", [])[:5]) or summary.get("state", "?")
        raise RuntimeError(f"run {summary.get('run_id')} is not verified: {problems}")
