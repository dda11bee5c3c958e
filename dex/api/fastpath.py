"""The order routes from uvicorn straight to their handler.

Every state-changing order route is one call of `dex.api.forward.handle(node,
request)` and declares nothing for FastAPI to validate (dex.ledger.translate
validates the signed bytes, once, wherever they arrive). Between uvicorn and
that call FastAPI ran a dozen layers per request: its error and exception
middleware, CORS, the router's matching, dependency solving and the response
wrappers: on a follower at saturation, more of its CPU than the handler itself
(docs/BENCHMARKS.md). `FastPath` wraps the app and takes those routes
(`dex.api.trading.FORWARDED`) first: the same handler, the same error mapping
(`dex.api.errors.error_response`), the same JSON answers.

Everything else goes to FastAPI unchanged, and so does any request carrying
an `Origin` header: a browser's, which CORS (dex.api.dashboard) must answer.
The OpenAPI document still describes these routes: FastAPI keeps them.

One difference, deliberate: an unexpected exception here is answered 500
-1000 and logged once per kind (dex.api.errors.log_once), and the connection
stays open; through FastAPI, Starlette's ServerErrorMiddleware also re-raises
it, so uvicorn logs a traceback for each and closes the connection.
"""

from __future__ import annotations

from starlette.requests import Request

from dex.api import forward
from dex.api.errors import error_response
from dex.api.trading import FORWARDED


class FastPath:
    """An ASGI app: `FORWARDED` routes without an Origin header to
    forward.handle, the rest to `app` (the FastAPI app)."""

    def __init__(self, app, node) -> None:
        self.app = app
        self.node = node
        self.routes = FORWARDED
        self.served = 0  # requests taken here: dex_fast_path_requests_total
        app.state.fast_path = self

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in self.routes or _has_origin(scope["headers"]):
            await self.app(scope, receive, send)
            return
        self.served += 1
        scope["app"] = self.app  # request.app.state: the rate limiter
        request = Request(scope, receive)
        try:
            response = await forward.handle(self.node, request)
        except Exception as exc:  # noqa: BLE001 (mapped as FastAPI's handlers map it, a 500 -1000 logged at worst)
            response = error_response(request, exc)
        await response(scope, receive, send)


def _has_origin(headers) -> bool:
    for name, _ in headers:
        if name == b"origin":
            return True
    return False
