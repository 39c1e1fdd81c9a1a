"""`ttg kind` (also ``python -m ttg_lib.cluster.kind``): provision TTG's Kind cluster.

The work is done by :func:`ttg_lib.cluster.kind.provision`, which the provisioning notebook
calls too; this module only parses the command line.
"""

from __future__ import annotations

from pathlib import Path

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
@click.option("--requirements", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="up: pip requirements to add to a worker image of your own")
@click.option("--code", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="up: folder of your modules, put on the workers' Python path")
def kind(action: str, backend: str, no_build: bool, force: bool, requirements: Path | None,
         code: Path | None) -> None:
    """Provision TTG's Kind cluster: status (default), up, down or delete-cluster. `up
    --requirements FILE --code DIR` also builds ttg-worker:user-<hash> and prints its tag."""
    yours = {k: v for k, v in (("requirements", requirements), ("code", code)) if v}
    for line in provision(action, backend, build=not no_build, force=force, **yours):
        click.echo(line)
