"""Showing things in a notebook: plotly setup, static figures in plotly's mimetype form,
HTML, and plain text outside IPython."""

from __future__ import annotations

import html
from typing import Any, TypeVar

from ..report.html import PLOTLY_MIME

PLOTLY_CONFIG = {"displaylogo": False}
# an anywidget module that draws nothing: what a closed live chart keeps (see release_widget)
EMPTY_ESM = "export default { render() {} };"


def setup(renderer: str = "plotly_mimetype") -> None:
    """Plotly defaults for notebooks: figures saved as plotly JSON only (no copy of plotly.js
    in the notebook); JupyterLab and VS Code draw them, and ``ttg report`` turns them into
    HTML that loads one shared plotly.min.js (:mod:`ttg_lib.report.html`)."""
    import plotly.io as pio

    pio.renderers.default = renderer
    pio.templates.default = "plotly_white"


def ipython_display(obj: Any, **kwargs: Any) -> Any:
    """IPython's display(), imported only when something is shown."""
    from IPython.display import display

    return display(obj, **kwargs)


def in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def figure_bundle(fig: Any) -> dict[str, Any]:
    """A display bundle in plotly's mimetype form: the figure as JSON (JupyterLab, VS Code and
    ``ttg report`` draw it) and a text line. No plotly.js: a saved notebook stays small and an
    HTML report loads the one copy shared by every page."""
    import json

    import plotly.io as pio

    figure = json.loads(pio.to_json(fig, validate=False))
    figure["config"] = dict(PLOTLY_CONFIG)
    return {PLOTLY_MIME: figure,
            "text/plain": f"<plotly figure: {fig.layout.title.text or 'chart'}>"}


def release_widget(widget: Any) -> None:
    """Close a live widget whose output has been replaced by a static figure.

    A saved notebook keeps the last state of every widget, closed or not (nbclient and
    papermill do, and JupyterLab when it saves widget state), and an anywidget's state holds
    its front-end code: about 5 MB for plotly's FigureWidget, a bundle of plotly.js. That code
    is swapped for an empty module first, so the closed chart costs a saved notebook a few kB.
    """
    if widget.has_trait("_esm"):
        widget._esm = EMPTY_ESM
    widget.close()


def show(fig: Any) -> None:
    """Display a static figure (see :func:`figure_bundle`); ``fig.show()`` outside IPython."""
    if not in_ipython():
        fig.show()
        return
    ipython_display(figure_bundle(fig), raw=True)


def show_html(markup: str) -> None:
    """Display HTML (tables, verdicts); plain text outside IPython."""
    if not in_ipython():
        print(strip_tags(markup))
        return
    ipython_display({"text/html": markup, "text/plain": strip_tags(markup)}, raw=True)


def html_handle(markup: str) -> Any:
    """An updatable HTML output (status lines); None outside IPython."""
    if not in_ipython():
        return None
    return ipython_display({"text/html": markup, "text/plain": strip_tags(markup)}, raw=True,
                           display_id=True)


def strip_tags(markup: str) -> str:
    """The text of an HTML snippet, for plain-text outputs."""
    import re

    markup = re.sub(r"<style.*?</style>", "", markup, flags=re.S)
    markup = re.sub(r"</(tr|p|li|h\d|caption)>", "\n", markup)
    markup = re.sub(r"</t[dh]>", "  ", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).strip()


Shown = TypeVar("Shown", bound="LiveFigure")


class LiveFigure:
    """A chart shown once and updated in place while a run goes: a plotly FigureWidget where
    the widget stack is installed (else a static figure through its display handle), and in
    the end the static figure in its place (what a saved notebook or an HTML export keeps)."""

    figure: Any = None
    widget: Any = None
    handle: Any = None

    def _open(self, figure: Any, live: bool) -> None:
        self.figure, self.widget, self.handle = figure, None, None
        if live:
            try:
                import plotly.graph_objects as go

                self.widget = go.FigureWidget(figure)
            except (ImportError, ValueError):  # no anywidget/ipywidgets: static only
                self.widget = None

    def display(self: Shown) -> Shown:
        if in_ipython():
            target = self.widget if self.widget is not None else figure_bundle(self.figure)
            self.handle = ipython_display(target, display_id=True, raw=self.widget is None)
        return self

    def _settle(self, fig: Any) -> Any:
        """``fig`` in the live chart's place; the widget released."""
        if self.handle is not None:
            self.handle.update(figure_bundle(fig), raw=True)
        elif in_ipython():
            show(fig)
        if self.widget is not None:
            release_widget(self.widget)
        return fig
