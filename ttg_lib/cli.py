"""The `ttg` command line: one click group; each command lives in :mod:`ttg_lib.commands`.

``python -m ttg_lib.worker``, ``python -m ttg_lib.health`` and
``python -m ttg_lib.cluster.kind`` run the same click commands as ``ttg worker``,
``ttg health`` and ``ttg kind``.
"""

from __future__ import annotations

import click

from .commands.base import CONTEXT_SETTINGS
from .commands.cleanup import cleanup
from .commands.health import health
from .commands.kind import kind
from .commands.monitor import monitor
from .commands.report import report
from .commands.repro import repro
from .commands.results import results
from .commands.run import run
from .commands.runs import runs
from .commands.worker import worker


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="ttg")
def main() -> None:
    """TTG: fault-tolerant distributed parameter sweeps with verified results."""


for _command in (run, worker, monitor, cleanup, runs, results, report, repro, health, kind):
    main.add_command(_command)

if __name__ == "__main__":
    main()
