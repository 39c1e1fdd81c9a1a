"""The notebook layer: papermill runs of run.ipynb, HTML export, `ttg report`, nbval.

Runs use the tiny scale (TTG_NOTEBOOK_SCALE=tiny) and a temporary output directory, and
the brokers named by TTG_REDIS_URL / TTG_RABBITMQ_URL, like the rest of the suite.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import block_network, chromium_page, require_chromium
from conftest import URLS, _require, require_package

from ttg_lib import notebook as nb
from ttg_lib.record import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

require_package("papermill", "pip install -e '.[notebooks]'")

# (backend, fault_demo, cwd for papermill): both working directories must work
CASES = {
    "redis": ("redis", False, ROOT),
    "rabbitmq": ("rabbitmq", False, NOTEBOOKS),
    "rabbitmq-fault": ("rabbitmq", True, ROOT),
}


@pytest.fixture(scope="module")
def nb_env(tmp_path_factory: pytest.TempPathFactory):
    """Tiny scale and a private output dir for every kernel papermill starts."""
    out = tmp_path_factory.mktemp("nb") / "outputs"
    saved = {k: os.environ.get(k) for k in (nb.SCALE_ENV, nb.OUTPUT_ENV)}
    os.environ[nb.SCALE_ENV] = "tiny"
    os.environ[nb.OUTPUT_ENV] = str(out)
    yield out
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def executed(nb_env: Path):
    """run.ipynb executed by papermill once per case, shared by the tests below."""
    done: dict[str, tuple[Path, dict]] = {}

    def get(case: str) -> tuple[Path, dict]:
        if case not in done:
            backend, fault, cwd = CASES[case]
            _require(URLS[backend])
            dest = nb_env / "executed" / f"run-{case}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            import papermill  # here, not at collection (conftest.require_package)

            papermill.execute_notebook(
                str(NOTEBOOKS / "run.ipynb"), str(dest), kernel_name=KERNEL, cwd=str(cwd),
                parameters={"backend": backend, "fault_demo": fault}, progress_bar=False)
            executed_nb = json.loads(dest.read_text())
            run_id = _run_id_from(executed_nb)
            summary = json.loads((nb_env / "runs" / run_id / "summary.json").read_text())
            done[case] = (dest, summary)
        return done[case]

    return get


def _run_id_from(executed_nb: dict) -> str:
    text = json.dumps(executed_nb["cells"])
    match = re.search(r"run (\d{8}-\d{6}-\w+-[0-9a-f]{6}):", text)
    assert match, "run.ipynb did not print its run id"
    return match.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_run_notebook_records_a_verified_run(case: str, executed, nb_env: Path,
                                             tmp_path: Path) -> None:
    dest, s = executed(case)
    backend, fault, _cwd = CASES[case]
    assert s["backend"] == backend and s["scale"] == "tiny"
    assert s["ok"], s["problems"]
    assert s["params_verified"] == s["total_params"] == 60
    assert s["chunks_completed"] == s["chunks_total"]
    assert s["lost_params"] == 0 and s["wrong_results"] == 0
    assert Path(s["record_dir"]).parent == nb_env / "runs"
    assert (s["fault"] is not None) == fault
    samples = read_jsonl(Path(s["record_dir"]) / "samples.jsonl")
    assert len(samples) >= 2, "the chart needs queue samples over time"
    assert [row["t"] for row in samples] == sorted(row["t"] for row in samples)
    assert samples[-1]["completed"] == s["chunks_completed"]  # the last point is the end state

    # the saved notebook keeps a static figure in plotly's mimetype form (no plotly.js),
    # not a widget that nbconvert would drop
    outputs = [o for c in json.loads(dest.read_text())["cells"] for o in c.get("outputs", [])]
    kinds = [set(o.get("data", {})) for o in outputs]
    assert any(PLOTLY_MIME in k for k in kinds)
    assert not any(PLOTLY_MIME in k and "text/html" in k for k in kinds)
    assert not any("application/vnd.jupyter.widget-view+json" in k for k in kinds)

    from ttg_lib.report.html import export_html

    page = export_html(dest, tmp_path / f"{case}.html").read_text()
    assert_loads_shared_plotly_js(page, tmp_path)
    assert not re.search(r"<script[^>]+src=[\"']https?:", page), "no CDN scripts"
    assert "Plotly.newPlot" in page
    names = nb.QUEUE_NAMES[backend]
    # the run's story, then a trace per queue labelled as the broker's own figure: its
    # total, or its ready count where the broker gave no total
    assert '"name":"chunks left to compute"' in page and '"name":"points on disk"' in page
    assert f'"name":"broker: {names["tasks"]} messages' in page
    assert f'"name":"broker: {names["results"]} messages' in page
    assert s["run_id"] in page and "VERIFIED" in page and "Target" in page
    if fault:
        assert "fault: " in page and "killed" in page


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_saved_run_notebook_is_small(case: str, executed) -> None:
    """No copy of plotly.js in a saved run: not in a figure, not in the closed live chart."""
    dest, _s = executed(case)
    size = dest.stat().st_size
    assert size < 1_000_000, f"executed run.ipynb is {size:,} bytes"
    text = dest.read_text()
    assert "plotly.js v" not in text
    state = json.loads(text)["metadata"].get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    assert all(len(w["state"].get("_esm", "")) < 1000 for w in state.values())


def assert_loads_shared_plotly_js(page: str, directory: Path) -> None:
    """A page's figures are drawn by the one plotly.min.js beside it, never an inline copy."""
    from plotly.offline import get_plotlyjs

    from ttg_lib.report.html import PLOTLY_JS

    assert page.count(f'<script src="{PLOTLY_JS}"></script>') == 1
    assert "plotly.js v" not in page, "no inline copy of plotly.js"
    assert "Plotly.newPlot" in page
    assert (directory / PLOTLY_JS).read_bytes() == get_plotlyjs().encode()


@pytest.mark.slow
def test_bad_parameter_fails_with_the_library_message(nb_env: Path, tmp_path: Path) -> None:
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOKS / "run.ipynb"), str(tmp_path / "bad.ipynb"),
                                   kernel_name=KERNEL, parameters={"workers": 0},
                                   progress_bar=False)
    assert err.value.ename == "ConfigError"
    assert "invalid workers=0: at least 1, or 0 with expect_workers N" in err.value.evalue


def test_output_dir_is_relative_to_the_repo_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(nb.OUTPUT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert nb.resolve_output_dir("outputs") == ROOT / "outputs"
    assert nb.resolve_output_dir(None) == ROOT / "outputs"
    assert nb.resolve_output_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv(nb.SCALE_ENV, "tiny")
    assert nb.notebook_scale(None) == "tiny" and nb.notebook_scale("small") == "small"


@pytest.fixture(scope="module")
def reports(executed, nb_env: Path) -> Path:
    from click.testing import CliRunner

    from ttg_lib.commands.report import report as report_command

    for case in CASES:
        executed(case)
    result = CliRunner().invoke(report_command, ["--output-dir", str(nb_env), "--hide-code"])
    assert result.exit_code == 0, result.output
    return nb_env / "reports"


@pytest.mark.slow
def test_ttg_report_writes_linked_offline_pages(reports: Path, executed) -> None:
    index = (reports / "index.html").read_text()
    assert "milestone.html" in index
    for case in CASES:
        s = executed(case)[1]
        page = reports / f"run-{s['run_id']}.html"
        assert f"href='{page.name}'" in index
        text = page.read_text()
        assert_loads_shared_plotly_js(text, reports)
        assert "from ttg_lib import notebook" not in text, "--hide-code leaves code out"
    assert_loads_shared_plotly_js((reports / "milestone.html").read_text(), reports)
    assert [p.name for p in reports.rglob("*.js")] == ["plotly.min.js"], "one shared copy"
    for executed_nb in (reports / "notebooks").glob("*.ipynb"):
        assert executed_nb.stat().st_size < 1_000_000, executed_nb
    assert index.count("VERIFIED") == len(CASES)
    milestone = (reports / "milestone.html").read_text()
    assert "Backend Comparison Summary" in milestone and "Key Observations" in milestone
    assert "Redis (no fault)" in milestone and "RabbitMQ (fault)" in milestone


@pytest.mark.slow
def test_report_chart_is_drawn_in_chromium(reports: Path, executed) -> None:
    require_chromium()
    s = executed("rabbitmq-fault")[1]
    page_path = reports / f"run-{s['run_id']}.html"
    shot = ROOT / "outputs" / "screenshots" / "report-chart.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    with chromium_page(1280, 900) as page:
        requests = block_network(page)
        page.goto(page_path.as_uri(), wait_until="domcontentloaded", timeout=180_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120_000)
        points = page.evaluate("""() => {
            const gd = document.querySelector('.js-plotly-plot');
            return gd.data.map(t => (t.x || []).length); }""")
        chart = page.query_selector(".js-plotly-plot")
        chart.scroll_into_view_if_needed()
        png = chart.screenshot(path=str(shot))
        inked = _inked_fraction(page, png)
    assert requests == [], f"the report asked the network for {requests}"
    assert min(points) >= 1 and max(points) >= 2, points
    assert inked > 0.02, f"chart area looks blank ({inked:.1%} non-white pixels)"


def _inked_fraction(page, png: bytes) -> float:
    """Share of non-white pixels in a PNG, measured by the browser's own canvas."""
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    return page.evaluate("""async (src) => {
        const img = new Image(); img.src = src; await img.decode();
        const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let inked = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235) inked++;
        }
        return inked / (d.length / 4); }""", data_url)


@pytest.mark.slow
def test_nbval_every_notebook(nb_env: Path) -> None:
    """`pytest --nbval-lax notebooks/`: every cell of every notebook runs (tiny scale)."""
    for url in URLS.values():
        _require(url)
    env = {**os.environ, nb.SCALE_ENV: "tiny", nb.OUTPUT_ENV: str(nb_env / "nbval")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "nbval", "-q",
         "--nbval-lax", "--nbval-sanitize-with", str(NOTEBOOKS / "nbval.cfg"),
         "--nbval-kernel-name", KERNEL, "--nbval-cell-timeout", "600", str(NOTEBOOKS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]
