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
    """Every console error and uncaught exception of a page.

    A 503 is the API asking to be asked again (Retry-After), and the page
    does (web/src/js/conn.js): Chromium still logs each one as "Failed to
    load resource". Such a line is an error only when no later request to the
    same URL succeeded, i.e. the retry never made it; either way the
    refusal's body is kept, so a failure says which refusal it was."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.answers: list[list] = []  # [url, status, a 5xx's body] of every response, in order
        self.refused: list[str] = []  # URLs a console line says answered 503

    def allow(self, pattern: str) -> None:
        """Expect errors matching `pattern` from here on (e.g. a killed node's refused connections)."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message) -> None:
        if message.type == "error":
            self.add(f"console: {message.text} ({message.location.get('url', '')})")

    def on_response(self, response) -> None:
        # Recorded before the body is read: reading it lets Playwright
        # dispatch later responses meanwhile, which must come after this one.
        entry = [response.url, response.status, ""]
        self.answers.append(entry)
        if response.status >= 500:
            try:
                entry[2] = f"{response.text()[:300]} (Retry-After: {response.headers.get('retry-after')})"
            except Exception as e:  # the page went away first
                entry[2] = f"(body unreadable: {type(e).__name__})"

    def add(self, text: str) -> None:
        if any(p.search(text) for p in self.allowed):
            return
        retried = UNAVAILABLE.search(text)
        if retried:
            self.refused.append(retried.group(1))
        else:
            self.errors.append(text)

    def unanswered(self) -> list[str]:
        """Every 503 with no later success at its URL, with the refusals' bodies."""
        out = []
        for url in dict.fromkeys(self.refused):
            last = max((i for i, (u, status, _) in enumerate(self.answers) if u == url and status == 503), default=-1)
            if not any(u == url and status < 400 for u, status, _ in self.answers[last + 1 :]):
                bodies = [body for u, status, body in self.answers if u == url and status == 503]
                out.append(f"503 at {url}, never retried with success: {bodies}")
        return out


# Chromium's line for a 503 answer: "... status of 503 (Service Unavailable) (URL)".
UNAVAILABLE = re.compile(r"Failed to load resource: the server responded with a status of 503 \(Service Unavailable\) \((\S+)\)")


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, console: Console) -> Iterator:
    context = browser.new_context(viewport=VIEWPORT)
    p = context.new_page()
    p.on("console", console.on_console)
    p.on("pageerror", lambda e: console.add(f"uncaught: {e}"))
    p.on("response", console.on_response)
    p.set_default_timeout(30_000)
    try:
        yield p
    finally:
        context.close()
    errors = console.errors + console.unanswered()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


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
