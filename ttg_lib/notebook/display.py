"""Showing things in a notebook: plotly setup, static figures with offline plotly.js,
HTML, and plain text outside IPython."""

from __future__ import annotations

import html
import uuid
from typing import Any


def setup(renderer: str = "plotly_mimetype+notebook") -> None:
    """Plotly defaults for notebooks: a renderer nbconvert keeps (not plain plotly_mimetype)."""
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


_plotlyjs_sent = False


def figure_bundle(fig: Any, include_plotlyjs: bool | None = None) -> dict[str, Any]:
    """A display bundle JupyterLab draws with its plotly renderer and nbconvert draws from
    the text/html part: plotly.js inline (first figure of the kernel only), no CDN."""
    global _plotlyjs_sent
    import plotly.io as pio

    if include_plotlyjs is None:
        include_plotlyjs = not _plotlyjs_sent
    _plotlyjs_sent = _plotlyjs_sent or include_plotlyjs
    div = pio.to_html(fig, include_plotlyjs=include_plotlyjs, include_mathjax=False,
                      full_html=False, div_id=f"ttg-{uuid.uuid4().hex[:10]}",
                      default_width="100%", default_height=fig.layout.height or 560,
                      validate=False, config={"displaylogo": False})
    return {"application/vnd.plotly.v1+json": fig.to_plotly_json(), "text/html": div,
            "text/plain": f"<plotly figure: {fig.layout.title.text or 'chart'}>"}


def show(fig: Any) -> None:
    """Display a static figure (see :func:`figure_bundle`)."""
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
