"""`ttg run`: a whole sweep with a progress bar, then the milestone table and the verdict."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import SCALES, RunConfig
from ..configcheck import BACKENDS, CLUSTERS
from ..procs import prefer_jemalloc
from .base import command, fail

console = Console(stderr=True)


@command("run")
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="broker [redis]")
@click.option("--scale", type=click.Choice(tuple(SCALES)), default=None, help="preset [small]")
@click.option("--workers", type=int, default=None,
              help="local workers to start [3]; 0: only workers that join (--expect-workers)")
@click.option("--expect-workers", type=int, default=None, metavar="N",
              help="wait until N workers are on the broker (e.g. `ttg worker` on other hosts) "
                   "before publishing [0]")
@click.option("--total-params", type=int, default=None, help="override the preset")
@click.option("--chunk-size", type=int, default=None, help="override the preset")
@click.option("--work-ms", type=float, default=None, help="simulated ms per param")
@click.option("--compute", default=None,
              help="module:function, imported from the working directory too; shipped to the "
                   "workers by value unless installed [ttg_lib.compute:placeholder]")
@click.option("--fault-demo", is_flag=True, default=None, help="SIGKILL one worker mid-run")
@click.option("--kill-at", type=float, default=None, help="fraction done at the kill [0.3]")
@click.option("--no-restart", is_flag=True, help="do not replace dead workers")
@click.option("--cluster", type=click.Choice(CLUSTERS), default=None, help="[local]")
@click.option("--monitor", type=click.Choice(("cli", "none", "both")), default=None,
              help="cli: progress bar; none: quiet ('both' is accepted as cli)")
@click.option("--run-id", default=None)
@click.option("--output-dir", default=None, help="where runs/ is written [outputs]")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="seconds; default: none for your own function, 10 x the ideal + 60 s "
                   "for TTG's simulated work")
@click.option("--sample-s", type=float, default=None, help="queue sampling period [0.5]; 0=off")
@click.option("--liveness-s", type=float, default=None,
              help="kill and replace a worker whose heartbeat is older [3]; 0=off")
@click.option("--wait", is_flag=True, default=None,
              help="another live run holds the broker: wait for it to end instead of failing")
@click.option("--space", default=None,
              help="parameter space: a YAML/JSON file or inline JSON; --compute gets fn(**point)")
@click.option("--verify", type=click.Choice(("full", "sample", "none")), default=None,
              help="values recomputed on other workers [full for TTG's functions, else sample]")
@click.option("--verify-rtol", type=float, default=None,
              help="floats recomputed agree within this relative tolerance [0: exactly]")
@click.option("--reuse", type=click.Choice(("all", "none")), default=None,
              help="all: reuse points earlier runs in --output-dir computed with the same "
                   "function [all]; none: compute every point")
@click.option("--function-version", "version", default=None, metavar="TEXT",
              help="salt of the function's fingerprint: change it when results would change "
                   "without its module changing (data, dependencies)")
@click.option("--resume", "resume_run", default=None, metavar="RUN",
              help="continue RUN (its orchestrator died): its settings, only missing chunks")
@click.option("--retry-failed", is_flag=True,
              help="with --resume: recompute only RUN's failed points, into the same table")
@click.option("--point-timeout", default=None, metavar="SECONDS|auto",
              help="stop a point running longer (auto: 10 x p99 of points so far, >= 10 s)")
@click.option("--max-crashes", type=int, default=None,
              help="retries of a point that kills its process (segfault, OOM) [1]")
@click.option("--max-failures", default=None, metavar="N|P%",
              help="stop the run once more points than this failed [never]")
@click.option("--recycle-after", type=int, default=None, metavar="N",
              help="replace a worker's compute process after N chunks [never]")
@click.option("--max-worker-mib", type=float, default=None, metavar="MIB",
              help="replace a compute process grown past this, checked between chunks")
@click.option("--max-retries", type=int, default=None,
              help="retries of a point whose function raises [1]")
@click.option("--retry-delay", "retry_delay_s", type=float, default=None, metavar="SECONDS",
              help="wait before a point's retry, doubling per retry; its chunk waits with "
                   "it [0: at once]")
@click.option("--config", "config_file", type=click.Path(), default=None,
              help="JSON file of settings; flags override it")
@click.option("--json", "as_json", is_flag=True, help="print summary.json to stdout")
@click.option("--image", default=None,
              help="kind/k8s: worker image [kind: ttg-worker:dev; k8s: required]")
@click.option("--kube-context", default=None,
              help="kind/k8s: kubeconfig context [TTG_KUBE_CONTEXT, else kind-ttg / current]")
@click.option("--worker-cpu", default=None, help="kind/k8s: CPU per worker pod, e.g. 2, 500m")
@click.option("--worker-memory", default=None, help="kind/k8s: memory per worker pod, e.g. 2Gi")
@click.option("--dry-run", is_flag=True,
              help="start nothing; local: print the points, chunks and first points; "
                   "Kubernetes: every API operation the run would make")
def run(no_restart: bool, config_file: str | None, as_json: bool, dry_run: bool,
        resume_run: str | None, retry_failed: bool, **flags: Any) -> None:
    """Run a sweep: seed tasks, start workers, verify every result, write the record."""
    if flags.get("monitor") == "both":
        flags["monitor"] = "cli"
    if no_restart:
        flags["restart"] = "never"
    if retry_failed and not resume_run:
        fail("--retry-failed recomputes the failed points of a run: give it with --resume RUN")
    if resume_run:
        config = _resumed_config(resume_run, flags)
    else:
        config = (RunConfig.from_file(config_file, **flags) if config_file
                  else RunConfig.build(**flags))
    if dry_run:
        _print_plan(config, as_json)
        return
    prefer_jemalloc()
    try:
        summary = _run_with_progress(config, quiet=as_json or config.monitor == "none",
                                     resume=bool(resume_run), retry_failed=retry_failed)
    except KeyboardInterrupt:
        fail("interrupted; workers stopped. 'ttg cleanup --all --dry-run' lists leftovers")
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    sys.exit(0 if summary["ok"] else 1)


RESUME_KEEPS = ("output_dir", "monitor", "wait", "timeout_s", "sample_s", "liveness_s",
                "point_timeout", "max_crashes", "max_failures", "recycle_after",
                "max_worker_mib", "max_retries", "retry_delay_s")  # how failures are
# handled, not what is computed


def _resumed_config(run_id: str, flags: dict[str, Any]) -> RunConfig:
    """The run's own settings from its record. Flags may repeat them (the same command with
    --resume added) or change only how the run is watched; any other change is refused."""
    keep = {k: flags[k] for k in RESUME_KEEPS if flags.get(k) is not None}
    record = Path(flags.get("output_dir") or "outputs") / "runs" / run_id
    config = RunConfig.from_record(record, run_id=run_id, **keep)
    for name, value in flags.items():
        if value is not None and name not in RESUME_KEEPS and getattr(config, name) != value:
            fail(f"--resume continues {run_id} with its own settings: it ran with "
                 f"{name}={getattr(config, name)!r}, not {value!r} (leave the flag out)")
    return config


def _print_plan(config: RunConfig, as_json: bool) -> None:
    if config.cluster == "local":  # the points and chunks; nothing to plan on a cluster
        from ..space import format_preview, run_preview

        preview = run_preview(config)
        preview["reused"] = _reusable(config)
        click.echo(json.dumps(preview, indent=2) if as_json else format_preview(preview))
        return
    try:
        from ..cluster.kubernetes import dry_run_plan, format_plan
    except ImportError as exc:
        fail(f"--dry-run needs the Kubernetes extra (pip install 'ttg[k8s]'): {exc}")
    plan = dry_run_plan(config)
    click.echo(json.dumps(plan, indent=2) if as_json else format_plan(plan, config))


def _reusable(config: RunConfig) -> dict[str, int]:
    """Points earlier runs here computed with the same function, by run (what the run would
    reuse before its checks)."""
    import dataclasses

    from .. import byvalue
    from ..reuse import find_sources, function_fingerprint, lookup
    from ..space import load_space

    if config.reuse == "none" or config.space is None:
        return {}
    _fn, shipped = byvalue.for_run(config)
    if shipped is not None:
        config = dataclasses.replace(config, compute_sha256=shipped.sha256)
    space = load_space(config.space)
    sources = find_sources(config.output_dir, config.run_id, function_fingerprint(config),
                           space)
    return lookup(space, sources).by_source() if sources else {}


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_with_progress(config: RunConfig, quiet: bool, resume: bool = False,
                       retry_failed: bool = False) -> dict[str, Any]:
    from ..run import Progress as RunProgress
    from ..run import execute

    # SIGTERM (and SIGINT, which a background shell job ignores) stop the run the same way:
    # workers stopped, the broker released
    signal.signal(signal.SIGTERM, _interrupt)
    if not quiet:
        console.print(f"[bold]TTG run[/bold] {config.run_id}: {config.backend}, "
                      f"{config.scale} ({config.total_params:,} params in "
                      f"{config.chunks_total:,} chunks), {config.workers} workers"
                      + (f", waiting for {config.expect_workers} to join"
                         if config.expect_workers else "")
                      + (f", fault at {config.kill_at:.0%}" if config.fault_demo else ""))
    bar = Progress(TextColumn("[bold blue]chunks"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                   console=console, disable=quiet, transient=False)
    task = bar.add_task("run", total=config.chunks_total, info="")
    seen_events = 0

    def show(p: RunProgress) -> None:
        nonlocal seen_events
        rate = p.params_done / p.elapsed_s if p.elapsed_s else 0
        bar.update(task, completed=p.chunks_completed + p.chunks_failed,
                   info=f"{rate:,.0f} params/s, {p.live_workers} workers live"
                   + (f", {p.eta.label()}" if p.eta else ""))
        for event in p.events[seen_events:]:
            bar.console.print(f"  [yellow]{event['event']}[/yellow] {event['worker']} "
                              f"{event['detail']}", highlight=False)
        seen_events = len(p.events)

    with bar:
        return execute(config, show, resume=resume, retry_failed=retry_failed,
                       say=lambda line: console.print(f"ttg: {line}", highlight=False,
                                                      soft_wrap=True))


def print_summary(summary: dict[str, Any], out: Console | None = None) -> None:
    """The milestone table (Target vs Observed), the final queue stats and the verdict."""
    from ..monitor import stats_table
    from ..report import milestone_rows, verified_claim

    out = out or Console()
    title = f"Run {summary['run_id']} ({summary['backend']}, {summary['scale']})"
    table = Table(title=title)
    for col in ("Metric", "Target", "Observed"):
        table.add_column(col)
    for metric, target, observed in milestone_rows(summary):
        table.add_row(metric, target, f"[bold]{observed}[/bold]")
    out.print(table)
    stats_file = Path(summary["record_dir"]) / "queue_stats.json"
    if stats_file.exists():
        out.print(stats_table(json.loads(stats_file.read_text()), "Queue stats after completion"))
    verdict = (f"[bold green]VERIFIED[/bold green]: {verified_claim(summary)}"
               if summary["ok"] else "[bold red]FAILED[/bold red]: " +
               "; ".join(summary["problems"][:5]))
    out.print(verdict)
    from ..failures import failed_lines

    for line in failed_lines(summary):
        out.print(line, highlight=False)
    out.print(f"record: {summary['record_dir']}")
    out.print(next_steps(Path(summary["record_dir"])), highlight=False)


def next_steps(record: Path) -> str:
    """The two commands a person runs next on this record, as they would type them here."""
    outputs = record.parent.parent
    where = "" if outputs.resolve() == Path("outputs").resolve() else f" --output-dir {outputs}"
    return (f"next: ttg results {record.name}{where} --format csv  ·  "
            f"ttg report --run {record.name}{where}  (HTML; needs the notebooks extra)")
