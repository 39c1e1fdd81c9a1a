"""The package's shape, checked on the source: small modules and no two-file import circles.

An import circle between two files means neither can be read (or tested) without the other;
the usual cause is a ``__main__`` block reaching up to the CLI layer (use a ``__main__.py``
module) or an error class taken from a module that imports the importer (use ``errors.py``).
Every import counts: top-level, inside a function, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import functools

from test_layers import PACKAGE, imports, module_name, sources

MAX_LINES = 400


@functools.cache  # parsed once for the tests below
def import_graph() -> dict[str, set[str]]:
    """module -> the ttg_lib modules it imports. ``from pkg import name`` is an arrow to
    ``pkg`` (its ``__init__`` runs first), and to ``pkg.name`` too when that is a module."""
    modules = {module_name(path): path for path in sources()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        arrows = set()
        for target, imported in imports(path):
            if target in modules:
                arrows.add(target)
            if imported and f"{target}.{imported}" in modules:
                arrows.add(f"{target}.{imported}")
        graph[name] = arrows - {name}
    return graph


def two_file_circles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, arrows in graph.items() for b in arrows
                  if a < b and a in graph.get(b, ()))


def test_the_circle_finder_sees_function_level_and_type_checking_imports():
    """The finder itself can fail: it sees a lazy import and a TYPE_CHECKING one."""
    assert two_file_circles({"ttg_lib.a": {"ttg_lib.b"}, "ttg_lib.b": {"ttg_lib.a"},
                             "ttg_lib.c": {"ttg_lib.a"}}) == [("ttg_lib.a", "ttg_lib.b")]
    graph = import_graph()
    assert "ttg_lib.cluster.podsettings" in graph["ttg_lib.configcheck"]  # inside check()
    assert "ttg_lib.config" in graph["ttg_lib.cluster.kubernetes.plan"]  # TYPE_CHECKING
    assert {"ttg_lib", "ttg_lib.childproc"} <= graph["ttg_lib.worker"]  # from .. import childproc


def test_no_two_file_import_circles():
    graph = import_graph()
    assert graph["ttg_lib.run"], "the graph is empty: the scan is broken"
    assert two_file_circles(graph) == []


def test_every_module_is_under_400_lines():
    assert len(sources()) > 50, f"no sources under {PACKAGE}"
    long = {module_name(path): n for path in sources()
            if (n := len(path.read_text().splitlines())) >= MAX_LINES}
    assert long == {}
