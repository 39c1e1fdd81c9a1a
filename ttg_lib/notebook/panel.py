"""The supervisor demo: one ipywidgets panel to start, fault, stop and clean up a run."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable
from typing import Any

from ..backends import DEFAULT_BACKEND, env_urls
from ..byvalue import display_name
from ..config import BACKENDS, ConfigError, RunConfig
from ..paths import resolve_output_dir
from ..recorded import Heartbeat, load_heartbeats
from .charts import LiveChart
from .display import ipython_display
from .landscape import LiveResults
from .live import status_line
from .params import build_config, notebook_scale
from .tables import html_table, verdict_html


class SupervisorPanel:
    """The interactive demo: controls, live chart, worker table and log, one widget box.

    Start schedules :meth:`_drive` on the kernel's own asyncio loop: it runs the run on
    :func:`~ttg_lib.run.execute` in a thread, so button clicks (Kill, Stop) are taken at
    once and carried out between steps, and every widget update is sent from the kernel's
    main thread. Nothing runs until a person clicks Start, so the notebook also executes
    headless (nbval, papermill) without side effects.
    """

    def __init__(self, output_dir: str | None = None, scale: str | None = None,
                 function: Any = None, space: Any = None):
        import ipywidgets as w

        self.output_dir = resolve_output_dir(output_dir)
        # issue 20: a function of the notebook's own (by value) over ``space``, else TTG's
        self.function, self.space = function, space
        self.run: Any = None
        self.task: asyncio.Future[Any] | None = None
        self.chart: LiveChart | None = None
        self.landscape: LiveResults | None = None  # the Results chart filling in
        self.summary: dict[str, Any] | None = None
        self._requests: list[Callable[[], Any]] = []  # Kill, Stop: run on the run's thread
        self._events_seen = 0
        self.backend = w.ToggleButtons(options=list(BACKENDS), value=DEFAULT_BACKEND,
                                       description="Backend")
        self.scale = w.Dropdown(options=["tiny", "small", "medium"],
                                value=notebook_scale(scale) if notebook_scale(scale) in
                                ("tiny", "small", "medium") else "small",
                                description="Scale")
        self.workers = w.BoundedIntText(value=3, min=1, max=16, description="Workers")
        self.fault = w.Checkbox(value=True, description="Fault demo (kill one worker)")
        self.kill_at = w.FloatSlider(value=0.3, min=0.05, max=0.95, step=0.05,
                                     description="Kill at", readout_format=".0%")
        self.restart = w.ToggleButtons(options=["always", "never"], value="always",
                                       description="Restart")
        self.wait = w.Checkbox(value=True, description="If another run holds the broker, wait")
        self.start_btn = w.Button(description="Start", button_style="success", icon="play")
        self.kill_btn = w.Button(description="Kill a worker now", button_style="danger",
                                 icon="bolt", disabled=True)
        self.stop_btn = w.Button(description="Stop", button_style="warning", icon="stop",
                                 disabled=True)
        self.cleanup_btn = w.Button(description="Cleanup TTG resources", icon="trash")
        self.status = w.HTML("Idle. Choose settings and press <b>Start</b>.")
        self.workers_html = w.HTML(self._workers_markup([]))
        self.log = w.Textarea(value="", layout=w.Layout(width="100%", height="160px"),
                              disabled=True)
        self.chart_box = w.VBox(layout=w.Layout(width="100%"))  # queues, then results
        self.start_btn.on_click(lambda _b: self.start())
        self.kill_btn.on_click(lambda _b: self.kill())
        self.stop_btn.on_click(lambda _b: self.stop())
        self.cleanup_btn.on_click(lambda _b: self.cleanup())
        self.fault.observe(lambda ch: setattr(self.kill_at, "disabled", not ch["new"]), "value")
        self._settings = [self.backend, self.scale, self.workers, self.fault, self.kill_at,
                          self.restart, self.wait]
        controls = w.VBox([w.HBox([self.backend, self.scale, self.workers]),
                           w.HBox([self.fault, self.kill_at]), w.HBox([self.restart, self.wait]),
                           w.HBox([self.start_btn, self.kill_btn, self.stop_btn,
                                   self.cleanup_btn]), self.status])
        self.box = w.VBox([controls, self.chart_box,
                           w.HTML("<b>Workers</b>"), self.workers_html,
                           w.HTML("<b>Log</b>"), self.log])

    # ui plumbing
    def display(self) -> SupervisorPanel:
        ipython_display(self.box)
        return self

    def _ipython_display_(self) -> None:
        self.display()

    def say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log.value = (self.log.value + f"{stamp}  {line}\n")[-20_000:]

    @property
    def running(self) -> bool:
        return self.run is not None and self.summary is None

    def _buttons(self) -> None:
        active = self.running
        live = active and self.run.state == "running"
        self.start_btn.disabled = active
        self.cleanup_btn.disabled = active
        self.kill_btn.disabled = not live
        self.stop_btn.disabled = not live
        for widget in self._settings:
            widget.disabled = active
        if not active:
            self.kill_at.disabled = not self.fault.value

    @staticmethod
    def _workers_markup(rows: list[Heartbeat]) -> str:
        def beat(value: float | None) -> str:
            if not value:
                return "–"
            return f"{max(0.0, time.time() - float(value)):.1f}s ago"

        return html_table(["worker", "pid / pod", "state", "activity", "chunks done",
                           "current chunk", "last heartbeat"],
                          [(r.name, r.ident, r.state, r.activity, r.chunks_done or 0,
                            _current(r), beat(r.last_heartbeat)) for r in rows])

    # actions
    def config(self) -> RunConfig:
        return build_config(backend=self.backend.value, scale=self.scale.value,
                            workers=self.workers.value, fault_demo=self.fault.value,
                            kill_at=self.kill_at.value, restart=self.restart.value,
                            wait=self.wait.value, output_dir=str(self.output_dir),
                            space=self.space, compute=None if self.function is None
                            else display_name(self.function))

    def start(self) -> asyncio.Future[Any] | None:
        if self.running:
            return None
        from ..run import Run

        try:
            cfg = self.config()
            run = Run(cfg, say=self.say,  # e.g. "waiting for TTG run … : 40 tasks left"
                      function=self.function)  # a function that does not pickle: rejected
        except ConfigError as exc:
            self.status.value = f"<span style='color:#cf222e'>{html.escape(str(exc))}</span>"
            self.say(f"config rejected: {exc}")
            return None
        self.summary = None
        self.run, self._requests, self._events_seen = run, [], 0
        self.chart = LiveChart(cfg.backend, title=f"TTG queues, live: {cfg.run_id}")
        self.landscape = LiveResults(cfg.record_dir, cfg.space, cfg.total_params)
        self.chart_box.children = tuple(c.widget for c in (self.chart, self.landscape)
                                        if c.widget is not None)
        self._buttons()
        self.status.value = f"Starting {cfg.workers} workers on {cfg.backend}…"
        self.say(f"run {cfg.run_id}: {cfg.backend}, {cfg.scale} ({cfg.total_params:,} params, "
                 f"{cfg.chunks_total} chunks), {cfg.workers} workers, restart={cfg.restart}"
                 + (f", fault at {cfg.kill_at:.0%}" if cfg.fault_demo else ""))
        self.task = asyncio.ensure_future(self._drive())
        return self.task

    async def _drive(self) -> None:
        """The run on :func:`~ttg_lib.run.execute`'s loop, in a thread: the kernel's loop
        stays free for clicks. Run methods are called on that thread only (between steps,
        ``between_steps``); widgets are updated on the kernel's thread (:meth:`_show`)."""
        from ..run import execute

        run = self.run
        loop = asyncio.get_running_loop()
        last_table = 0.0

        def started(_run: Any) -> None:
            loop.call_soon_threadsafe(self._started)

        def between_steps(p: Any) -> None:
            nonlocal last_table
            while self._requests:
                self._requests.pop(0)()
            if run.done and not p.state.ended:  # stopped between steps: the last picture
                p = run.progress()
            rows = None
            if p.state.ended or time.monotonic() - last_table > 0.5:
                rows = [Heartbeat.from_dict(w.to_dict()) for w in run.cluster.worker_status()]
                last_table = time.monotonic()
            loop.call_soon_threadsafe(self._show, p, rows)

        try:
            summary = await loop.run_in_executor(None, lambda: execute(
                run.config, between_steps, step_s=0.1, on_start=started, run=run))
            self.workers_html.value = self._workers_markup(
                load_heartbeats(summary["record_dir"]))
            self.landscape.final(summary["record_dir"])  # the static chart, as a report draws it
            self.summary = summary
            self.status.value = verdict_html(summary)
            self.say(f"run {summary['run_id']} {summary['state']}: {summary['chunks_completed']}"
                     f"/{summary['chunks_total']} chunks, runtime {summary.get('runtime_s')}s, "
                     f"{'VERIFIED' if summary['ok'] else 'FAILED'}; record "
                     f"{summary['record_dir']}")
        except Exception as exc:  # shown in the panel: a button callback has no traceback view
            self.say(f"error: {type(exc).__name__}: {exc}")
            self.status.value = (f"<span style='color:#cf222e'><b>{type(exc).__name__}</b>: "
                                 f"{html.escape(str(exc))}</span>")
            if self.summary is None:  # execute() aborted the run already
                self.summary = {"ok": False, "error": str(exc)}
        finally:
            self._buttons()

    def _started(self) -> None:
        self.say(f"{self.run.config.workers} workers ready; tasks published")
        self._buttons()

    def _show(self, p: Any, rows: list[Heartbeat] | None) -> None:
        """One step's picture: chart, events, status line, worker table (kernel's thread)."""
        self.chart.observe(p, self.run, force=p.state.ended)
        self.landscape.poll()  # the parts on disk (a part moved aside is read next time)
        for e in p.events[self._events_seen:]:
            self.say(f"{e['event']:<9}{e['worker']:<5}{e.get('detail', '')}")
        self._events_seen = len(p.events)
        if rows is not None:
            self.status.value = status_line(p, self.run.config)
            self.workers_html.value = self._workers_markup(rows)
        if p.state.ended:
            self.status.value = f"Finishing ({p.state}): stopping workers, verifying…"
            self._buttons_finishing()

    def _buttons_finishing(self) -> None:
        self.kill_btn.disabled = self.stop_btn.disabled = True

    def kill(self) -> None:
        if self.running and self.run.state == "running":
            self._requests.append(self._kill_now)  # on the run's thread, between steps

    def _kill_now(self) -> None:
        try:
            info = self.run.kill_worker_now(reason="manual")
            self.say(f"killed {info['killed_worker']} at {info['killed_at_s']:.1f}s "
                     f"(chunk {info.get('victim_chunk')}) by request")
        except Exception as exc:  # e.g. no live worker left
            self.say(f"kill failed: {exc}")

    def stop(self) -> None:
        if self.running:
            self._requests.append(self.run.stop)
            self.say("stop requested: workers will be stopped and the record written")

    def cleanup(self) -> None:
        if self.running:
            self.say("cleanup refused: a run is in progress (Stop it first)")
            return
        from ..cleanup import cleanup

        brokers = env_urls()
        # cleanup() itself leaves the queues of a broker whose run lock is held alone
        rep = cleanup(output_dir=self.output_dir, backends=brokers, processes=True,
                      queues=True)
        for line in rep.lines():
            self.say(f"cleanup: {line}")


def _current(row: Heartbeat) -> str:
    """The current chunk; a point running for over a minute named, with its seconds."""
    running = row.running
    if running:
        return (f"{running['chunk']}: point {running.get('param_id', '?')} running "
                f"{running['seconds']:.0f} s")
    return "–" if row.current_chunk is None else str(row.current_chunk)
