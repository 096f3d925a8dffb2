"""Shared headless-Chromium helper for browser tests (Python Playwright + Debian's chromium).

``playwright install`` cannot download browsers in our environments, so the tests drive
the system Chromium (``apt-get install chromium``) through Playwright's Python package.
Every request the page makes is intercepted: only the page's own ``file://`` URL (and
``data:`` URIs, which never reach the network layer) may load; everything else is
aborted and recorded, so a test can assert that a page is fully self-contained.

Usage::

    from .browser import open_page, requires_chromium

    @pytest.mark.browser
    @requires_chromium
    def test_map(tmp_path):
        with open_page(html_path) as view:
            assert view.blocked_requests == []
            assert view.console_errors == []
            n = view.page.evaluate("document.querySelectorAll('path').length")
"""

from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1200, "height": 800}
TIMEOUT_MS = 10_000

HAVE_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None

requires_chromium = pytest.mark.skipif(
    not (HAVE_PLAYWRIGHT and Path(CHROMIUM).exists()),
    reason=(
        f"needs the Python package playwright and {CHROMIUM}: the Debian package chromium is not "
        "installed (CI installs it via apt-get install chromium)"
        if HAVE_PLAYWRIGHT
        else "the Python package playwright is not installed (pip install playwright)"
    ),
)


@dataclass
class PageView:
    """A loaded page and what happened while loading and using it.

    Attributes
    ----------
    page
        The Playwright ``Page``; use ``page.evaluate``, ``page.locator`` etc.
    url
        The ``file://`` URL that was opened.
    blocked_requests
        URLs the page tried to fetch that were aborted (anything but itself and ``data:``).
    requests
        Every URL the page requested (including itself), whether routed or not: a
        request that bypassed routing would show up here but not in ``blocked_requests``.
    console_errors
        Text of console messages of type ``error``.
    page_errors
        Uncaught JavaScript exceptions.
    """

    page: Any
    url: str
    blocked_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the viewport to ``path`` (folders created) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path

    def evaluate(self, script: str, arg: Any = None) -> Any:
        """Shortcut for ``page.evaluate``."""
        return self.page.evaluate(script, arg)


@contextlib.contextmanager
def open_page(html_path: str | Path, viewport: dict[str, int] | None = None) -> Iterator[PageView]:
    """Open a local HTML file in a fresh headless Chromium and yield a :class:`PageView`.

    A throw-away profile directory is used, all requests except the file itself and
    ``data:`` URIs are aborted and recorded, and the page has fired ``load`` before
    the view is yielded. The browser is closed when the block ends.
    """
    from playwright.sync_api import sync_playwright

    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="hm-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=profile,
            executable_path=CHROMIUM,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport=viewport or VIEWPORT,
            service_workers="block",
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            view = PageView(page=page, url=url)
            _watch(context, page, view)
            page.goto(url, wait_until="load")
            yield view
        finally:
            context.close()


class BrowserSession:
    """One headless Chromium serving several pages at once (see :func:`browser_session`)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    def open(self, html_path: str | Path, viewport: dict[str, int] | None = None) -> PageView:
        """Open a local HTML file in a fresh browser context (own cache and storage), watched and
        routed like :func:`open_page`; it stays open until the session ends."""
        url = Path(html_path).resolve().as_uri()
        context = self.browser.new_context(viewport=viewport or VIEWPORT, service_workers="block")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        view = PageView(page=page, url=url)
        _watch(context, page, view)
        page.goto(url, wait_until="load")
        return view


@contextlib.contextmanager
def browser_session() -> Iterator[BrowserSession]:
    """A headless Chromium for several pages open at the same time.

    Playwright's sync API allows one running instance per thread, so tests that keep two
    pages open (e.g. module-scoped fixtures) share one browser through this session.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield BrowserSession(browser)
        finally:
            browser.close()


def _watch(context: Any, page: Any, view: PageView) -> None:
    def route(route: Any) -> None:
        request_url = route.request.url
        if request_url == view.url or request_url.startswith(("data:", "about:blank")):
            route.continue_()
        else:
            view.blocked_requests.append(request_url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page.on("request", lambda req: view.requests.append(req.url))
    page.on("console", lambda msg: view.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: view.page_errors.append(str(exc)))
