"""Figures in plotly's mimetype form, and HTML pages that share one plotly.min.js (no broker).

A saved notebook carries its figures as plotly JSON only; ``export_html`` turns them into
drawing scripts and every page loads the ``plotly.min.js`` beside it, which is the
installed plotly package's own bundle. The page is opened in Chromium with the network
cut off to see that the chart is drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser import block_network, chromium_page, require_chromium

from ttg_lib.notebook import display
from ttg_lib.report.html import PLOTLY_JS, PLOTLY_MIME, export_html

go = pytest.importorskip("plotly.graph_objects", reason="pip install -e '.[notebooks]'")
nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[notebooks]'")
pytest.importorskip("nbconvert", reason="pip install -e '.[notebooks]'")



def _plotly_bundle() -> bytes:
    """plotly.min.js as the installed plotly package ships it."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def _figure(title: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[0, 1, 2, 3], y=[4, 1, 3, 2], name="ttg.results"))
    fig.update_layout(title={"text": title}, height=380)
    return fig


def _saved_notebook(path: Path, titles: list[str]) -> Path:
    """A notebook as a kernel saves it: one display_data output per figure."""
    cells = []
    for title in titles:
        cell = nbformat.v4.new_code_cell(f"nb.show(fig)  # {title}")
        cell.outputs = [nbformat.v4.new_output("display_data",
                                               data=display.figure_bundle(_figure(title)))]
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))
    return path


def test_figure_bundle_is_plotly_json_only() -> None:
    bundle = display.figure_bundle(_figure("queues"))
    assert set(bundle) == {PLOTLY_MIME, "text/plain"}, "no text/html, so no plotly.js"
    figure = bundle[PLOTLY_MIME]
    assert json.loads(json.dumps(figure)) == figure
    assert figure["data"][0]["y"] == [4, 1, 3, 2]
    assert figure["config"] == {"displaylogo": False}
    assert "queues" in bundle["text/plain"]


def test_release_widget_drops_the_widget_code() -> None:
    pytest.importorskip("anywidget")
    widget = go.FigureWidget(_figure("live"))
    assert len(widget._esm) > 1_000_000, "plotly's FigureWidget ships plotly.js as its code"
    display.release_widget(widget)
    assert widget._esm == display.EMPTY_ESM
    assert widget.comm is None, "closed"


def test_pages_share_one_plotly_js(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    pages = [export_html(_saved_notebook(tmp_path / f"{n}.ipynb", [f"{n} a", f"{n} b"]),
                         out / f"{n}.html") for n in ("one", "two")]
    assert sorted(p.name for p in out.iterdir()) == ["one.html", PLOTLY_JS, "two.html"]
    assert (out / PLOTLY_JS).read_bytes() == _plotly_bundle(), "plotly's own bundle"
    for page in pages:
        text = page.read_text()
        assert text.count(f'<script src="{PLOTLY_JS}"></script>') == 1
        assert "plotly.js v" not in text and len(text) < 1_000_000, "no inline copy"
        assert text.count("Plotly.newPlot") == 2 and PLOTLY_MIME not in text
        assert '"displaylogo": false' in text


def test_plotly_js_is_rewritten_when_it_differs(tmp_path: Path) -> None:
    nb_path = _saved_notebook(tmp_path / "a.ipynb", ["a"])
    export_html(nb_path, tmp_path / "a.html")
    shared = tmp_path / PLOTLY_JS
    shared.write_text("/* an older plotly.js */")
    export_html(nb_path, tmp_path / "a.html")
    assert shared.read_bytes() == _plotly_bundle()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_page_without_figures_loads_no_script(tmp_path: Path) -> None:
    nb_path = tmp_path / "text.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# hi")]),
                   str(nb_path))
    page = export_html(nb_path, tmp_path / "out" / "text.html").read_text()
    assert "<script src=" not in page
    assert not (tmp_path / "out" / PLOTLY_JS).exists()


@pytest.mark.slow  # a browser
def test_page_draws_its_charts_offline_in_chromium(tmp_path: Path) -> None:
    require_chromium()
    pytest.importorskip("playwright.sync_api")
    page_path = export_html(_saved_notebook(tmp_path / "c.ipynb", ["first", "second"]),
                            tmp_path / "reports" / "c.html")
    with chromium_page(1200, 900) as page:
        requests = block_network(page)
        page.goto(page_path.as_uri(), wait_until="load", timeout=120_000)
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot .main-svg .scatterlayer "
            ".trace').length === 2", timeout=60_000)
        drawn = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
            .map(gd => [gd.layout.title.text, gd.data[0].x.length])""")
    assert requests == [], f"the page asked the network for {requests}"
    assert drawn == [["first", 4], ["second", 4]]


def test_a_failed_live_run_releases_its_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that raises mid-way still turns its live chart static: no 5 MB widget saved."""
    pytest.importorskip("anywidget")
    import ttg_lib.run
    from ttg_lib.config import RunConfig
    from ttg_lib.notebook import charts, landscape, live

    class BrokenRun:
        def __init__(self, config: RunConfig, **_options: object) -> None:
            self.config = config

        def __enter__(self) -> BrokenRun:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def start(self) -> None:
            raise RuntimeError("broker went away")

    made: list[charts.LiveChart | landscape.LiveResults] = []

    class RecordedChart(charts.LiveChart):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    class RecordedResults(landscape.LiveResults):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(ttg_lib.run, "Run", BrokenRun)
    monkeypatch.setattr(live, "LiveChart", RecordedChart)
    monkeypatch.setattr(live, "LiveResults", RecordedResults)
    with pytest.raises(RuntimeError, match="broker went away"):
        live.run_live(RunConfig(scale="tiny"))
    assert [type(c) for c in made] == [RecordedChart, RecordedResults]  # queues, results
    for chart in made:
        assert chart.widget._esm == display.EMPTY_ESM and chart.widget.comm is None
