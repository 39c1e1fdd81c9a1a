"""What every `ttg` command shares: a TTGError is the user's to fix, so it is shown as one
line on stderr with exit code 2 (click's code for a usage error); anything else is a bug
and keeps its traceback."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ..errors import TTGError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def fail(message: str) -> NoReturn:
    click.echo(click.style("ttg: error: ", fg="red", bold=True) + message, err=True)
    sys.exit(2)


class Command(click.Command):
    """A click command that turns a :class:`TTGError` into :func:`fail`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", CONTEXT_SETTINGS)
        super().__init__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TTGError as exc:
            fail(str(exc))


def command(name: str | None = None, **kwargs: Any) -> Any:
    """``click.command`` with TTG's error policy (see :class:`Command`)."""
    return click.command(name, cls=Command, **kwargs)

