"""/docs (Swagger UI) and /redoc render in Chromium with every request to a
host other than the node blocked: their scripts and styles come from the
node itself (dex/api/docs.py), not from a CDN.

The block is Playwright's page.route: any request whose host is not the
node's loopback address is aborted and recorded, and the test fails on it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

RENDER_TIMEOUT_MS = 30_000
OPERATIONS_MIN = 20  # the API has more routes than this; a page that rendered none or a few is broken
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def block_the_internet(page) -> list[str]:
    """Abort every request that leaves loopback; returns the list of those aborted."""
    blocked: list[str] = []

    def route(r):
        url = r.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOOPBACK_HOSTS:
            blocked.append(url)
            r.abort("internetdisconnected")
        else:
            r.continue_()

    page.route("**/*", route)
    return blocked


def test_swagger_ui_and_redoc_render_offline(cluster, page):
    blocked = block_the_internet(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    base = cluster.url("n1")
    spec = page.request.get(f"{base}/openapi.json").json()
    paths = spec["paths"]
    operations = sum(1 for p in paths.values() for m in p if m in ("get", "post", "put", "delete", "patch"))
    assert operations >= OPERATIONS_MIN, operations

    page.goto(f"{base}/docs")
    # Swagger UI draws one .opblock per operation once its bundle ran and the spec loaded.
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.locator(".swagger-ui .opblock")).to_have_count(operations)
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/api/v1/order").first).to_be_visible()
    assert any(u.startswith(f"{base}/docs-assets/swagger-ui-bundle.js") for u in requested), requested

    page.goto(f"{base}/redoc")
    # ReDoc renders the API title, then an operation's section per route: take one route's summary.
    expect(page.locator(".api-info h1", has_text=spec["info"]["title"])).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    summary = paths["/api/v1/order"]["post"]["summary"]
    expect(page.locator(".api-content h2", has_text=summary).first).to_be_attached(timeout=RENDER_TIMEOUT_MS)
    assert page.locator(".api-content h2").count() >= operations
    assert any(u.startswith(f"{base}/docs-assets/redoc.standalone.js") for u in requested), requested

    assert not blocked, f"the docs pages asked for hosts off the node: {blocked}"
    assert all(urlsplit(u).hostname in LOOPBACK_HOSTS for u in requested if urlsplit(u).scheme.startswith("http")), requested
