"""`ttg worker` (also ``python -m ttg_lib.worker``): run one worker until it is stopped.

Every option falls back to its TTG_* environment variable, so the same image serves local
processes and Kubernetes pods. Flags become overrides of
:meth:`~ttg_lib.worker.WorkerSettings.from_env`, the one place that reads those variables;
the backend name is checked once, here, whichever of the two supplied it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..config import BACKENDS
from .base import command


@command("worker")
@click.option("--backend", metavar="[" + "|".join(BACKENDS) + "]", default=None,
              help="broker [TTG_BACKEND, else redis]")
@click.option("--url", default=None, help="broker URL [TTG_REDIS_URL / TTG_RABBITMQ_URL]")
@click.option("--run-id", default=None, help="accept only this run's tasks [TTG_RUN_ID]")
@click.option("--name", default=None, help="worker name [TTG_WORKER_NAME, else host-pid]")
@click.option("--lease-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="seconds a silent worker keeps its chunk [TTG_LEASE_S, else 2.0]")
@click.option("--heartbeat-file", default=None,
              help="JSON file for probes and the worker table [TTG_HEARTBEAT_FILE]")
@click.option("--max-chunks", type=click.IntRange(min=0), default=None,
              help="exit after this many chunks [0 = never]")
@click.option("--idle-exit-s", type=click.FloatRange(min=0), default=None,
              help="exit after this many idle seconds [0 = never]")
@click.option("--kill-on-sigterm", is_flag=True, default=None,
              help="SIGTERM kills at once, mid-chunk (the Kubernetes fault demo's hard kill) "
                   "[TTG_KILL_ON_SIGTERM=1]")
@click.option("--isolate/--no-isolate", default=None,
              help="compute in a child process, so a point that crashes or hangs fails "
                   "alone [TTG_ISOLATE, else on]")
def worker(**flags: Any) -> None:
    """Run one worker: pull chunks, compute them, store the results (SIGTERM: finish the
    current chunk, then exit 0; with --kill-on-sigterm: die at once)."""
    from ..worker import Worker, WorkerSettings

    settings = WorkerSettings.from_env(**flags)
    if settings.backend not in BACKENDS:
        raise click.BadParameter(f"{settings.backend!r} is not one of "
                                 f"{', '.join(map(repr, BACKENDS))}",
                                 param_hint="'--backend' (or TTG_BACKEND)")
    runner = Worker(settings)
    runner.install_signal_handlers()
    sys.exit(runner.run())
