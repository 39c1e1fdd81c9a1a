"""Reading a finished run back from its record (``outputs/runs/<run_id>/``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..paths import record_dir
from ..record import load_json, load_summary
from ..summary import RunSummary, as_summary

Summary = RunSummary | Mapping[str, Any]  # typed, or summary.json's dict (typed on entry)


def load_run(run_id: str, output_dir: str | os.PathLike[str] | None = None) -> RunSummary:
    path = record_dir(run_id, output_dir)
    if not (path / "summary.json").exists():
        raise FileNotFoundError(f"no finished run {run_id!r}: {path / 'summary.json'} is missing"
                                f" (runs there: {', '.join(_run_ids(path.parent)) or 'none'})")
    return load_summary(path)


def _run_ids(runs_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in runs_dir.glob("*/summary.json"))




def queue_stats(summary: Summary) -> dict[str, Any] | None:
    return load_json(Path(as_summary(summary).record_dir) / "queue_stats.json", None)


def check_verified(summary: Summary) -> None:
    """Fail the cell (and so papermill and CI) when the run is not fully verified."""
    s = as_summary(summary)
    if not s.ok:
        problems = "; ".join((s.problems or [])[:5]) or s.state or "?"
        raise RuntimeError(f"run {s.run_id} is not verified: {problems}")
