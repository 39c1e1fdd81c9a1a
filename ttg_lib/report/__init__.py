"""Reports built from run records: text rows for the CLI and the notebooks, HTML pages.

* :mod:`.text`: milestone rows (Target vs Observed), queue stats rows, the backend
  comparison and the key observations, all computed from ``summary.json`` files;
* :mod:`.html`: ``ttg report``'s engine: the report notebooks executed by papermill and
  exported by nbconvert as offline HTML (needs the ``notebooks`` extra; import it as
  ``ttg_lib.report.html``).

The text names are re-exported here (``from ttg_lib import report``; ``report.milestone_rows``).
:mod:`ttg_lib.notebook` builds on this package; nothing here imports the notebook package.
"""

from __future__ import annotations

from .text import (
    Row,
    comparison_rows,
    data_loss,
    group_runs,
    key_observations,
    milestone_rows,
    queue_stats_rows,
    recovery_method,
    run_label,
    verified_claim,
)

__all__ = ["Row", "comparison_rows", "data_loss", "group_runs", "key_observations",
           "milestone_rows", "queue_stats_rows", "recovery_method", "run_label",
           "verified_claim"]
