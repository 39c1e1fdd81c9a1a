"""`ttg results RUN`: a run's results table exported as Parquet, CSV or JSON lines."""

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
def results(run: str, fmt: str, out: str | None, output_dir: str, failed: bool) -> None:
    """Export the results of RUN (a run id, a record directory or a results file)."""
    if failed:
        from ..failedpoints import export_failed

        written = export_failed(run, fmt, out, output_dir=output_dir)
    else:
        from ..results import export_results

        written = export_results(run, fmt, out, output_dir=output_dir)  # a ResultsError is
        # a TTGError
    if written is not None:
        click.echo(f"wrote {written}", err=True)
