"""The Python API: sweep a function from a notebook cell or a script.

    import ttg_lib
    sweep = ttg_lib.sweep(simulate, {"axes": {"alpha": {"linspace": [0, 1, 21]},
                                              "beta": [1, 2, 3]}},
                          backend="redis", workers=3, verify="sample")
    df = sweep.results()      # results.parquet as a pandas DataFrame
    sweep.summary             # the typed RunSummary

``fn`` is any picklable callable (a cell's function, a lambda, a closure, a
``functools.partial``) or an import path ``"module:function"``; a callable that workers
cannot import by name travels by value (:mod:`ttg_lib.byvalue`). Every ``ttg run`` option
is a keyword argument: the fields of :class:`ttg_lib.config.RunConfig`, checked there.
In Jupyter the run draws its live charts, the queues and the Results filling in
(``live=True`` by default there); ``background=True`` returns at once, and
:meth:`Sweep.wait`, :meth:`Sweep.progress` and :meth:`Sweep.stop` follow the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from .byvalue import display_name, import_path, should_ship
from .config import RunConfig
from .errors import ConfigError, RunError
from .summary import RunSummary

SET_BY_SWEEP = ("compute", "space", "compute_sha256")  # from fn and space, not keywords


def sweep(fn: Callable[..., Any] | str, space: dict[str, Any] | str | None = None, *,
          background: bool = False, live: bool | None = None, config: RunConfig | None = None,
          **options: Any) -> Sweep:
    """Run ``fn`` over every point of ``space`` (``fn(**point)``; without a space,
    ``fn(param_id, work_ms)`` over ``total_params`` ids) and verify the results.
    ``options``: any RunConfig field (backend, workers, verify, scale, chunk_size, ...);
    ``config``: settings to start from (a notebook's ``build_config``), options override
    them, and its space is the space when none is given.

    A sweep into the same ``output_dir`` as earlier runs reuses the points they already
    computed with the same function (its fingerprint; ``version=`` salts it) and the same
    values, and computes only the rest: widening an axis computes the new points alone. The
    workers recompute some reused points to check them (``verify``: sample, full or none);
    ``reuse="none"`` computes every point."""
    taken = sorted(set(options) & set(SET_BY_SWEEP))
    if taken:
        raise ConfigError(taken[0], options[taken[0]], "given by sweep's own arguments: "
                                                       "fn and space")
    function: Callable[..., Any] | None = None
    if isinstance(fn, str):
        compute = fn
    elif callable(fn):
        if should_ship(fn):
            compute, function = display_name(fn), fn
        else:
            compute = import_path(fn)
    else:
        raise ConfigError("fn", fn, "a callable or an import path 'module:function'")
    if config is not None:
        space = config.space if space is None else space
        options = {**{f.name: getattr(config, f.name) for f in fields(RunConfig)
                      if f.name not in SET_BY_SWEEP}, **options}
    built = RunConfig.build(compute=compute, space=space, **options)
    return Sweep(built, function=function, background=background, live=live)


def resume(run_id: str, *, output_dir: str | Path = "outputs", background: bool = False,
           live: bool | None = None, **watch: Any) -> Sweep:
    """Continue a run whose orchestrator died (``ttg run --resume``), with its own settings
    and function (a function shipped by value comes back from the run's record)."""
    record = Path(output_dir) / "runs" / run_id
    config = RunConfig.from_record(record, run_id=run_id, output_dir=str(output_dir), **watch)
    return Sweep(config, background=background, live=live, resume=True)


def sweep_options() -> tuple[str, ...]:
    """The keyword arguments :func:`sweep` takes besides fn and space."""
    return tuple(f.name for f in fields(RunConfig) if f.name not in SET_BY_SWEEP)


class Sweep:
    """One run, driven in this process: to its end at once, or on a background thread."""

    def __init__(self, config: RunConfig, *, function: Callable[..., Any] | None = None,
                 background: bool = False, live: bool | None = None, resume: bool = False):
        from .run import Run

        self._run = Run(config, function=function, resume=resume)  # bad input raises here
        self.config = self._run.config
        self._summary: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._drive, name=f"ttg-{config.run_id}",
                                            daemon=True)
            self._thread.start()
        elif _live(live):
            from .notebook.live import run_live

            self._summary = run_live(self.config, run=self._run).to_dict()
        else:
            self._drive()
            self._raise()

    @property
    def run_id(self) -> str:
        return self.config.run_id

    @property
    def record_dir(self) -> Path:
        return self.config.record_dir

    def _drive(self) -> None:
        from .run import execute

        try:
            self._summary = execute(self.config, run=self._run)
        except BaseException as exc:  # kept for wait() to raise in the caller's thread
            self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    @property
    def done(self) -> bool:
        return self._summary is not None or (self._thread is not None
                                             and not self._thread.is_alive())

    def wait(self, timeout: float | None = None) -> RunSummary:
        """Block until the run ended; its summary. Raises the run's error, if it had one."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"run {self.run_id} still going after {timeout} s")
        self._raise()
        return self.summary

    def progress(self) -> Any:
        """The run's progress now (chunks, params, live workers, state)."""
        return self._run.progress()

    def stop(self) -> RunSummary | None:
        """End the run at its next step (workers stopped, the record written); with a
        background run, wait for that. The summary says what was done."""
        self._run.stop()
        if self._thread is not None:
            self._thread.join()
            self._raise()
        return self.summary if self._summary else None

    @property
    def summary(self) -> RunSummary:
        """The typed summary (``summary.json``); the run must have ended."""
        if self._summary is None:
            raise RunError(f"run {self.run_id} has not ended yet: wait() for it")
        return RunSummary.from_dict(self._summary)

    def results(self) -> Any:
        """``results.parquet`` as a pandas DataFrame, one row per point."""
        from .results import load_results

        self.wait()
        return load_results(self.run_id, self.config.output_dir)

    def __repr__(self) -> str:
        state = ("verified" if self._summary and self._summary["ok"] else
                 "failed" if self._summary else "running")
        return f"<Sweep {self.run_id} {state}>"


def _live(live: bool | None) -> bool:
    if live is not None:
        return live
    from .notebook.display import in_ipython

    return in_ipython()
