"""The package's layers, checked on the source: who may import whom.

* ``report/`` sits below ``notebook/``: the notebooks build on the reports, never the reverse;
* ``cleanup.py`` and ``cluster/kubernetes/cleanup.py`` do not import each other (both fill a
  :class:`~ttg_lib.cleanup_report.CleanupReport`);
* no module imports another module's underscore-private name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ttg_lib

PACKAGE = Path(ttg_lib.__file__).parent

# Owned by the Kubernetes issue (cluster/kubernetes/ is being reworked there); remove each
# entry when pods.py gives the name a public spelling.
PRIVATE_IMPORT_EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[str, str | None]]:
    """(absolute module, imported name or None) for every import in the file, lazy or not."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1 if node.level else 0):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level \
                else node.module or ""
            for alias in node.names:
                yield target, alias.name


def sources(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def test_report_never_imports_notebook():
    bad = [(module_name(p), target, name) for p in sources("report")
           for target, name in imports(p)
           if target.startswith("ttg_lib.notebook")
           or (target == "ttg_lib" and name == "notebook")]
    assert not bad


def test_cleanup_modules_do_not_import_each_other():
    """ttg_lib.cleanup calls the Kubernetes cleanup; the Kubernetes side needs only the report."""
    back = [(target, name) for target, name in imports(PACKAGE / "cluster/kubernetes/cleanup.py")
            if target == "ttg_lib.cleanup" or (target == "ttg_lib" and name == "cleanup")]
    assert not back


def test_no_private_names_imported_across_modules():
    bad = {(module_name(p), name) for p in sources() for target, name in imports(p)
           if name and name.startswith("_") and not name.startswith("__")
           and target.startswith("ttg_lib")}
    assert bad - PRIVATE_IMPORT_EXCEPTIONS == set()


def test_notebook_reexports_every_public_name():
    from ttg_lib import notebook

    missing = [name for name in notebook.__all__ if not hasattr(notebook, name)]
    assert not missing
    assert {"LiveChart", "QUEUE_NAMES", "throughput", "repo_root", "resolve_output_dir",
            "record_dir", "OUTPUT_ENV"} <= set(notebook.__all__)
