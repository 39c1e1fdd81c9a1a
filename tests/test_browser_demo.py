"""The supervisor demo as a person uses it: JupyterLab in Chromium, Run All, Start, watch.

JupyterLab runs headless on loopback over a temporary copy of
``notebooks/supervisor_demo.ipynb`` (tests/labserver.py); Playwright drives Debian's
``/usr/bin/chromium`` (tests/browser.py). The test runs all cells, clicks Start, reads the
live chart's point count from the plotly graph div while the run goes (and its "chunks left
to compute" line, which must fall and never rise: issue 22's story of the run, where the
broker's own tasks count stays level under ``--verify full``), kills a worker, stops the
run, and saves ``outputs/screenshots/supervisor_demo.png``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import LAB_MARKS, lab_page, readings
from labserver import jupyterlab as lab_server
from labserver import live_results_points, run_all

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "outputs" / "screenshots" / "supervisor_demo.png"

pytestmark = LAB_MARKS

POINTS_JS = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    return gd && gd.data && gd.data.length ? (gd.data[0].x || []).length : -1; }"""

CHUNKS_LEFT_JS = """() => {
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        const line = (gd.data || []).find(d => d.name === 'chunks left to compute');
        if (line) return Array.from(line.y || []);
    }
    return null; }"""


@pytest.fixture
def jupyterlab(tmp_path: Path):
    with lab_server(tmp_path, "supervisor_demo.ipynb") as lab:
        yield lab


def _button(page, text: str):
    return page.locator("button.jupyter-button", has_text=text).first


def test_supervisor_demo_in_jupyterlab(jupyterlab) -> None:
    with lab_page(jupyterlab, SCREENSHOT) as page:
        # wait until the kernel is up (status bar "| Idle"), then Run > Run All Cells
        start = _button(page, "Start")
        run_all(page, lambda: start.wait_for(state="visible", timeout=120_000))
        assert _button(page, "Kill a worker now").is_disabled()
        assert _button(page, "Stop").is_disabled()
        assert page.evaluate(POINTS_JS) in (-1, 0), "chart must be empty before Start"

        start.click()
        page.wait_for_function(f"() => ({POINTS_JS})() >= 3", timeout=240_000)
        assert start.is_disabled(), "Start is disabled while a run is going"
        seen = readings(page, lambda: page.evaluate(POINTS_JS))
        assert seen[-1] > seen[0], f"live chart did not grow: {seen}"
        assert seen == sorted(seen), f"point count went backwards: {seen}"
        left = page.evaluate(CHUNKS_LEFT_JS)
        assert left and len(left) >= 3, f"no chunks-left line in the live chart: {left}"
        assert left == sorted(left, reverse=True), f"chunks left rose: {left}"
        assert left[-1] < left[0], f"chunks left did not fall during the run: {left}"
        assert live_results_points(page) > 0, "the Results chart fills in under it"

        kill = _button(page, "Kill a worker now")
        assert not kill.is_disabled()
        kill.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('textarea')].some(t => /killed w\\d+/"
            ".test(t.value))", timeout=60_000)
        page.wait_for_timeout(2500)  # let the chart draw the kill marker
        after = page.evaluate(CHUNKS_LEFT_JS)
        assert after == sorted(after, reverse=True) and after[-1] <= left[-1], \
            f"chunks left rose across the kill: {after}"
        news = page.locator(".Toastify__toast button", has_text="No")
        if news.count():
            news.first.click()  # JupyterLab's "get notified about news?" toast
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        worker_rows = page.evaluate(
            "() => [...document.querySelectorAll('table.ttg-table tbody tr')].length")
        assert worker_rows >= 3, "worker table lists the workers"

        _button(page, "Stop").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('textarea')].some(t => "
            "/run \\S+ stopped:/.test(t.value))", timeout=180_000)
        start.wait_for(state="visible")
        page.wait_for_function(
            "() => { const b = [...document.querySelectorAll('button.jupyter-button')]"
            ".find(b => b.textContent.includes('Start')); return b && !b.disabled; }",
            timeout=60_000)
    records = list((jupyterlab["outputs"] / "runs").glob("*/summary.json"))
    assert len(records) == 1, "the stopped run still wrote its record"
    assert SCREENSHOT.stat().st_size > 10_000
