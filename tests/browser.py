"""Chromium for the browser tests: Debian's ``/usr/bin/chromium`` (``TTG_CHROMIUM`` names
another) driven by Playwright, whose own browser download is never used.

The tests keep their assertions; the launch, the page, its network cut-off, the screenshot
on failure and the skip when Chromium is absent are here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS

ABSENT = (f"{CHROMIUM} is absent (scripts/setup.sh --browser installs Debian's chromium; "
          "TTG_CHROMIUM names another)")

# the marks of a test that runs a notebook in JupyterLab in Chromium
LAB_MARKS = [pytest.mark.slow, pytest.mark.timeout(900),
             pytest.mark.skipif(not CHROMIUM.exists(), reason=ABSENT)]


def require_chromium() -> None:
    """Skip the calling test where there is no Chromium to drive."""
    if not CHROMIUM.exists():
        pytest.skip(ABSENT)


def block_network(page: Any) -> list[str]:
    """Abort every http(s) request the page makes; the returned list collects their URLs
    (an offline page must leave it empty)."""
    requests: list[str] = []
    page.route("http*://**", lambda route: (requests.append(route.request.url),
                                            route.abort()))
    return requests


@contextmanager
def chromium_page(width: int = 1400, height: int = 1600,
                  failure_shot: Path | None = None) -> Iterator[Any]:
    """A fresh Chromium page of this viewport, the browser closed after; a test that fails
    inside saves the page to ``failure_shot`` first (when given)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            try:
                yield page
            except Exception:
                if failure_shot is not None:
                    page.screenshot(path=str(failure_shot), full_page=True)
                raise
        finally:
            browser.close()


@contextmanager
def lab_page(lab: dict, screenshot: Path) -> Iterator[Any]:
    """A page on the notebook of a :func:`labserver.jupyterlab`, its cells drawn; a failure
    is saved beside ``screenshot`` as ``<name>-failure.png``."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    failure = screenshot.with_name(f"{screenshot.stem}-failure{screenshot.suffix}")
    with chromium_page(failure_shot=failure) as page:
        page.set_default_timeout(180_000)
        page.goto(lab["url"], wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=240_000)
        yield page


def readings(page: Any, read: Callable[[], Any], times: int = 6,
             every_ms: int = 1500) -> list[Any]:
    """``read()`` now and ``times`` more times, ``every_ms`` apart: a live chart's growth
    (the page is polled, as a person watches it; there is no event to wait on)."""
    seen = [read()]
    for _ in range(times):
        page.wait_for_timeout(every_ms)
        seen.append(read())
    return seen
