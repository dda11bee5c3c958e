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
from starlette.exceptions import HTTPException as StarletteHTTPException

from dex.api.jsonbody import JSONBody
from dex.core.reasons import Reason
from dex.ledger.port import LedgerUnavailable, NoQuorum, NotLeader, OutcomeUnknown, Overloaded, TooLarge, Unrecordable
from dex.ledger.translate import BAD_PRECISION, ILLEGAL_CHARS, MANDATORY_PARAM, Refused

log = logging.getLogger("dex.api")

UNKNOWN = -1000
DISCONNECTED = -1001  # not executed: no leader, or it never reached one; safe to send again
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
TIMEOUT = -1007  # outcome unknown: it may have executed
OVERLOADED = -1008
SHED_MS_HEADER = "X-DEX-SHED-MS"  # on a -1008 from admission: ms the expected wait stays over budget
# ILLEGAL_CHARS -1100, MANDATORY_PARAM -1102, BAD_PRECISION -1111: from dex.ledger.translate
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
BAD_API_KEY = -2014
REJECTED_API_KEY = -2015
NOT_FOUND = -9404
PAYLOAD_TOO_LARGE = -9413
HEAD_TOO_LARGE = -9431
DISABLED = -9403


__all__ = ["error_response", "log_once", "occurrences", "BAD_PRECISION", "ILLEGAL_CHARS", "MANDATORY_PARAM", "ApiError", "Refused", "install", "unavailable"]


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


class ApiError(Refused):
    """A refusal with HTTP headers; `Refused` (the translator's) is its base,
    so routes catch both as `Refused`."""

    def __init__(self, status: int, code: int, msg: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, code, msg)
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


def unavailable(e: LedgerUnavailable | Unrecordable | TooLarge) -> ApiError:
    """The answer to a ledger port's failure (dex.ledger.port)."""
    if isinstance(e, TooLarge):  # never retryable: send fewer orders per request
        return ApiError(413, PAYLOAD_TOO_LARGE, f"Request too large for a block: {e}. Send fewer orders per batch.")
    if isinstance(e, Unrecordable):
        return ApiError(400, ILLEGAL_CHARS, f"A parameter cannot be recorded in a block ({e}).")
    if isinstance(e, NoQuorum):
        return ApiError.unavailable(DISCONNECTED, "The leader has lost its quorum; nothing can commit. Please try again.")
    if isinstance(e, Overloaded):
        refused = ApiError.unavailable(OVERLOADED, f"Server is currently overloaded: {e}. Please try again.", e.retry_after_s)
        if e.excess_s > 0:  # how long the leader stays over budget: a follower sheds that long (dex/api/channel.py)
            refused.headers[SHED_MS_HEADER] = str(max(1, round(e.excess_s * 1000)))
        return refused
    if isinstance(e, NotLeader):
        return ApiError.unavailable(DISCONNECTED, "Leadership changed before the order was proposed. Please try again.")
    assert isinstance(e, OutcomeUnknown), e
    return ApiError.unavailable(
        TIMEOUT,
        "Timeout waiting for the block to commit; execution status unknown. "
        "Retry with the same client order id: it will not create a second order.",
    )


def error_response(request: Request, exc: Exception) -> JSONBody:
    """The answer to an exception raised while handling `request`: the one
    mapping, used by FastAPI's exception handlers (install) and by the order
    routes' fast path (dex.api.fastpath)."""
    if isinstance(exc, Refused):
        return JSONBody({"code": exc.code, "msg": exc.msg}, status_code=exc.status, headers=getattr(exc, "headers", None))
    if isinstance(exc, (LedgerUnavailable, Unrecordable, TooLarge)):
        e = unavailable(exc)
        return JSONBody({"code": e.code, "msg": e.msg}, status_code=e.status, headers=e.headers)
    if isinstance(exc, RequestValidationError):
        problems = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONBody({"code": MANDATORY_PARAM, "msg": "; ".join(problems) or "invalid request"}, status_code=400)
    if isinstance(exc, StarletteHTTPException):
        code = NOT_FOUND if exc.status_code == 404 else UNKNOWN
        return JSONBody({"code": code, "msg": str(exc.detail)}, status_code=exc.status_code)
    route = request.scope.get("route")
    kind = f"unexpected {exc.__class__.__name__} on {request.method} {route.path if route else request.url.path[:64]}"
    log_once(log, kind, "%s: %s", kind, str(exc)[:200], exc_info=exc)
    return JSONBody({"code": UNKNOWN, "msg": "An unknown error occurred while processing the request."}, status_code=500)


def install(app: FastAPI) -> None:
    for kind in (Refused, LedgerUnavailable, Unrecordable, TooLarge, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, _handler)


async def _handler(request: Request, exc: Exception) -> JSONBody:
    return error_response(request, exc)
