"""JupyterLab for the browser tests: a headless server on loopback over a temporary copy of a
notebook (so autosave never writes outputs into the committed one), Run All from its menu,
and the Results charts read from the page. Random free port, random token; the notebook's
runs go to a private output dir."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import URLS, _require

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)  # the server is still starting; no event to wait on
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout:.0f}s")


@contextmanager
def jupyterlab(tmp_path: Path, notebook: str, scale: str = "small") -> Iterator[dict]:
    """A JupyterLab serving a copy of ``notebooks/<notebook>``; yields its url, the output
    dir of its runs and its log. Every cell is drawn (no windowing: a test reads charts
    below the fold), and a failed test's workers are stopped."""
    for url in URLS.values():
        _require(url)
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / notebook, work / notebook)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    outputs = tmp_path / "outputs"
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "TTG_NOTEBOOK_SCALE": scale, "TTG_NOTEBOOK_OUTPUT_DIR": str(outputs),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = (tmp_path / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--allow-root", "--ServerApp.terminals_enabled=False", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc, 120)
        yield {"url": f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}",
               "outputs": outputs, "log": tmp_path / "jupyterlab.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        from ttg_lib.cleanup import cleanup

        # a failed test may leave the notebook's workers running: stop exactly those
        cleanup(output_dir=outputs, backends={}, processes=True, queues=False)


def run_all(page, ready, attempts: int = 3) -> None:
    """Once the kernel is idle, Run > Run All Cells until ``ready`` (a Playwright wait that
    raises on timeout) says the notebook started: a click before the menu is wired is lost."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=240_000)
    for attempt in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator("li.lm-Menu-item").filter(has=page.locator(
            ".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))).first.click()
        try:
            ready()
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


# every plotly chart on the page whose title says it is a Results chart: title and traces
# (as drawn: _fullData has the arrays decoded, however the figure sent them)
RESULTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(gd => gd.layout && gd.layout.title &&
                  String(gd.layout.title.text || '').startsWith('Results'))
    .map(gd => ({title: String(gd.layout.title.text),
                 traces: (gd._fullData || []).map(t => ({name: t.name || '',
                     x: Array.from(t.x || []), y: Array.from(t.y || [])}))}))"""


def live_results_points(page) -> int:
    """Points of the live Results chart now (0 while it waits for the first results; -1:
    no live one on the page)."""
    charts = page.evaluate(RESULTS_JS)
    live = [c for c in charts if "so far" in c["title"] or "waiting" in c["title"]]
    return sum(len(t["x"]) for t in live[0]["traces"]) if live else -1
