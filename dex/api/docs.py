"""The API's own documentation pages, /docs (Swagger UI) and /redoc, served
with their scripts and styles from the node itself.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so offline they
are blank. The assets here come from the `fastapi-offline` package (a pinned
copy of swagger-ui-dist and redoc's standalone bundle), mounted under
ASSETS_PATH. Invariant: neither page makes a request to any host but the
node's: ReDoc's Google fonts are off, and its bundle is served with the one
CDN address it holds (the "API docs by Redocly" logo) replaced by an inline
image. tests/dashboard/test_docs_offline.py checks both pages in Chromium
with every other host blocked.

The app must be built with `docs_url=None, redoc_url=None` so that FastAPI's
CDN pages do not shadow these.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs-assets"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
REDOC_BUNDLE = "redoc.standalone.js"
REDOC_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_IMAGE_URL = "data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E"  # no request at all


@cache
def _redoc_bundle() -> bytes:
    """ReDoc's bundle without its CDN logo (read once, ~1 MB)."""
    text = (ASSETS_DIR / REDOC_BUNDLE).read_text(encoding="utf-8")
    assert text.count(REDOC_LOGO_URL) == 1, "the ReDoc bundle changed: check what it fetches"
    return text.replace(REDOC_LOGO_URL, BLANK_IMAGE_URL).encode()


def install(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to `app` (built with docs_url=None, redoc_url=None)."""
    assert app.docs_url is None and app.redoc_url is None, "FastAPI's own CDN docs pages would shadow these"
    assert (ASSETS_DIR / "swagger-ui-bundle.js").is_file(), f"no Swagger UI assets in {ASSETS_DIR}"

    @app.get(f"{ASSETS_PATH}/{REDOC_BUNDLE}", include_in_schema=False)
    async def redoc_bundle() -> Response:  # registered before the mount, so it wins over the file
        return Response(_redoc_bundle(), media_type="text/javascript")

    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_path = app.openapi_url
    oauth2_redirect_path = app.swagger_ui_oauth2_redirect_url
    assert openapi_path and oauth2_redirect_path

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_path}",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_path, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/{REDOC_BUNDLE}",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,  # a font request to Google would fail offline and slow the page
        )
