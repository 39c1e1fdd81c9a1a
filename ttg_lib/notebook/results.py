"""The Results section of run.ipynb: the first rows of a run's ``results.parquet``, and the
table the Results chart (:mod:`.resultchart`) is drawn from, read from the run record only.

:class:`RunResults` is what a chart needs to know about a run's rows: a finished run's whole
table (:func:`load_run_results`), or the sample a live chart keeps while the run writes
(:mod:`.landscape`), with the counts of every row so far. Both are described by the same
:func:`describe`, so the live and the static chart read the same fields. A finished table of
more than :data:`LOAD_ROWS` rows (10^8 would not fit) is not loaded: it is streamed a row
group at a time through the live chart's sampler, so the section holds the same bottom-k
sample and counts of every row as a live chart at the run's end.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paths import record_dir
from ..results import MISFIT, ResultsError, load_results, result_files, result_rows
from ..summary import RunSummary
from .resultdata import (  # noqa: F401  (re-exported: the charts' and notebooks' names)
    LOG_FORMS,
    MAX_CELLS,
    MAX_FAILED,
    MAX_PANELS,
    MAX_POINTS,
    Counts,
    RunResults,
    describe,
    run_space,
)
from .tables import html_table

if TYPE_CHECKING:
    import pandas as pd

LOAD_ROWS = 2_000_000  # a bigger finished table is sampled, not loaded

Run = RunSummary | dict[str, Any] | str | os.PathLike[str]


def results_dir(run: Run) -> Path:
    """A run's record directory from its summary (``record_dir``), a record directory, or
    a run id under the notebook output directory."""
    if isinstance(run, RunSummary):
        return Path(run.record_dir)
    if isinstance(run, dict):  # summary.json's dict (the supervisor panel's)
        return Path(run["record_dir"])
    path = Path(run)
    return path if path.is_dir() else record_dir(str(run))


def load_run_results(run: Run) -> RunResults | None:
    """The run's results, or None when its record has no results table (a record written
    before results were kept, or a run stopped before its first result)."""
    path = results_dir(run)
    try:
        files = result_files(path)
    except ResultsError:
        return None
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _load(str(path), stamp)


@lru_cache(maxsize=2)  # the table, the chart and the note of one run read it once
def _load(path: str, _stamp: tuple[tuple[str, int, int], ...]) -> RunResults:
    total = result_rows(path)
    if total > LOAD_ROWS:
        return _sampled(path, total)
    frame = load_results(path)  # value_json only when some batch did not fit the columns
    return describe(frame, run_space(path))


def _sampled(path: str, total: int) -> RunResults:
    """A big table's bottom-k sample and counts, read a row group at a time (what the live
    chart keeps, so the same rows whether the chart followed the run or not)."""
    from dataclasses import replace

    import pyarrow as pa

    from ..results.reading import table_schema
    from ..results.slicing import scan
    from .landscape import LiveResults  # it imports this module

    files = result_files(path)
    schema = table_schema(files)
    sampler = LiveResults(path, run_space(path), total, live=False)
    for batch in scan(files, schema, [n for n in schema.names if n != MISFIT]):
        sampler.take(pa.Table.from_batches([batch]))
    results = sampler.results()
    if results is None:  # no number and no error anywhere: the first rows, for the table
        return describe(load_results(path, filters=[("param_id", "<", MAX_POINTS)]),
                        run_space(path), counts=Counts(total, 0, 0))
    return replace(results, expected=None)  # a finished table, not a run going on


# -- the table ------------------------------------------------------------------------------

def results_table(run: Run, n: int = 10) -> str:
    """HTML of the first ``n`` rows (by param_id), then every failed point's error (the
    first ``n`` of them) when some failed."""
    results = load_run_results(run)
    if results is None:
        return ("<p><i>No results table in this record: results.parquet is missing (a run "
                "recorded before results were kept, or one stopped before its first "
                "result).</i></p>")
    frame = results.frame
    failed = results.failed
    shown = [c for c in frame.columns if c != "error" or len(failed)]
    total = len(frame)
    head = frame.head(n)
    whole = results.total.total
    of = f"{total:,} points" if results.counts is None else \
        f"a uniform sample (by param_id hash) of {total:,} of the {whole:,} points"
    out = html_table(shown, _rows(head, shown),
                     f"Results: first {len(head):,} of {of} (results.parquet)")
    if len(failed):
        from ..failures import group_by_type

        kinds = group_by_type(failed["param_id"].tolist(), failed["error"].tolist())
        out += html_table(["error type", "points", "first param_ids", "example"],
                          [[k["error_type"], f"{k['count']:,}",
                            ", ".join(map(str, k["param_ids"])), k["example"]] for k in kinds],
                          "Failed points by error type (ttg results RUN --failed exports them;"
                          " ttg repro RUN PARAM_ID reruns one)")
        keep = ["param_id", *results.axes, "worker", "attempt", "error"]
        out += html_table(keep, _rows(failed.head(n), keep),
                          f"Failed points: {len(failed):,} of {total:,}"
                          + ("" if results.counts is None else
                             f" in the sample ({results.total.failed:,} of {whole:,} in all)")
                          + (f" (the first {n:,})" if len(failed) > n else ""))
    return out


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[str]]:
    return [[_cell(v) for v in row] for row in frame[list(columns)].itertuples(index=False)]


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
