"""`ttg cleanup`: remove what TTG created, and only that (see :mod:`ttg_lib.cleanup`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..backends import env_urls
from ..config import BACKENDS
from .base import command, fail


@command("cleanup")
@click.option("--all", "everything", is_flag=True, help="processes, queues and k8s objects")
@click.option("--workers", "processes", is_flag=True, help="TTG worker/broker processes")
@click.option("--queues", is_flag=True, help="TTG queues, streams and keys")
@click.option("--kubernetes", is_flag=True, help="TTG-labelled Kubernetes objects")
@click.option("--run", "run_id", default=None, help="only this run's processes")
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="only this broker")
@click.option("--output-dir", default="outputs", show_default=True)
@click.option("--dry-run", is_flag=True, help="list what would go; change nothing")
@click.option("--force", is_flag=True, help="purge TTG queues even while a run holds them")
@click.option("--kube-context", default=None,
              help="kubeconfig context [TTG_KUBE_CONTEXT, else kind-ttg if present, else current]")
def cleanup(everything: bool, processes: bool, queues: bool, kubernetes: bool,
            run_id: str | None, backend: str | None, output_dir: str, dry_run: bool,
            force: bool, kube_context: str | None) -> None:
    """Remove what TTG created, and only that."""
    from ..cleanup import cleanup as do_cleanup

    if not (everything or processes or queues or kubernetes):
        fail("say what to clean: --all, --workers, --queues or --kubernetes "
             "(add --dry-run to list first)")
    urls = env_urls()
    report = do_cleanup(output_dir=Path(output_dir),
                        backends={backend: urls[backend]} if backend else urls,
                        processes=everything or processes, queues=everything or queues,
                        kubernetes=kubernetes or (everything and _kube_configured()),
                        run_id=run_id, dry_run=dry_run, force=force,
                        kube_context=kube_context)
    for line in report.lines():
        click.echo(line)


def _kube_configured() -> bool:
    return bool(os.environ.get("KUBECONFIG")) or (Path.home() / ".kube" / "config").exists()
