"""Notebook helpers: live and static charts, milestone tables, the supervisor control panel.

The notebooks in ``notebooks/`` stay thin: every cell calls one function here, and
everything they draw comes from :class:`ttg_lib.run.Run` progress or a run record
(``outputs/runs/<run_id>/``), never from numbers typed into a notebook.

Charts follow three rules learned the hard way:

* a live :class:`plotly.graph_objects.FigureWidget` (an anywidget widget under
  plotly >= 6) is updated from the loop that drives :meth:`Run.step` in the cell itself,
  never from a background thread (ipykernel 7 drops widget output sent from threads);
* widget updates are never saved in a notebook, so when the run ends the same output
  is replaced by a static, fully drawn figure read from the run record, which is what
  papermill, nbconvert and a saved notebook keep;
* static figures are saved in plotly's mimetype form (JSON, no plotly.js, no CDN), so a
  saved notebook stays small; HTML reports draw them with one plotly.min.js shared by
  every page (:mod:`ttg_lib.report.html`), so they work offline.

The package, one module per concept:

* :mod:`ttg_lib.paths` (re-exported): the repository root, the output directory, a run's
  record directory;
* :mod:`.params`: notebook parameters -> :class:`ttg_lib.config.RunConfig`;
* :mod:`.display`: plotly setup and showing figures (plotly's mimetype form) and HTML;
* :mod:`.records`: reading a finished run back from its record;
* :mod:`.charts`: chart data (samples, throughput, event markers), the static plotly
  figures and the live FigureWidget chart;
* :mod:`.traces`: the queue chart's lines: the run's story, then the broker's own figures;
* :mod:`.live`: driving a run from a cell (``run_live``, ``run_quiet``);
* :mod:`.tables`: HTML tables and verdicts;
* :mod:`.results`: the Results section, the first rows of ``results.parquet`` and what
  its chart is drawn from; :mod:`.resultchart`: that chart, chosen by the run's parameter
  space; :mod:`.sample`: the bottom-k sample it draws; :mod:`.landscape`: the same chart
  filling in while a run writes its results;
* :mod:`.milestone`: the milestone matrix and rendering chosen runs;
* :mod:`.panel`: the ipywidgets supervisor panel.

Everything public is re-exported here, so ``from ttg_lib import notebook as nb`` and
``nb.<name>`` work as before. The tables and verdicts build on :mod:`ttg_lib.report`; the
report package never imports this one.
"""

from __future__ import annotations

from ..paths import OUTPUT_ENV, record_dir, repo_root, resolve_output_dir
from .chartdata import THROUGHPUT_WINDOW_S, marks_from_events, sample_from_progress, throughput
from .charts import (
    COLORS,
    MARK_STYLE,
    REDRAW_S,
    SAMPLE_S,
    LiveChart,
    comparison_figure,
    figure_from_record,
    queue_figure,
    run_title,
    timeline_figure,
)
from .display import figure_bundle, in_ipython, setup, show, show_html
from .landscape import LiveResults
from .live import run_live, run_quiet
from .milestone import MATRIX, render_run, run_matrix, select_runs
from .panel import SupervisorPanel
from .params import SCALE_ENV, build_config, describe, notebook_scale
from .records import check_verified, load_run, queue_stats
from .resultchart import results_chart, results_figure, results_note
from .results import RunResults, load_run_results, results_table
from .tables import (
    TABLE_CSS,
    comparison_table,
    html_table,
    milestone_table,
    observations_html,
    queue_stats_table,
    verdict_html,
)
from .traces import QUEUE_NAMES

__all__ = [
    "COLORS", "LiveChart", "MARK_STYLE", "MATRIX", "OUTPUT_ENV", "QUEUE_NAMES", "REDRAW_S",
    "SAMPLE_S", "SCALE_ENV", "SupervisorPanel", "TABLE_CSS", "THROUGHPUT_WINDOW_S", "build_config",
    "check_verified", "comparison_figure", "comparison_table", "describe", "figure_bundle",
    "figure_from_record", "html_table", "in_ipython", "load_run", "marks_from_events",
    "milestone_table", "notebook_scale", "observations_html", "queue_figure", "queue_stats",
    "queue_stats_table", "record_dir", "render_run", "repo_root", "resolve_output_dir", "run_live",
    "run_matrix", "run_quiet", "run_title", "sample_from_progress", "select_runs", "setup", "show",
    "show_html", "throughput", "timeline_figure", "verdict_html",
    "LiveResults", "RunResults", "load_run_results", "results_chart", "results_figure",
    "results_note", "results_table",
]
