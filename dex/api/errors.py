"""Errors on the wire: `{"code": -NNNN, "msg": "..."}` with a 4xx or 503.

Codes follow Binance where Binance has one. No request input can produce a
500: validation errors are 400 -1102/-1100, unexpected failures are logged and
answered -1000 without internals.
"""

from __future__ import annotations

import logging
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dex.core.reasons import Reason

log = logging.getLogger("dex.api")

UNKNOWN = -1000
DISCONNECTED = -1001  # no leader
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
TIMEOUT = -1007  # outcome unknown
OVERLOADED = -1008
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
BAD_PRECISION = -1111
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
BAD_API_KEY = -2014
REJECTED_API_KEY = -2015
NOT_FOUND = -9404
PAYLOAD_TOO_LARGE = -9413
HEAD_TOO_LARGE = -9431
DISABLED = -9403


# How often each kind of odd event happened in this process (refused
# connections, unexpected errors by class): logged at the 1st, 10th, 100th...
# occurrence, so a flood of bad requests cannot fill the disk with log lines.
occurrences: Counter = Counter()


def log_once(logger: logging.Logger, kind: str, msg: str, *args, exc_info=None) -> None:
    """Log `msg` the first time `kind` happens, then at every power of ten,
    with the count; a traceback (exc_info) only the first time."""
    occurrences[kind] += 1
    n = occurrences[kind]
    if n == 1:
        logger.warning(msg, *args, exc_info=exc_info)
    elif n in (10, 100, 1_000, 10_000, 100_000) or n % 1_000_000 == 0:
        logger.warning(msg + " (%d times so far)", *args, n)


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers

    @classmethod
    def of(cls, reason: Reason) -> ApiError:
        if reason == Reason.REQUESTS_WINDOW_FULL:  # nothing wrong with the request: later it will fit
            return cls.unavailable(reason.code, reason.msg)
        status = 404 if reason == Reason.UNKNOWN_ORDER else 400
        return cls(status, reason.code, reason.msg)

    @classmethod
    def unavailable(cls, code: int, msg: str, retry_after_s: int = 1) -> ApiError:
        return cls(503, code, msg, headers={"Retry-After": str(retry_after_s)})


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONResponse({"code": MANDATORY_PARAM, "msg": "; ".join(problems) or "invalid request"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = NOT_FOUND if exc.status_code == 404 else UNKNOWN
        return JSONResponse({"code": code, "msg": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        kind = f"unexpected {exc.__class__.__name__} on {request.method} {request.scope.get('route').path if request.scope.get('route') else request.url.path[:64]}"
        log_once(log, kind, "%s: %s", kind, str(exc)[:200], exc_info=exc)
        return JSONResponse({"code": UNKNOWN, "msg": "An unknown error occurred while processing the request."}, status_code=500)
