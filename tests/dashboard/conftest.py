"""Fixtures for the dashboard's browser tests.

The `cluster` fixture and the node-log checks come from tests/cluster (a
fresh four-node cluster of real processes per test). `browser` is Debian's
headless Chromium driven by Playwright (never a downloaded browser); without
/usr/bin/chromium, or without built assets, every test here skips and says
why. `page` collects console errors and uncaught exceptions: a test fails on
any it did not expect.

Screenshots go to tmp_path; with DEX_SCREENSHOT_DIR=docs/img they replace
the README's images.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dex.api.dashboard import STATIC_DIR
from tests.cluster.conftest import (  # noqa: F401  (fixtures and hooks, re-exported for this directory)
    cluster,
    cluster_config,
    pytest_runtest_call,
    pytest_runtest_makereport,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1480, "height": 900}
SCREENSHOT_DIR_ENV = "DEX_SCREENSHOT_DIR"


@pytest.fixture(scope="module")
def browser():
    """One Chromium per module: Playwright's sync API keeps an event loop
    running while it is open, and a test of another module that runs in the
    same process (pytest-xdist) may call asyncio.run."""
    if not CHROMIUM.exists():
        pytest.skip(f"*** NO BROWSER: {CHROMIUM} is missing, the dashboard's browser tests do not run (tests/services.sh installs Debian's chromium as root) ***")
    if not (STATIC_DIR / "index.html").exists():
        pytest.skip(f"*** NO DASHBOARD ASSETS in {STATIC_DIR}: run `make assets` (needs npm); the browser tests do not run ***")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        """Expect errors matching `pattern` from here on (e.g. a killed node's refused connections)."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message) -> None:
        if message.type == "error":
            self.add(f"console: {message.text} ({message.location.get('url', '')})")

    def add(self, text: str) -> None:
        if not any(p.search(text) for p in self.allowed):
            self.errors.append(text)


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, console: Console) -> Iterator:
    context = browser.new_context(viewport=VIEWPORT)
    p = context.new_page()
    p.on("console", console.on_console)
    p.on("pageerror", lambda e: console.add(f"uncaught: {e}"))
    p.set_default_timeout(30_000)
    try:
        yield p
    finally:
        context.close()
    assert not console.errors, "the page logged errors:\n" + "\n".join(console.errors)


@pytest.fixture
def screenshot(tmp_path: Path):
    """screenshot(page, "market"): to tmp_path, or to $DEX_SCREENSHOT_DIR when set."""
    directory = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000, f"{path} is suspiciously small"
        return path

    return take
