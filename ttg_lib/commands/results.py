"""`ttg results RUN`: a run's results table exported as Parquet, CSV or JSON lines, streamed
a batch at a time; ``--columns`` and ``--where`` export a slice."""

from __future__ import annotations

import click

from .base import command

FORMATS = ("parquet", "csv", "jsonl")  # = results.FORMATS (a test holds them equal); named
# here so that `ttg` starts without pyarrow, which results.py imports


@command("results")
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet",
              show_default=True, help="file format")
@click.option("--out", default=None,
              help="file to write [results-<run>.<format>]; '-' writes csv/jsonl to stdout")
@click.option("--output-dir", default="outputs", show_default=True,
              help="where runs/ is, when RUN is a run id")
@click.option("--failed", is_flag=True,
              help="only the failed points, with error_type and traceback "
                   "[out: failed-<run>.<format>]")
@click.option("--columns", default=None, metavar="A,B,...",
              help="only these columns, in this order")
@click.option("--where", multiple=True, metavar="'COLUMN OP VALUE'",
              help="only the rows where this holds (repeat: all must hold); OP one of "
                   "= != < > <= >= in 'not in', VALUE JSON, e.g. 'param_id < 1000', "
                   "'worker in [\"w-1\"]'")
def results(run: str, fmt: str, out: str | None, output_dir: str, failed: bool,
            columns: str | None, where: tuple[str, ...]) -> None:
    """Export the results of RUN (a run id, a record directory or a results file)."""
    if failed:
        if columns or where:
            from ..errors import ResultsError

            raise ResultsError("failed", True, "--failed exports every failed point; give "
                                               "--columns/--where without it")
        from ..failedpoints import export_failed

        written = export_failed(run, fmt, out, output_dir=output_dir)
    else:
        from ..results import export_results
        from ..results.slicing import parse_where

        written = export_results(  # a ResultsError is a TTGError: one line
            run, fmt, out, output_dir=output_dir,
            columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
            filters=[parse_where(w) for w in where] or None)
    if written is not None:
        click.echo(f"wrote {written}", err=True)
