"""HTML reports (``ttg report``): execute the report notebooks headless, export offline HTML.

For every recorded run, ``notebooks/run.ipynb`` is executed by papermill in its
render mode (``render_run_id``: nothing is run, everything is drawn from the run
record); ``notebooks/milestone.ipynb`` is executed in render-only mode
(``reuse_existing``). nbconvert turns each executed notebook into one HTML page
in ``outputs/reports/``, and ``index.html`` links them all with date, backend and
verdict.

The pages work offline and share one copy of plotly.js: the notebooks save their
figures in plotly's mimetype form (JSON, no plotly.js: :func:`ttg_lib.notebook.figure_bundle`),
:func:`export_html` turns each into a ``<div>`` and the script that draws it, and every page
loads ``plotly.min.js`` from its own directory (``<script src="plotly.min.js">``), a copy of
the installed plotly package's bundle written there once. The HTML template leaves out
nbconvert's CDN scripts (require.js, MathJax, Mermaid, the widget manager).
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ReportError
from ..paths import repo_root, resolve_output_dir

if TYPE_CHECKING:
    from ..summary import RunSummary

KERNEL = "python3"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"  # beside the pages, shared by all of them
DEFAULT_HEIGHT = 560
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
{%- if resources.plotly_js %}<script src="{{ resources.plotly_js }}"></script>{% endif -%}
{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def notebooks_dir() -> Path:
    path = repo_root() / "notebooks"
    if not (path / "run.ipynb").exists():
        raise ReportError(f"report notebooks not found in {path}: run `ttg report` from a TTG "
                          f"checkout (pip install -e .)")
    return path


def execute_notebook(source: Path, dest: Path, parameters: dict[str, Any], *,
                     kernel: str = KERNEL, cwd: Path | None = None,
                     timeout_s: int = 600) -> Path:
    """Run a notebook with papermill (the kernel must exist: ``python3`` by default)."""
    import papermill

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(source), str(dest), parameters=parameters,
                                   kernel_name=kernel, cwd=str(cwd or source.parent),
                                   progress_bar=False, execution_timeout=timeout_s,
                                   log_output=False)
    except papermill.PapermillExecutionError as exc:
        raise ReportError(f"{source.name} failed in cell {exc.exec_count}: {exc.ename}: "
                          f"{exc.evalue} (executed notebook: {dest})") from None
    return dest


def export_html(notebook: Path, dest: Path, *, hide_code: bool = False,
                title: str | None = None) -> Path:
    """Executed notebook -> one HTML page that needs no network: its figures load the
    ``plotly.min.js`` written beside it (:func:`write_plotly_js`)."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.pop("widgets", None)  # live widgets are replaced by static figures
    if title:
        nb.metadata["title"] = title
    figures = plotly_outputs_to_html(nb)
    exporter = HTMLExporter(template_name="lab",
                            extra_loaders=[DictLoader({"ttg_offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="ttg_offline.html.j2")
    exporter.exclude_input = hide_code
    exporter.exclude_input_prompt = hide_code
    exporter.exclude_output_prompt = hide_code
    body, _resources = exporter.from_notebook_node(
        nb, resources={"plotly_js": PLOTLY_JS if figures else ""})
    dest.parent.mkdir(parents=True, exist_ok=True)
    if figures:
        write_plotly_js(dest.parent)
    dest.write_text(body, encoding="utf-8")
    return dest


def plotly_outputs_to_html(nb: Any) -> int:
    """Replace every figure saved in plotly's mimetype form (which nbconvert drops) by a
    ``<div>`` and the script that draws it with the page's plotly.js; return how many."""
    import plotly.io as pio

    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            figure = output.get("data", {}).pop(PLOTLY_MIME, None)
            if figure is None:
                continue
            figure = dict(figure)
            config = figure.pop("config", None) or {}
            height = (figure.get("layout") or {}).get("height") or DEFAULT_HEIGHT
            count += 1
            output["data"]["text/html"] = pio.to_html(
                figure, config=config, include_plotlyjs=False, include_mathjax=False,
                full_html=False, div_id=f"ttg-figure-{count}", default_width="100%",
                default_height=height, validate=False)
    return count


def write_plotly_js(directory: Path) -> Path:
    """The one ``plotly.min.js`` the pages in ``directory`` load: the installed plotly
    package's own bundle (never downloaded), rewritten only when it differs (a plotly
    upgrade), through a temporary file so that a page never loads half of it."""
    from plotly.offline import get_plotlyjs

    path = directory / PLOTLY_JS
    code = get_plotlyjs().encode("utf-8")
    if not path.exists() or path.read_bytes() != code:
        tmp = path.with_name(f".{PLOTLY_JS}.{os.getpid()}.tmp")
        tmp.write_bytes(code)
        tmp.replace(path)
    return path


def _select(output_dir: Path, run_ids: Iterable[str], latest: int) -> list[RunSummary]:
    from ..record import list_summaries

    runs = list_summaries(output_dir)
    wanted = list(run_ids)
    if wanted:
        by_id = {s.run_id: s for s in runs}
        missing = [r for r in wanted if r not in by_id]
        if missing:
            raise ReportError(f"no finished run {', '.join(missing)} in {output_dir / 'runs'}")
        return [by_id[r] for r in wanted]
    return runs[-latest:] if latest else runs


def build_reports(output_dir: str | os.PathLike[str] | None = None, *,
                  run_ids: Iterable[str] = (), latest: int = 0, hide_code: bool = False,
                  milestone: bool = True, milestone_repeats: int = 3, kernel: str = KERNEL,
                  log: Callable[[str], None] = print) -> Path:
    """Execute and export every report; return the path of ``reports/index.html``."""
    out = resolve_output_dir(output_dir)
    reports = out / "reports"
    executed = reports / "notebooks"
    src = notebooks_dir()
    summaries = _select(out, run_ids, latest)
    if not summaries:
        raise ReportError(f"no finished runs in {out / 'runs'}: do a run first "
                          f"(ttg run, or papermill notebooks/run.ipynb ...)")
    entries: list[dict[str, Any]] = []
    for s in summaries:
        name = f"run-{s.run_id}"
        log(f"report {name}.html")
        nb_path = execute_notebook(src / "run.ipynb", executed / f"{name}.ipynb",
                                   {"render_run_id": s.run_id, "output_dir": str(out),
                                    "fail_on_unverified": False}, kernel=kernel)
        export_html(nb_path, reports / f"{name}.html", hide_code=hide_code,
                    title=f"TTG run {s.run_id}")
        entries.append({"href": f"{name}.html", "kind": "run", "summary": s})
    if milestone:
        log("report milestone.html")
        ids = ",".join(s.run_id for s in summaries) if run_ids else None
        nb_path = execute_notebook(src / "milestone.ipynb", executed / "milestone.ipynb",
                                   {"reuse_existing": True, "run_ids": ids,
                                    "repeats": milestone_repeats, "output_dir": str(out)},
                                   kernel=kernel)
        export_html(nb_path, reports / "milestone.html", hide_code=hide_code,
                    title="TTG milestone results")
        entries.insert(0, {"href": "milestone.html", "kind": "milestone",
                           "summary": None})
    index = write_index(reports, entries)
    log(f"index {index}")
    return index


def write_index(reports: Path, entries: list[dict[str, Any]]) -> Path:
    rows = []
    for e in entries:
        s: RunSummary | None = e["summary"]
        link = f"<a href='{html.escape(e['href'])}'>{html.escape(e['href'])}</a>"
        if s is None:
            rows.append(f"<tr><td>{link}</td><td colspan='6'>Milestone results: four-run "
                        f"matrix, comparison summary and key observations</td></tr>")
            continue
        verdict = ("<span class='ok'>VERIFIED</span>" if s.ok
                   else "<span class='bad'>FAILED</span>")
        fault = s.fault
        rows.append(
            f"<tr><td>{link}</td><td>{html.escape(s.started_at or '')}</td>"
            f"<td>{html.escape(s.backend or '')}</td>"
            f"<td>{html.escape(str(s.scale or ''))}</td>"
            f"<td>{'yes (' + html.escape(fault.killed_worker) + ')' if fault else 'no'}"
            f"</td><td>{s.runtime_s if s.runtime_s is not None else 'n/a'}s</td>"
            f"<td>{verdict}</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>TTG reports</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 10px;text-align:left}}th{{background:#f3f3f3}}
.ok{{color:#1a7f37;font-weight:bold}}.bad{{color:#cf222e;font-weight:bold}}</style></head>
<body><h1>TTG reports</h1>
<p>Generated {html.escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}. Every page works offline
(its charts load {PLOTLY_JS} from this directory: copy or move the directory as a whole).</p>
<table><thead><tr><th>report</th><th>date</th><th>backend</th><th>scale</th><th>fault</th>
<th>runtime</th><th>verdict</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    reports.mkdir(parents=True, exist_ok=True)
    index = reports / "index.html"
    index.write_text(page, encoding="utf-8")
    (reports / "index.json").write_text(json.dumps(
        [{"href": e["href"], "kind": e["kind"],
          "run_id": e["summary"].run_id if e["summary"] else None,
          "ok": e["summary"].ok if e["summary"] else None} for e in entries],
        indent=2) + "\n")
    return index

