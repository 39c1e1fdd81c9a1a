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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paths import record_dir
from ..record import load_json
from ..results import MISFIT, ResultsError, load_results, result_files, result_rows
from ..results.layout import FIXED as _FIXED
from ..summary import RunSummary
from .tables import html_table

if TYPE_CHECKING:
    import pandas as pd

MAX_POINTS = 5_000  # points drawn at most (scatter, lines, parallel coordinates)
MAX_FAILED = 500  # of which failed points marked at most
MAX_CELLS = 40_000  # a heatmap of a bigger grid keeps one axis value in k
LOAD_ROWS = 2_000_000  # a bigger finished table is sampled, not loaded
MAX_PANELS = 4  # value columns drawn against one axis (the table has them all)
LOG_FORMS = ("logspace", "loguniform")

Run = RunSummary | dict[str, Any] | str | os.PathLike[str]


@dataclass(frozen=True)
class Counts:
    """How many rows a run has so far: all, failed (``error`` set), drawable (a number)."""

    total: int
    failed: int
    drawable: int


@dataclass(frozen=True)
class RunResults:
    """A run's results (every row, or a live sample of them) with what the chart needs to
    know about them."""

    frame: pd.DataFrame  # the rows, sorted by param_id: every row, or a sample
    axes: tuple[str, ...]  # the space's axes, in order (empty without a space)
    mode: str  # grid | zip | random | "" (no space)
    log_axes: frozenset[str]  # axes spaced in the exponent (drawn on a log scale)
    values: tuple[str, ...]  # the numeric value columns, in order
    counts: Counts | None = None  # a sample's: of every row so far (None: frame is all)
    levels: dict[str, list[Any]] | None = None  # a sample's: every axis value seen so far
    expected: int | None = None  # a live run's point count (None: the run has ended)

    @property
    def failed(self) -> pd.DataFrame:
        return self.frame[self.frame["error"].notna()]

    @property
    def drawable(self) -> pd.DataFrame:
        """Rows the chart can hold: no error and a number in the first value column."""
        ok = self.frame["error"].isna()
        if self.values:
            ok &= self.frame[self.values[0]].notna()
        return self.frame[ok]

    @property
    def total(self) -> Counts:
        """Counts of every row (the sample's run's, for a sample)."""
        if self.counts is not None:
            return self.counts
        return Counts(len(self.frame), len(self.failed), len(self.drawable))

    def axis_levels(self, axis: str) -> list[Any]:
        """Every value of ``axis`` in the rows (seen so far, for a sample), sorted."""
        if self.levels is not None and axis in self.levels:
            return sorted(self.levels[axis])
        return sorted(self.frame[axis].unique())


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


def run_space(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The space a run record was swept over, as config.json has it ({} without one)."""
    return (load_json(Path(path) / "config.json", {}) or {}).get("space") or {}


def describe(frame: pd.DataFrame, space: dict[str, Any], **sample: Any) -> RunResults:
    """Rows and their space as the chart sees them; ``sample``: a sample's counts, levels
    and expected points (see :class:`RunResults`)."""
    import pandas as pd

    specs = space.get("axes") or {}
    columns = [c for c in frame.columns if c not in _FIXED and not c.startswith("value")]
    axes = tuple(name for name in specs if name in frame.columns) or tuple(columns)
    logs = frozenset(name for name, spec in specs.items()
                     if isinstance(spec, dict) and set(spec) & set(LOG_FORMS))
    values = tuple(c for c in frame.columns if (c == "value" or c.startswith("value."))
                   and pd.api.types.is_numeric_dtype(frame[c]))  # booleans count as numbers
    return RunResults(frame, axes, space.get("mode", "grid") if axes else "", logs, values,
                      **sample)


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
