"""`ttg health` (also ``python -m ttg_lib.health``): the worker's liveness/readiness probe.

The Kubernetes probes and the image's HEALTHCHECK call
``python -m ttg_lib.health --file /tmp/ttg/heartbeat [--max-age S] [--ready]``: exit 0 while
the heartbeat file is fresh (and, with ``--ready``, the worker is not reconnecting), 1 when
not, 2 for a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import command


@command("health")
@click.option("--file", "path", type=click.Path(path_type=Path), default="/tmp/ttg/heartbeat",
              show_default=True, help="the worker's heartbeat file")
@click.option("--max-age", type=float, default=None,
              help="seconds a heartbeat stays fresh [TTG_LIVENESS_S, else 15]")
@click.option("--ready", is_flag=True,
              help="readiness: also fail while the worker is reconnecting to its broker")
def health(path: Path, max_age: float | None, ready: bool) -> None:
    """Exit 0 while the worker's heartbeat file is fresh, else 1 (with the reason)."""
    from ..health import check, liveness_limit

    ok, message = check(path, liveness_limit() if max_age is None else max_age, ready=ready)
    click.echo(message, err=not ok)
    sys.exit(0 if ok else 1)
