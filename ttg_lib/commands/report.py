"""`ttg report`: execute the report notebooks and export offline HTML pages (see
:mod:`ttg_lib.report.html`)."""

from __future__ import annotations

import click

from ..report.html import KERNEL, build_reports
from .base import command, fail


@command("report")
@click.option("--output-dir", default=None, help="where runs/ is read and reports/ written "
              "[outputs at the repo root]")
@click.option("--run", "run_ids", multiple=True, help="only this run (repeatable)")
@click.option("--latest", type=int, default=0, show_default=True,
              help="only the newest N runs (0 = all)")
@click.option("--hide-code", is_flag=True, help="leave code cells out of the HTML")
@click.option("--no-milestone", is_flag=True, help="skip the milestone summary page")
@click.option("--milestone-repeats", type=int, default=3, show_default=True,
              help="newest N runs per matrix cell on the milestone page (0 = all)")
@click.option("--kernel", default=KERNEL, show_default=True, help="Jupyter kernel name")
def report(output_dir: str | None, run_ids: tuple[str, ...], latest: int,
           hide_code: bool, no_milestone: bool, milestone_repeats: int, kernel: str) -> None:
    """Execute the report notebooks (papermill) and export HTML into OUTPUT_DIR/reports."""
    try:
        index = build_reports(output_dir, run_ids=run_ids, latest=latest, hide_code=hide_code,
                              milestone=not no_milestone, milestone_repeats=milestone_repeats,
                              kernel=kernel, log=lambda m: click.echo(m, err=True))
    except ImportError as exc:
        fail(f"ttg report needs the notebooks extra: pip install 'ttg[notebooks]' ({exc})")
    click.echo(str(index))
