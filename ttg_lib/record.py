"""The run record: everything a notebook needs to rebuild tables and charts later.

Layout of ``outputs/runs/<run_id>/``::

    config.json        the validated RunConfig (passwords redacted)
    environment.json   Python, client and broker versions, git commit, machine
    chunks.jsonl       one line per result message: worker, start, end, attempt
    samples.jsonl      queue depths and progress every sample interval
    events.json        worker lifecycle, fault injection, broker outages
    queue_stats.json   the four TTG queues after completion
    dlq.json           dead-lettered messages with their reasons
    summary.json       :class:`ttg_lib.summary.RunSummary` as JSON
    results.parquet    one row per point (:mod:`ttg_lib.results`); results.parts/ while the
                       run goes, so a resumed run finds what was on disk
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .messages import compact_json

if TYPE_CHECKING:
    from .summary import RunSummary


class RunRecord:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._streams: dict[str, TextIO] = {}

    def write_json(self, name: str, data: Any) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
        return path

    def write_end(self, *, events: list[dict[str, Any]], fault: Any, outages: list[Any],
                  workers: list[Any], stats: Any, dead: list[dict[str, Any]]) -> None:
        """The files a finished run leaves beside its summary: what happened to its workers
        and the broker, each worker's last state, the queues' final depths, dead letters."""
        self.write_json("events.json", {"workers": events, "fault": fault,
                                        "broker_outages": outages})
        self.write_json("workers.json", [w.to_dict() for w in workers])
        if stats is not None:
            self.write_json("queue_stats.json", stats.to_dict())
        self.write_json("dlq.json", dead)

    def append(self, name: str, row: dict[str, Any]) -> None:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = (self.dir / name).open("a", buffering=1 << 16)
        stream.write(compact_json(row) + "\n")

    def flush(self) -> None:
        """Make appended lines visible to readers (notebooks, tests, `tail -f`)."""
        for stream in self._streams.values():
            stream.flush()

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()


def load_summary(record_dir: str | Path) -> RunSummary:
    """A finished run's summary, typed (:class:`ttg_lib.summary.RunSummary`, its verdict
    nested): ``summary.verdict.ok``, ``summary.runtime_s``."""
    from .summary import RunSummary

    return RunSummary.from_dict(load_summary_dict(record_dir))


def load_summary_dict(record_dir: str | Path) -> dict[str, Any]:
    """``summary.json`` as it is on disk (``ttg runs --json``; readers use
    :func:`load_summary`)."""
    return json.loads((Path(record_dir) / "summary.json").read_text())


def list_summaries(output_dir: str | Path = "outputs") -> list[RunSummary]:
    """:func:`list_runs`, typed."""
    from .summary import RunSummary

    return [RunSummary.from_dict(s) for s in list_runs(output_dir)]


def load_json(path: Path, default: Any) -> Any:
    """A record file's JSON, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines record file; a torn line (a short write on a full disk, a
    power loss) is skipped, as the process ledger skips one."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def list_runs(output_dir: str | Path = "outputs") -> list[dict[str, Any]]:
    """Summaries of every finished run, oldest first."""
    runs = []
    for path in sorted(Path(output_dir).glob("runs/*/summary.json")):
        try:
            runs.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return sorted(runs, key=lambda s: s.get("started_at", ""))


def environment(broker_version: str, backend: str) -> dict[str, Any]:
    from .backends import get_spec

    client = get_spec(backend).client_package
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "ttg": _version("ttg"),
        "backend": backend,
        "broker_client": f"{client} {_version(client)}" if client else None,
        "broker_server_version": broker_version,
        "git_commit": git_commit(),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit(short: bool = False, cwd: Path | None = None) -> str | None:
    """The checkout's commit (None outside git); ``short``: the short hash, with "+dirty"
    when tracked files have uncommitted changes (what a benchmark says it measured)."""
    where = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", *(["--short"] if short else []), "HEAD"],
                             capture_output=True, text=True, timeout=5, cwd=where)
        if not short or rev.returncode:
            return rev.stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, cwd=where)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
