"""`ttg repro RUN PARAM_ID [--pdb]`: one point of a run, here, with its full traceback."""

from __future__ import annotations

import json
import os
import sys

import click

from .base import command


@command("repro")
@click.argument("run")
@click.argument("param_id", type=int)
@click.option("--output-dir", default="outputs", show_default=True,
              help="where runs/ is, when RUN is a run id")
@click.option("--pdb", "debug", is_flag=True,
              help="on an exception, open the debugger where it was raised")
def repro(run: str, param_id: int, output_dir: str, debug: bool) -> None:
    """Compute point PARAM_ID of RUN in the foreground, with the run's compute function and
    space: its arguments, then its value or its whole traceback (exit 1)."""
    from ..repro import prepare

    def post_mortem(exc: BaseException) -> None:
        import pdb
        import traceback

        traceback.print_exception(exc)
        pdb.post_mortem(exc.__traceback__)

    point = prepare(run, param_id, output_dir)
    click.echo(f"run {point.run_id}, point {param_id}: {point.compute}"
               f"({', '.join(f'{k}={v!r}' for k, v in point.arguments.items())})")
    sys.stdout.flush()  # before the function runs: it may end this process
    survive_a_crash()
    result = point.run(on_error=post_mortem if debug else None)
    if result.error is not None:
        if not debug:
            click.echo(result.traceback(), err=True, nl=False)
        sys.exit(1)
    click.echo(f"returned: {result.value!r}")
    if result.store_error is not None:
        click.echo(f"TTG cannot store it: {result.store_error}", err=True)
        sys.exit(1)
    click.echo(f"stored as: {json.dumps(result.stored, default=str)}")


def survive_a_crash() -> None:
    """From here on, run in a forked child on the same terminal (``--pdb`` works there): a
    point that kills its process (SIGKILL, a segfault, ``os._exit``) ends the child, and this
    process says how, as the run recorded it (``crashed: signal 9 (SIGKILL)``). Where
    output is not a real file (a test's capture) or fork is missing, nothing changes."""
    try:
        real = sys.stdout.fileno() >= 0 and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        real = False
    if not real or not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:
        return  # the child computes the point and reports it
    import signal

    from ..childproc import exit_text

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the point's (or pdb's) to take
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # not the child's own exit: a signal, or os._exit in the point
        click.echo(f"the point ended its process: crashed: {exit_text(code)}", err=True)
        sys.exit(1)
    sys.exit(code)
