"""The supervisor demo: one ipywidgets panel to start, fault, stop and clean up a run."""

from __future__ import annotations

import asyncio
import html
import time
from pathlib import Path
from typing import Any

from ..backends import DEFAULT_BACKEND, env_urls
from ..byvalue import display_name
from ..config import BACKENDS, ConfigError, RunConfig
from ..paths import resolve_output_dir
from ..record import load_json
from .charts import LiveChart
from .display import ipython_display
from .landscape import LiveResults
from .live import status_line
from .params import build_config, notebook_scale
from .tables import html_table, verdict_html


class SupervisorPanel:
    """The interactive demo: controls, live chart, worker table and log, one widget box.

    Start schedules :meth:`_drive` on the kernel's own asyncio loop: it calls
    ``run.step`` with a short timeout and then awaits, so button clicks (Kill, Stop)
    are handled between steps and every widget update is sent from the kernel's main
    thread. Nothing runs until a person clicks Start, so the notebook also executes
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
    def _workers_markup(rows: list[dict[str, Any]]) -> str:
        def beat(value: Any) -> str:
            if not value:
                return "–"
            return f"{max(0.0, time.time() - float(value)):.1f}s ago"

        return html_table(["worker", "pid / pod", "state", "activity", "chunks done",
                           "current chunk", "last heartbeat"],
                          [(r.get("name"), r.get("pid") or r.get("ident"), r.get("state"),
                            r.get("activity"), r.get("chunks_done", 0),
                            _current(r),
                            beat(r.get("last_heartbeat"))) for r in rows])

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
        self.run = run
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
        run, chart, landscape = self.run, self.chart, self.landscape
        loop = asyncio.get_running_loop()
        seen = 0
        try:
            await loop.run_in_executor(None, run.start)
            self.say(f"{run.config.workers} workers ready; tasks published")
            self._buttons()
            last_table = 0.0
            while not run.done:
                p = run.step(0.05)
                chart.observe(p, run)
                landscape.poll()
                for e in p.events[seen:]:
                    self.say(f"{e['event']:<9}{e['worker']:<5}{e.get('detail', '')}")
                seen = len(p.events)
                if time.monotonic() - last_table > 0.5:
                    self.status.value = status_line(p, run.config)
                    self.workers_html.value = self._workers_markup(
                        [w.to_dict() for w in run.cluster.worker_status()])
                    last_table = time.monotonic()
                await asyncio.sleep(0.2)
            chart.observe(run.progress(), run, force=True)
            self.status.value = f"Finishing ({run.state}): stopping workers, verifying…"
            self._buttons_finishing()
            summary = await loop.run_in_executor(None, run.finish)
            self.workers_html.value = self._workers_markup(load_json(
                Path(summary["record_dir"]) / "workers.json", []))
            landscape.final(summary["record_dir"])  # the static chart, as a report draws it
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
            if self.summary is None:
                run.abort()
                self.summary = {"ok": False, "error": str(exc)}
        finally:
            self._buttons()

    def _buttons_finishing(self) -> None:
        self.kill_btn.disabled = self.stop_btn.disabled = True

    def kill(self) -> None:
        if not self.running or self.run.state != "running":
            return
        try:
            info = self.run.kill_worker_now(reason="manual")
            self.say(f"killed {info['killed_worker']} at {info['killed_at_s']:.1f}s "
                     f"(chunk {info.get('victim_chunk')}) by request")
        except Exception as exc:  # e.g. no live worker left
            self.say(f"kill failed: {exc}")

    def stop(self) -> None:
        if self.running:
            self.run.stop()
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


def _current(row: dict[str, Any]) -> str:
    """The current chunk; a point running for over a minute named, with its seconds."""
    running = row.get("running")
    if running:
        return (f"{running['chunk']}: point {running.get('param_id', '?')} running "
                f"{running['seconds']:.0f} s")
    return "–" if row.get("current_chunk") is None else str(row["current_chunk"])
