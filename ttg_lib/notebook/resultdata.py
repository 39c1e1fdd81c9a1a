"""What a chart knows about a run's rows: :class:`RunResults` and how a frame is described.

Shared by the static Results section (:mod:`.results`) and the live chart's sampler
(:mod:`.landscape`), so both read the same fields and neither imports the other's module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..record import load_json
from ..results.layout import FIXED as _FIXED

if TYPE_CHECKING:
    import pandas as pd

MAX_POINTS = 5_000  # points drawn at most (scatter, lines, parallel coordinates)
MAX_FAILED = 500  # of which failed points marked at most
MAX_CELLS = 40_000  # a heatmap of a bigger grid keeps one axis value in k
MAX_PANELS = 4  # value columns drawn against one axis (the table has them all)
LOG_FORMS = ("logspace", "loguniform")


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
