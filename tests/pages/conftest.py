"""Fixtures for the browser tests of the engine's own web pages (Playwright, real Chromium).

The pages are served by real engine nodes (``make_node``); the browser is the
system ``chromium`` driven by Playwright's **async** API, so candidate
``ExamClient``s can run in the same event loop as the page.

``browser_support``  (session) checks that ``chromium`` and Playwright are
                     installed; otherwise the test is skipped, except when the
                     environment has ``CI=true``: then it fails (CI must run them).
``launch_browser``   ``async with launch_browser(**context_options) as context:``
                     a fresh headless Chromium and one browser context
                     (default viewport 1440x900), closed on exit.
``watch_page``       ``probe = watch_page(page)``: records page errors (uncaught
                     exceptions), Content-Security-Policy violations and the
                     WebSockets the page opens; ``probe.assert_clean()`` fails on
                     any error or CSP violation.
``artifacts``        the directory for screenshots, ``<repo>/test-artifacts/pages/``
                     (created; gitignored).
``shoot``            ``await shoot(page, "name.png")``: a full-page screenshot in ``artifacts``.
``expect``           Playwright's ``expect`` (polling assertions).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from testkit import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts" / "pages"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Default polling timeout of Playwright's ``expect`` in these tests (ms).
EXPECT_TIMEOUT_MS = 3000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/pages/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    if shutil.which("chromium") is None:
        return "no `chromium` executable on PATH"
    return None


@pytest.fixture(scope="session")
def browser_support() -> str:
    """The chromium executable; skip (or fail when CI=true) if the browser stack is missing."""
    why = _missing()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {why}", pytrace=False)
        pytest.skip(why)
    from playwright.async_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return shutil.which("chromium")  # type: ignore[return-value]


@pytest.fixture
def launch_browser(browser_support: str) -> Callable[..., Any]:
    """``async with launch_browser(**context_options) as context`` -> a Playwright ``BrowserContext``."""

    @contextlib.asynccontextmanager
    async def _launch(**context_options: Any) -> AsyncIterator[Any]:
        from playwright.async_api import async_playwright

        options = {"viewport": {"width": 1440, "height": 900}, **context_options}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=browser_support, headless=True, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(**options)
                context.set_default_timeout(10_000)
                try:
                    yield context
                finally:
                    await context.close()
            finally:
                await browser.close()

    return _launch


class PageProbe:
    """What a page did that a test may want to assert on (see ``watch_page``)."""

    def __init__(self, page: Any):
        self.page = page
        self.errors: list[str] = []
        self.csp: list[str] = []
        self.console: list[str] = []
        self.websockets: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._on_console)
        page.on("websocket", lambda ws: self.websockets.append(ws.url))

    def _on_console(self, msg: Any) -> None:
        text = msg.text
        self.console.append(f"{msg.type}: {text}")
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp.append(text)

    def assert_clean(self) -> None:
        assert not self.errors, f"uncaught errors in the page: {self.errors}"
        assert not self.csp, f"Content-Security-Policy violations: {self.csp}"


@pytest.fixture
def watch_page() -> Callable[[Any], PageProbe]:
    return PageProbe


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def shoot(artifacts: Path) -> Callable[..., Any]:
    async def _shoot(page: Any, name: str, *, full_page: bool = True) -> Path:
        path = artifacts / name
        await page.screenshot(path=str(path), full_page=full_page)
        return path

    return _shoot


@pytest.fixture
def expect(browser_support: str) -> Any:
    from playwright.async_api import expect as _expect

    return _expect
