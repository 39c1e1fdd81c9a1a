"""run.ipynb sweeping the function its own cell defines (``own_function``), through the
Python API, headless with papermill on both brokers: the function travels by value and the
Results section shows its values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import URLS, _require, require_package
from test_notebooks import KERNEL, NOTEBOOKS, _run_id_from, nb_env  # noqa: F401 (a fixture)

from ttg_lib import load_results

require_package("papermill", "pip install -e '.[notebooks]'")


def simulate(alpha: float, beta: int) -> dict:  # the notebook's own, repeated to check it
    y = math.sin(3 * alpha) * beta * math.exp(-alpha)
    return {"y": y, "peak": y > 1}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_the_notebooks_own_function_is_swept_by_value(backend: str, nb_env: Path) -> None:  # noqa: F811
    _require(URLS[backend])
    dest = nb_env / "executed" / f"own-{backend}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    import papermill  # here, not at collection (conftest.require_package)

    papermill.execute_notebook(str(NOTEBOOKS / "run.ipynb"), str(dest), kernel_name=KERNEL,
                               parameters={"backend": backend, "workers": 2,
                                           "own_function": True}, progress_bar=False)
    notebook = json.loads(dest.read_text())
    run_id = _run_id_from(notebook)
    record = nb_env / "runs" / run_id
    summary = json.loads((record / "summary.json").read_text())
    assert summary["ok"] and summary["params_verified"] == 12
    assert summary["compute"] == "__main__:simulate"
    config = json.loads((record / "config.json").read_text())
    assert len(config["compute_sha256"]) == 64 and (record / "function.pkl").exists()
    frame = load_results(run_id, nb_env)
    want = [simulate(a, b) for a in np.linspace(0, 1, 6).tolist() for b in (1, 2)]
    assert frame["value.y"].tolist() == [w["y"] for w in want]
    assert frame["value.peak"].tolist() == [w["peak"] for w in want]
    (cell,) = [c for c in notebook["cells"] if c.get("id") == "results"]
    shown = json.dumps(cell["outputs"])
    assert "Results: first 10 of 12 points" in shown and "value.y" in shown
