"""The `ttg` command line: run, worker, monitor, cleanup, runs."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .backends import BrokerUnavailable, RunLocked
from .cluster import ClusterError
from .config import BACKENDS, CLUSTERS, SCALES, ConfigError, RunConfig, env_broker_urls
from .run import Run, RunError

console = Console(stderr=True)
USER_ERRORS = (ConfigError, RunError, ClusterError, RunLocked, BrokerUnavailable)


def fail(message: str) -> None:
    click.echo(click.style("ttg: error: ", fg="red", bold=True) + message, err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ttg")
def main() -> None:
    """TTG: fault-tolerant distributed parameter sweeps with verified results."""


@main.command()
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="broker [redis]")
@click.option("--scale", type=click.Choice(tuple(SCALES)), default=None, help="preset [small]")
@click.option("--workers", type=int, default=None, help="worker count [3]")
@click.option("--total-params", type=int, default=None, help="override the preset")
@click.option("--chunk-size", type=int, default=None, help="override the preset")
@click.option("--work-ms", type=float, default=None, help="simulated ms per param")
@click.option("--compute", default=None, help="module:function [ttg_lib.compute:placeholder]")
@click.option("--fault-demo", is_flag=True, default=None, help="SIGKILL one worker mid-run")
@click.option("--kill-at", type=float, default=None, help="fraction done at the kill [0.3]")
@click.option("--no-restart", is_flag=True, help="do not replace dead workers")
@click.option("--cluster", type=click.Choice(CLUSTERS), default=None, help="[local]")
@click.option("--monitor", type=click.Choice(("cli", "none", "both")), default=None,
              help="cli: progress bar; none: quiet ('both' is accepted as cli)")
@click.option("--run-id", default=None)
@click.option("--output-dir", default=None, help="where runs/ is written [outputs]")
@click.option("--timeout", "timeout_s", type=float, default=None, help="seconds [auto]")
@click.option("--sample-s", type=float, default=None, help="queue sampling period [0.5]; 0=off")
@click.option("--liveness-s", type=float, default=None,
              help="kill and replace a worker whose heartbeat is older [3]; 0=off")
@click.option("--wait", is_flag=True, default=None,
              help="another live run holds the broker: wait for it to end instead of failing")
@click.option("--config", "config_file", type=click.Path(), default=None,
              help="JSON file of settings; flags override it")
@click.option("--json", "as_json", is_flag=True, help="print summary.json to stdout")
@click.option("--dry-run", is_flag=True,
              help="Kubernetes: print every API operation the run would make; send nothing")
def run(no_restart: bool, config_file: str | None, as_json: bool, dry_run: bool,
        **flags: Any) -> None:
    """Run a sweep: seed tasks, start workers, verify every result, write the record."""
    if flags.get("monitor") == "both":
        flags["monitor"] = "cli"
    if no_restart:
        flags["restart"] = "never"
    try:
        config = (RunConfig.from_file(config_file, **flags) if config_file
                  else RunConfig.build(**flags))
        if dry_run:
            _print_plan(config, as_json)
            return
        summary = _run_with_progress(config, quiet=as_json or config.monitor == "none")
    except USER_ERRORS as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; workers stopped. 'ttg cleanup --all --dry-run' lists leftovers")
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    sys.exit(0 if summary["ok"] else 1)


def _print_plan(config: RunConfig, as_json: bool) -> None:
    if config.cluster == "local":
        fail("--dry-run lists Kubernetes API operations: use it with --cluster kind or k8s")
    try:
        from .cluster.kubernetes import dry_run_plan, format_plan
    except ImportError as exc:
        fail(f"--dry-run needs the Kubernetes extra (pip install 'ttg[k8s]'): {exc}")
    plan = dry_run_plan(config)
    click.echo(json.dumps(plan, indent=2) if as_json else format_plan(plan, config))


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_with_progress(config: RunConfig, quiet: bool) -> dict[str, Any]:
    # SIGTERM (and SIGINT, which a background shell job ignores) stop the run the same way:
    # workers stopped, the broker released
    signal.signal(signal.SIGTERM, _interrupt)
    with Run(config, say=lambda line: console.print(f"ttg: {line}", highlight=False,
                                                   soft_wrap=True)) as run:
        if not quiet:
            console.print(f"[bold]TTG run[/bold] {config.run_id}: {config.backend}, "
                          f"{config.scale} ({config.total_params:,} params in "
                          f"{config.chunks_total:,} chunks), {config.workers} workers"
                          + (f", fault at {config.kill_at:.0%}" if config.fault_demo else ""))
        run.start()
        bar = Progress(TextColumn("[bold blue]chunks"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                       console=console, disable=quiet, transient=False)
        with bar:
            task = bar.add_task("run", total=config.chunks_total, info="")
            seen_events = 0
            while not run.done:
                p = run.step(0.1)
                rate = p.params_done / p.elapsed_s if p.elapsed_s else 0
                bar.update(task, completed=p.chunks_completed + p.chunks_failed,
                           info=f"{rate:,.0f} params/s, {p.live_workers} workers live")
                for event in p.events[seen_events:]:
                    bar.console.print(f"  [yellow]{event['event']}[/yellow] {event['worker']} "
                                      f"{event['detail']}", highlight=False)
                seen_events = len(p.events)
        return run.finish()


def print_summary(summary: dict[str, Any], out: Console | None = None) -> None:
    from .report import milestone_rows

    out = out or Console()
    title = f"Run {summary['run_id']} ({summary['backend']}, {summary['scale']})"
    table = Table(title=title)
    for col in ("Metric", "Target", "Observed"):
        table.add_column(col)
    for metric, target, observed in milestone_rows(summary):
        table.add_row(metric, target, f"[bold]{observed}[/bold]")
    out.print(table)
    from .monitor import stats_table

    stats_file = Path(summary["record_dir"]) / "queue_stats.json"
    if stats_file.exists():
        out.print(stats_table(json.loads(stats_file.read_text()), "Queue stats after completion"))
    verdict = ("[bold green]VERIFIED[/bold green]: every param present once and recomputed equal"
               if summary["ok"] else "[bold red]FAILED[/bold red]: " +
               "; ".join(summary["problems"][:5]))
    out.print(verdict)
    out.print(f"record: {summary['record_dir']}")


@main.command()
@click.option("--backend", type=click.Choice(BACKENDS), default=None)
@click.option("--url", default=None)
@click.option("--run-id", default=None)
@click.option("--name", default=None)
@click.option("--heartbeat-file", default=None)
def worker(**options: Any) -> None:
    """Run one worker (same as python -m ttg_lib.worker)."""
    from . import worker as worker_module

    argv = []
    for key, value in options.items():
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    sys.exit(worker_module.main(argv))


def _broker_urls(backend: str | None) -> dict[str, str]:
    urls = env_broker_urls()
    return {backend: urls[backend]} if backend else urls


@main.command()
@click.option("--backend", type=click.Choice(BACKENDS), default="redis", show_default=True)
@click.option("--interval", type=float, default=1.0, show_default=True)
@click.option("--once", is_flag=True, help="print once and exit")
@click.option("--json", "as_json", is_flag=True, help="machine-readable (with --once)")
def monitor(backend: str, interval: float, once: bool, as_json: bool) -> None:
    """Live view of the TTG queues, read from the broker itself."""
    from .backends import make_backend
    from .monitor import snapshot, stats_table, watch, workers_table

    try:
        url = _broker_urls(backend)[backend]
        broker = make_backend(backend, url)
        broker.connect()
    except USER_ERRORS as exc:
        fail(str(exc))
    try:
        if once:
            snap = snapshot(broker)
            if as_json:
                click.echo(json.dumps(snap, indent=2))
            else:
                Console().print(stats_table(snap["queues"]))
                if snap.get("hint"):
                    Console().print(f"[yellow]{snap['hint']}[/yellow]")
                if snap["workers"]:
                    Console().print(workers_table(snap["workers"]))
            return
        watch(broker, interval)
    except KeyboardInterrupt:
        pass
    except BrokerUnavailable as exc:
        fail(str(exc))
    finally:
        broker.close()


@main.command()
@click.option("--all", "everything", is_flag=True, help="processes, queues and k8s objects")
@click.option("--workers", "processes", is_flag=True, help="TTG worker/broker processes")
@click.option("--queues", is_flag=True, help="TTG queues, streams and keys")
@click.option("--kubernetes", is_flag=True, help="TTG-labelled Kubernetes objects")
@click.option("--run", "run_id", default=None, help="only this run's processes")
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="only this broker")
@click.option("--output-dir", default="outputs", show_default=True)
@click.option("--dry-run", is_flag=True, help="list what would go; change nothing")
@click.option("--force", is_flag=True, help="purge TTG queues even while a run holds them")
def cleanup(everything: bool, processes: bool, queues: bool, kubernetes: bool,
            run_id: str | None, backend: str | None, output_dir: str, dry_run: bool,
            force: bool) -> None:
    """Remove what TTG created, and only that."""
    from .cleanup import cleanup as do_cleanup

    if not (everything or processes or queues or kubernetes):
        fail("say what to clean: --all, --workers, --queues or --kubernetes "
             "(add --dry-run to list first)")
    try:
        report = do_cleanup(output_dir=Path(output_dir), backends=_broker_urls(backend),
                            processes=everything or processes, queues=everything or queues,
                            kubernetes=kubernetes or (everything and _kube_configured()),
                            run_id=run_id, dry_run=dry_run, force=force)
    except USER_ERRORS as exc:
        fail(str(exc))
    for line in report.lines():
        click.echo(line)


def _kube_configured() -> bool:
    return bool(os.environ.get("KUBECONFIG")) or (Path.home() / ".kube" / "config").exists()


@main.command()
@click.option("--output-dir", default="outputs", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(output_dir: str, as_json: bool) -> None:
    """List recorded runs."""
    from .record import list_runs

    summaries = list_runs(output_dir)
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    table = Table(title=f"Runs in {output_dir}/runs")
    for col in ("run_id", "backend", "scale", "fault", "runtime", "efficiency", "verdict"):
        table.add_column(col)
    for s in summaries:
        eff = s.get("efficiency")
        table.add_row(s["run_id"], s["backend"], s["scale"], "yes" if s.get("fault") else "no",
                      f"{s['runtime_s']}s" if s.get("runtime_s") else "n/a",
                      f"{eff:.1%}" if eff else "n/a", "ok" if s.get("ok") else "FAILED")
    Console().print(table)


def _register_report() -> None:
    """`ttg report` needs the notebooks extra; without it the command says how to get it."""
    try:
        from .htmlreport import report_command
    except ImportError as exc:
        missing = str(exc)

        @main.command("report", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def report(args: tuple[str, ...]) -> None:
            """Export HTML reports (needs: pip install 'ttg[notebooks]')."""
            fail(f"ttg report needs the notebooks extra: pip install 'ttg[notebooks]' "
                 f"({missing})")
    else:
        main.add_command(report_command, "report")


_register_report()

if __name__ == "__main__":
    main()
