"""Notebooks are committed without outputs, with a tagged parameters cell and kernel python3.

Strip outputs before committing with e.g.
``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"run.ipynb", "milestone.ipynb", "supervisor_demo.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean(path: Path) -> None:
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; " \
                      f"run: jupyter nbconvert --clear-output --inplace {path}"
    assert "widgets" not in nb["metadata"], f"{path.name}: saved widget state"
    assert "papermill" not in nb["metadata"], f"{path.name}: a papermill output was committed"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
