"""``ttg repro RUN PARAM_ID``: one point of a run, computed here in the foreground with the
run's compute path and space, so its full traceback (or a debugger) is at hand."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import ConfigError


@dataclass
class Repro:
    """What running the point gave: its arguments, its value (and how TTG stores it) or
    the exception with its whole traceback."""

    run_id: str
    param_id: int
    compute: str
    arguments: dict[str, Any]
    value: Any = None
    stored: Any = None
    store_error: str | None = None
    error: BaseException | None = None
    call: Callable[[], Any] | None = None

    def run(self, on_error: Callable[[BaseException], None] | None = None) -> Repro:
        """Call the function here (a crash of the process prints the Python stack, via
        faulthandler); ``on_error`` sees an exception first (``--pdb``: a post-mortem)."""
        import faulthandler

        from .values import Unstorable, storable

        assert self.call is not None
        try:
            faulthandler.enable()
        except (OSError, ValueError):  # stderr is no file (a test runner's capture)
            pass
        try:
            self.value = self.call()
        except BaseException as exc:  # noqa: BLE001 - the user's code: show what it raised
            self.error = exc
            if on_error is not None:
                on_error(exc)
            return self
        try:
            self.stored = storable(self.value)
        except Unstorable as exc:
            self.store_error = str(exc)
        return self

    @property
    def ok(self) -> bool:
        return self.error is None and self.store_error is None

    def traceback(self) -> str:
        if self.error is None:
            return ""
        return "".join(traceback.format_exception(self.error))


def prepare(run: str, param_id: int, output_dir: str | Path = "outputs") -> Repro:
    """Point ``param_id`` of ``run`` (a run id or its record directory), ready to run with
    :meth:`Repro.run`."""
    record = Path(run) if Path(run).is_dir() else Path(output_dir) / "runs" / run
    config = RunConfig.from_record(record, output_dir=str(record.parent.parent),
                                   run_id=record.name)
    if not 0 <= param_id < config.total_params:
        raise ConfigError("param_id", param_id, f"a point of run {config.run_id}: "
                                                f"0 to {config.total_params - 1:,}")
    from . import byvalue, compute

    # a function shipped by value (a notebook's, a script's) is read back from the record
    fn = byvalue.for_run(config)[0] if config.compute_sha256 else compute.load(config.compute)
    if config.space is not None:
        from .space import load_space

        arguments = dict(load_space(config.space).point(param_id))
        call: Callable[[], Any] = lambda: fn(**arguments)  # noqa: E731
    else:
        arguments = {"param_id": param_id, "work_ms": config.work_ms}
        call = lambda: fn(param_id, config.work_ms)  # noqa: E731
    return Repro(config.run_id, param_id, config.compute, arguments, call=call)
