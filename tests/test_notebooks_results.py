"""run.ipynb's Results section, headless: papermill runs a named space on both backends (once
from the command line with ``-p space '<JSON>'``, as a user would), and ``ttg report`` carries
the section into the HTML pages. Real brokers, tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import URLS, _require, require_package
from test_notebooks import KERNEL, NOTEBOOKS, _run_id_from, nb_env  # noqa: F401 (a fixture)

from ttg_lib import load_results
from ttg_lib.examples import train
from ttg_lib.space import load_space

require_package("papermill", "pip install -e '.[notebooks]'")

SPACE = {"axes": {"lr": {"logspace": [-3, -1, 4]}, "depth": [2, 4, 6]}}  # a 4 × 3 grid
TRAIN = "ttg_lib.examples:train"
PLOTLY = "application/vnd.plotly.v1+json"


def _execute(dest: Path, parameters: dict, cli: bool) -> None:
    """papermill from its command line (parameters as the text a shell passes) or its API."""
    if not cli:
        import papermill  # here, not at collection (conftest.require_package)

        papermill.execute_notebook(str(NOTEBOOKS / "run.ipynb"), str(dest),
                                   kernel_name=KERNEL, parameters=parameters,
                                   progress_bar=False)
        return
    args = [a for name, value in parameters.items()
            for a in ("-p", name, value if isinstance(value, str) else json.dumps(value))]
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / "run.ipynb"),
                           str(dest), "-k", KERNEL, "--no-progress-bar", *args],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


# name -> (backend, parameters beyond backend and workers, papermill's command line?)
CASES = {
    "redis": ("redis", {"space": json.dumps(SPACE), "compute": TRAIN}, True),
    "rabbitmq": ("rabbitmq", {"space": SPACE, "compute": TRAIN}, False),
    # x = 13 fails, alone: its chunk mates (10..14) have their values
    "redis-failing": ("redis", {"space": json.dumps({"axes": {"x": {"range": [10, 20]}}}),
                                "compute": "ttg_lib.examples:fragile",
                                "fail_on_unverified": False}, False),
}


@pytest.fixture(scope="module")
def executed(nb_env: Path):  # noqa: F811 (the fixture imported above)
    done: dict[str, tuple[dict, dict]] = {}

    def get(case: str) -> tuple[dict, dict]:
        if case not in done:
            backend, extra, cli = CASES[case]
            _require(URLS[backend])
            dest = nb_env / "executed" / f"run-{case}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            _execute(dest, {"backend": backend, "workers": 2, **extra}, cli)
            notebook = json.loads(dest.read_text())
            run_id = _run_id_from(notebook)
            summary = json.loads((nb_env / "runs" / run_id / "summary.json").read_text())
            done[case] = (notebook, summary)
        return done[case]

    return get


def _results_outputs(notebook: dict) -> list[dict]:
    (cell,) = [c for c in notebook["cells"] if c.get("id") == "results"]
    return [o.get("data", {}) for o in cell["outputs"]]


def _array(value) -> list:
    """A figure's array as saved: a list, or numbers as plotly's typed array (base64)."""
    if isinstance(value, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).tolist()
    return list(value)


def _html(data: dict) -> str:
    text = data.get("text/html", "")
    return text if isinstance(text, str) else "".join(text)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["redis", "rabbitmq"])
def test_results_section_of_a_space_run(case: str, executed) -> None:
    notebook, s = executed(case)
    assert s["ok"], s["problems"]
    assert s["backend"] == CASES[case][0] and s["total_params"] == s["results_rows"] == 12
    table, chart, note = _results_outputs(notebook)
    markup = _html(table)
    assert "Results: first 10 of 12 points" in markup
    for column in ("param_id", "lr", "depth", "value.loss", "value.accuracy", "worker"):
        assert f"<th>{column}</th>" in markup
    assert "<th>error</th>" not in markup  # no point failed

    (heat,) = chart[PLOTLY]["data"]  # a heatmap of loss over lr × depth, one cell a point
    assert heat["type"] == "heatmap" and len(heat["x"]) == 4 and heat["y"] == ["2", "4", "6"]
    space = load_space(SPACE)
    points = [space.point(i) for i in range(space.size)]
    lrs = sorted({p["lr"] for p in points})
    assert heat["z"] == [[train(lr, depth)["loss"] for lr in lrs] for depth in (2, 4, 6)]
    assert "text/html" not in chart  # plotly's JSON alone: reports draw it (one plotly.js)
    assert "12 of 12 points drawn" in _html(note)

    frame = load_results(s["record_dir"])
    assert frame[["lr", "depth"]].to_dict("records") == points


@pytest.mark.slow
def test_failed_points_are_listed_and_marked_on_the_chart(executed) -> None:
    notebook, s = executed("redis-failing")
    assert not s["ok"] and s["results_rows"] == 10
    table, chart, note = _results_outputs(notebook)
    markup = _html(table)
    assert "<th>error</th>" in markup and "Failed points: 1 of 10" in markup
    assert "Failed points by error type" in markup and "<td>ValueError</td>" in markup
    assert "13 is unlucky" in markup
    line, failed = chart[PLOTLY]["data"]  # one axis: the value against x, the failed point x
    assert _array(line["x"]) == [10, 11, 12, 14, 15, 16, 17, 18, 19]
    assert _array(line["y"]) == [x * x for x in _array(line["x"])]
    assert failed["name"] == "failed" and _array(failed["x"]) == [13]
    assert failed["marker"]["symbol"] == "x" and "13 is unlucky" in failed["text"][0]
    assert "9 of 10 points drawn; 1 failed point marked ×" in _html(note)


@pytest.mark.slow
def test_ttg_report_pages_carry_the_results_section(executed, nb_env: Path) -> None:  # noqa: F811
    from click.testing import CliRunner

    from ttg_lib.commands.report import report as report_command

    summaries = {case: executed(case)[1] for case in CASES}
    result = CliRunner().invoke(report_command, ["--output-dir", str(nb_env), "--hide-code"])
    assert result.exit_code == 0, result.output
    for case in ("redis", "rabbitmq"):
        page = (nb_env / "reports" / f"run-{summaries[case]['run_id']}.html").read_text()
        assert "Results: first 10 of 12 points" in page and "<th>value.loss</th>" in page
        assert '"type":"heatmap"' in page and "12 of 12 points drawn" in page
    failing = (nb_env / "reports" / f"run-{summaries['redis-failing']['run_id']}.html")
    assert "13 is unlucky" in failing.read_text()
