"""`ttg kind` (also ``python -m ttg_lib.cluster.kind``): provision TTG's Kind cluster.

The work is done by :func:`ttg_lib.cluster.kind.provision`, which the provisioning notebook
calls too; this module only parses the command line.
"""

from __future__ import annotations

import click

from ..backends import DEFAULT_BACKEND
from ..cluster.kind import ACTIONS, provision
from ..config import BACKENDS
from .base import command


@command("kind")
@click.argument("action", type=click.Choice(ACTIONS), default="status", required=False,
                metavar="[ACTION]")
@click.option("--backend", type=click.Choice((*BACKENDS, "both")), default=DEFAULT_BACKEND,
              show_default=True, help="brokers to deploy (up) or to check (status)")
@click.option("--no-build", is_flag=True, help="skip docker build / kind load")
@click.option("--force", is_flag=True, help="delete-cluster even without TTG's creation marker")
def kind(action: str, backend: str, no_build: bool, force: bool) -> None:
    """Provision TTG's Kind cluster: status (default), up, down or delete-cluster."""
    for line in provision(action, backend, build=not no_build, force=force):
        click.echo(line)
