"""Request dependencies: the node, and signed-request verification."""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, Request
from starlette.datastructures import QueryParams

from dex.api.errors import (
    BAD_API_KEY,
    INVALID_SIGNATURE,
    INVALID_TIMESTAMP,
    MANDATORY_PARAM,
    ApiError,
)
from dex.api.execute import Call
from dex.auth import (
    RECV_WINDOW_MS_DEFAULT,
    RECV_WINDOW_MS_MAX,
    account_id,
    signed_payload,
    verify,
)
from dex.core.reasons import Reason
from dex.ledger import translate
from dex.ledger.codec import Auth

if TYPE_CHECKING:
    from dex.api.channel import ForwardChannel
    from dex.api.peers import Peers
    from dex.api.history import History
    from dex.config import ClusterConfig
    from dex.ledger.port import LedgerPort

RECV_WINDOW_HEADER = "x-recv-window"  # refused: an unsigned header must not stretch a signature's life

class ApiNode(Protocol):
    """What the routes use of a node (dex/node.py wires it): the replicated
    state only through `port`, never the replica itself."""

    cfg: ClusterConfig
    node_id: str
    port: LedgerPort  # submit, wait, typed reads (dex/ledger/port.py)
    history: History  # recent trades and orders, fed by blocks
    channel: ForwardChannel  # a follower's channel to the leader (dex/api/channel.py)
    peers: Peers  # the peers' status (dex/api/peers.py)
    store: Any  # the trade store's writer, or None
    trade_counter: Any  # dex.api.metrics.TradeCounter


async def get_node(request: Request) -> ApiNode:
    # async: FastAPI runs a plain `def` dependency on a worker thread, a
    # thread handoff per request for an attribute read (5% of a leader's CPU
    # per order in a profile, docs/BENCHMARKS.md).
    return request.app.state.node


NodeDep = Annotated[ApiNode, Depends(get_node)]


@dataclass(frozen=True, slots=True)
class Signed:
    account: int
    auth: Auth  # travels inside the block with the commands it authorized


def parse_api_key(key: str) -> bytes:
    """The Ed25519 public key an API key (hex) names, or the -2014 error."""
    try:
        public_key = bytes.fromhex(key)
        if len(public_key) != 32:
            raise ValueError
    except ValueError:
        raise ApiError(401, BAD_API_KEY, "API-key format invalid.") from None
    return public_key


def _ascii_digits(text: str) -> bool:
    """0-9 only: str.isdigit() also passes digits such as '²' that int() refuses."""
    return text.isascii() and text.isdigit()


def check_timestamp(timestamp: str, window: str | None) -> int:
    """The request's timestamp (ms) if it is inside its recvWindow (ms, as
    sent; None for the default) of this node's clock, else -1021 / -1102.
    The window must be signed (a query parameter, or a field of a signed
    LOGIN): an unsigned one would let anyone stretch a captured request's
    life."""
    if not _ascii_digits(timestamp) or len(timestamp) > 15:
        raise ApiError(400, INVALID_TIMESTAMP, "Timestamp for this request is not valid.")
    timestamp_ms = int(timestamp)
    window = window or str(RECV_WINDOW_MS_DEFAULT)
    if not _ascii_digits(window) or len(window) > 6 or not 0 < int(window) <= RECV_WINDOW_MS_MAX:
        raise ApiError(400, MANDATORY_PARAM, f"recvWindow must be 1..{RECV_WINDOW_MS_MAX} ms.")
    now_ms = time.time_ns() // 1_000_000
    if timestamp_ms > now_ms + 1000 or now_ms - timestamp_ms > int(window):
        raise ApiError(400, INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow.")
    return timestamp_ms


def decode_signature(signature_b64: str) -> bytes:
    """The 64 raw bytes of a base64 signature header, or -1022."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != 64:
        raise ApiError(401, INVALID_SIGNATURE, "Signature for this request is not valid.")
    return signature


def check_signature(public_key: bytes, signature_b64: str, payload: bytes) -> bytes:
    """The signature (raw) if it signs `payload` with `public_key`, else -1022."""
    signature = decode_signature(signature_b64)
    if not verify(public_key, signature, payload):
        raise ApiError(401, INVALID_SIGNATURE, "Signature for this request is not valid.")
    return signature


async def verify_request(request: Request) -> Signed:
    """Verify X-API-KEY / X-TIMESTAMP / X-SIGNATURE over the request as sent
    (verify_call), charging the account's rate limit."""
    return verify_call(request.app.state.node, await call_of(request), limiter=request.app.state.rate_limiter)


async def call_of(request: Request) -> Call:
    """The signed request as received (the bytes its signature covers), or
    -1102 when a signature header is missing."""
    h = request.headers
    key, ts, sig = h.get("x-api-key"), h.get("x-timestamp"), h.get("x-signature")
    if not key or not ts or not sig:
        raise ApiError(401, MANDATORY_PARAM, "Signed endpoint: X-API-KEY, X-TIMESTAMP and X-SIGNATURE are required.")
    if RECV_WINDOW_HEADER in h:
        raise ApiError(400, MANDATORY_PARAM, "X-RECV-WINDOW is not signed and is not accepted: send recvWindow as a query parameter (it is signed).")
    path, query = signed_target(request)
    return Call(request.method, path, query, await request.body(), key, ts, sig)


# A path and a query string in which Starlette's URL (what a signature has
# always been checked against) changes nothing: printable ASCII, without the
# characters it escapes in a path (?, #, \) or that end a query (#), and a
# path that starts with one slash. Every request the client library sends.
_PLAIN_PATH = re.compile(r"/(?!/)[!-\"$->@-\[\]-~]*")
_PLAIN_QUERY = re.compile(rb"[!-\"$-~]*")


def signed_target(request: Request) -> tuple[str, str]:
    """(path, query) of the request as its signature covers them: the same
    strings as `request.url.path` and `request.url.query`, which parse a URL
    rebuilt from the request (~5.6 us) and which are read only when the raw
    ones hold anything that parsing could change (tests/api/
    test_signed_target.py compares the two on generated requests)."""
    scope = request.scope
    path, query = scope["path"], scope.get("query_string", b"")
    if _PLAIN_PATH.fullmatch(path) and _PLAIN_QUERY.fullmatch(query):
        return path, query.decode("ascii")
    url = request.url
    return url.path, url.query


def recv_window_param(query: str) -> str | None:
    """`QueryParams(query).get("recvWindow")`, without parsing a query that
    cannot hold the parameter: one with neither its name nor a "%" (which
    could spell the name encoded). Parsing cost ~5 µs a signed query (a
    cancel's; timeit), on the follower and again on the leader."""
    if not query or ("recvWindow" not in query and "%" not in query):
        return None
    return QueryParams(query).get("recvWindow")


def verify_call(node, call: Call, *, limiter=None, peer: bool = False) -> Signed:
    """Verify a signed request: the API key, the timestamp inside its signed
    recvWindow, the Ed25519 signature over the request as sent, and that
    this cluster has not executed it already (the replicated replay guard,
    dex/ledger/replay.py: refused here, before the rate limit is charged; the
    block's own check catches a replay that races its original). Then charge
    `limiter` (the node's per-account rate limit), if given.

    `peer`: the request came through the forward channel (dex/api/channel.py)
    from a follower that verified the signature and charged the rate limit
    where the user sent it: one Ed25519 check per request, the timestamp and
    the replay guard checked again here."""
    public_key = parse_api_key(call.api_key)
    timestamp_ms = check_timestamp(call.timestamp, recv_window_param(call.query))
    payload = signed_payload(timestamp_ms, call.method, call.path, call.query, call.body)
    if peer or not node.cfg.verify_signatures:  # verify_signatures: false only in loopback benchmarks
        signature = decode_signature(call.signature)
    else:
        signature = check_signature(public_key, call.signature, payload)
    if node.port.request_used(public_key, payload):
        raise ApiError.of(Reason.REPLAYED)
    account = account_id(public_key)
    if limiter is not None:
        limiter.charge(account)
    return Signed(account=account, auth=Auth(public_key=public_key, timestamp_ms=timestamp_ms, signature=signature, payload=payload))


SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY", "description": "The account's Ed25519 public key, hex (64 characters)."},
    "Timestamp": {"type": "apiKey", "in": "header", "name": "X-TIMESTAMP", "description": "Milliseconds since the epoch; within recvWindow (a signed query parameter, default 5,000 ms) of the node's clock."},
    "Signature": {
        "type": "apiKey", "in": "header", "name": "X-SIGNATURE",
        "description": "Base64 Ed25519 signature over timestamp + METHOD + path + ('?' + query if any) + body, exactly as sent. "
        "Each signed request executes at most once (-9006 on reuse): sign every request afresh.",
    },
}


def document_signed_routes(app) -> None:
    """Declare the signature scheme in the OpenAPI document and require it on
    every signed route (those whose summary says "(signed")."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if "(signed" in (operation.get("summary") or ""):
                    operation["security"] = [{name: [] for name in SECURITY_SCHEMES}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


SignedDep = Annotated[Signed, Depends(verify_request)]


def market_of(node, symbol: str):
    """The market `symbol` names, or the -1121 error."""
    return translate.market_of(node.cfg.markets, symbol)
