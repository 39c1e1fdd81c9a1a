"""The Results chart filling in, as a person sees it: run.ipynb in JupyterLab (Chromium),
Run All, the small preset on Redis.

While the run goes, the Results chart under the queue chart gains points (read from the
plotly graph div, as the supervisor demo's test reads the queue chart). When it ends, the
live chart has become the static one: the figure in the run cell, the one the Results
section draws from the record, and ``nb.results_figure`` in Python hold the same points.
Saves ``outputs/screenshots/results_live.png`` mid-run.
"""

from __future__ import annotations

from pathlib import Path

from browser import LAB_MARKS, lab_page, readings
from labserver import RESULTS_JS, jupyterlab, live_results_points, run_all

from ttg_lib import notebook as nb

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "outputs" / "screenshots" / "results_live.png"

pytestmark = LAB_MARKS


def test_results_chart_fills_in_and_ends_as_the_static_one(tmp_path: Path) -> None:
    with jupyterlab(tmp_path, "run.ipynb") as lab, lab_page(lab, SCREENSHOT) as page:
        run_all(page, lambda: page.wait_for_function(
            f"() => ({RESULTS_JS})().length > 0", timeout=180_000))
        page.wait_for_function(  # the first points on disk
            f"() => ({RESULTS_JS})().some(c => c.title.includes('so far') && "
            "c.traces.some(t => t.x.length > 0))", timeout=240_000)
        seen = readings(page, lambda: live_results_points(page), every_ms=2_000)
        live = [n for n in seen if n >= 0]  # -1: the run ended between two reads
        assert len(live) >= 3 and live[-1] > live[0], f"results chart did not grow: {seen}"
        assert live == sorted(live), f"point count went backwards: {seen}"
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        # the end: the run cell's chart and the Results section's, both static
        page.wait_for_function(
            f"() => {{ const c = ({RESULTS_JS})(); return c.length >= 2 && "
            "c.every(x => !x.title.includes('so far') && !x.title.includes('waiting')); }",
            timeout=600_000)
        in_cell, in_section = page.evaluate(RESULTS_JS)[:2]
    [record] = [s.parent for s in (lab["outputs"] / "runs").glob("*/summary.json")]
    static = nb.results_figure(record)
    expected = {"title": static.layout.title.text,
                "traces": [{"name": t.name or "", "x": list(t.x), "y": list(t.y)}
                           for t in static.data]}
    assert in_cell == expected, "the live chart did not end as the static one"
    assert in_section == expected
    assert len(expected["traces"][0]["x"]) == 1_000  # the small preset: every point drawn
