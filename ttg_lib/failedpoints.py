"""A run's failed points, read back: ``ttg results RUN --failed`` and the reports' list of
failed points by error type. Rows come from ``results.parquet`` (those with an ``error``);
their tracebacks from ``failures.jsonl``, keyed by ``param_id``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .failures import FAILURES_FILE, error_type, group_by_type
from .record import read_jsonl
from .results import ResultsError, export_results, result_files


def failed_table(run: str | Path, output_dir: str | Path = "outputs") -> pa.Table:
    """The failed rows of a run, sorted by ``param_id``, with ``error_type`` and ``trace``."""
    files = result_files(run, output_dir)
    table = _failed_rows(files)
    traces = _traces(files[0])
    ids = table.column("param_id").to_pylist()
    errors = table.column("error").to_pylist()
    table = table.append_column("error_type", pa.array([error_type(e) for e in errors],
                                                       pa.string()))
    return table.append_column("trace", pa.array([traces.get(i) for i in ids], pa.string()))


def failed_ids_errors(record_dir: str | Path) -> tuple[list[int], list[str]]:
    """(param_ids, errors) of the failed rows in a run's table (none when it has none)."""
    try:
        files = result_files(record_dir)
    except ResultsError:
        return [], []
    table = _failed_rows(files, ["param_id", "error"])
    return table.column("param_id").to_pylist(), table.column("error").to_pylist()


def _failed_rows(files: list[Path], columns: list[str] | None = None) -> pa.Table:
    """The rows with an error, by param_id; read a row group at a time."""
    kept = []
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=columns, use_threads=False)
            kept.append(table.filter(pc.is_valid(table.column("error"))))
    return pa.concat_tables(kept).sort_by("param_id")


def by_type(run: str | Path, output_dir: str | Path = "outputs",
            first: int = 5) -> list[dict[str, Any]]:
    """Failed points grouped by error type (:func:`ttg_lib.failures.group_by_type`)."""
    table = failed_table(run, output_dir)
    return group_by_type(table.column("param_id").to_pylist(),
                         table.column("error").to_pylist(), first)


def export_failed(run: str, fmt: str, out: str | None,
                  output_dir: str | Path = "outputs") -> Path | None:
    """Write the failed rows (with their traceback) as ``export_results`` would."""
    table = failed_table(run, output_dir)
    name = Path(run).name if Path(run).is_dir() else str(run)
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / "failed.parquet"
        pq.write_table(table, staged)
        return export_results(staged, fmt, out or f"failed-{name}.{fmt}")


def _traces(first_file: Path) -> dict[int, str]:
    """param_id -> the traceback of its last failure, from the record's failures.jsonl."""
    record = first_file.parent
    if record.name == "results.parts":
        record = record.parent
    return {row["param_id"]: row.get("trace") or None
            for row in read_jsonl(record / FAILURES_FILE)}
