"""Where runs are read and reports written: the repository root and the output directory.

Shared by the notebooks (:mod:`ttg_lib.notebook` re-exports these names) and the HTML
reports (:mod:`ttg_lib.report.html`), so neither depends on the other for them.
"""

from __future__ import annotations

import os
from pathlib import Path

OUTPUT_ENV = "TTG_NOTEBOOK_OUTPUT_DIR"


def repo_root() -> Path:
    """The checkout holding ttg_lib (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def resolve_output_dir(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """Absolute output directory: None means $TTG_NOTEBOOK_OUTPUT_DIR or ``outputs``; a
    relative path is taken from the repository root, so a notebook gives the same answer
    whether papermill runs it from the root or from inside notebooks/."""
    chosen = output_dir or os.environ.get(OUTPUT_ENV) or "outputs"
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else repo_root() / path


def record_dir(run_id: str, output_dir: str | os.PathLike[str] | None = None) -> Path:
    """A run's record directory, ``<output dir>/runs/<run_id>``."""
    return resolve_output_dir(output_dir) / "runs" / run_id
