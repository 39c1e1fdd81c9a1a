"""`ttg health` (also ``python -m ttg_lib.health``): the worker's liveness/readiness probe.

The Kubernetes probes and the image's HEALTHCHECK call
``python -m ttg_lib.health --file /tmp/ttg/heartbeat --max-age 15``: exit 0 while the
heartbeat file is fresh, 1 when it is not, 2 for a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import command


@command("health")
@click.option("--file", "path", type=click.Path(path_type=Path), default="/tmp/ttg/heartbeat",
              show_default=True, help="the worker's heartbeat file")
@click.option("--max-age", type=float, default=15.0, show_default=True,
              help="seconds a heartbeat stays fresh")
def health(path: Path, max_age: float) -> None:
    """Exit 0 while the worker's heartbeat file is fresh, else 1 (with the reason)."""
    from ..health import check

    ok, message = check(path, max_age)
    click.echo(message, err=not ok)
    sys.exit(0 if ok else 1)
