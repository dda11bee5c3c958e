"""Request dependencies: the node, and signed-request verification."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from dex.api.errors import (
    BAD_API_KEY,
    INVALID_SIGNATURE,
    INVALID_TIMESTAMP,
    MANDATORY_PARAM,
    ApiError,
)
from dex.auth import (
    RECV_WINDOW_MS_DEFAULT,
    RECV_WINDOW_MS_MAX,
    account_id,
    signed_payload,
    verify,
)
from dex.core.reasons import Reason
from dex.ledger.codec import Auth


def get_node(request: Request):
    return request.app.state.node


NodeDep = Annotated[object, Depends(get_node)]


@dataclass(frozen=True, slots=True)
class Signed:
    account: int
    auth: Auth  # travels inside the block with the commands it authorized


async def verify_request(request: Request) -> Signed:
    """Verify X-API-KEY / X-TIMESTAMP / X-SIGNATURE over the request as sent.

    Routes that may forward to the leader call this only where the request
    executes, so a forwarded request is verified once, by the leader."""
    h = request.headers
    key, ts, sig = h.get("x-api-key"), h.get("x-timestamp"), h.get("x-signature")
    if not key or not ts or not sig:
        raise ApiError(401, MANDATORY_PARAM, "Signed endpoint: X-API-KEY, X-TIMESTAMP and X-SIGNATURE are required.")
    try:
        public_key = bytes.fromhex(key)
        if len(public_key) != 32:
            raise ValueError
    except ValueError:
        raise ApiError(401, BAD_API_KEY, "API-key format invalid.") from None
    if not ts.isdigit() or len(ts) > 15:
        raise ApiError(400, INVALID_TIMESTAMP, "Timestamp for this request is not valid.")
    timestamp_ms = int(ts)
    window_text = request.query_params.get("recvWindow") or h.get("x-recv-window") or str(RECV_WINDOW_MS_DEFAULT)
    if not window_text.isdigit() or not 0 < int(window_text) <= RECV_WINDOW_MS_MAX:
        raise ApiError(400, MANDATORY_PARAM, f"recvWindow must be 1..{RECV_WINDOW_MS_MAX} ms.")
    now_ms = time.time_ns() // 1_000_000
    if timestamp_ms > now_ms + 1000 or now_ms - timestamp_ms > int(window_text):
        raise ApiError(400, INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow.")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    body = await request.body()
    payload = signed_payload(timestamp_ms, request.method, request.url.path, request.url.query, body)
    checked = request.app.state.node.cfg.verify_signatures  # false only in loopback benchmarks
    if len(signature) != 64 or (checked and not verify(public_key, signature, payload)):
        raise ApiError(401, INVALID_SIGNATURE, "Signature for this request is not valid.")
    return Signed(
        account=account_id(public_key),
        auth=Auth(public_key=public_key, timestamp_ms=timestamp_ms, signature=signature, payload=payload),
    )


SignedDep = Annotated[Signed, Depends(verify_request)]


def market_of(node, symbol: str):
    """The market `symbol` names, or the -1121 error."""
    try:
        return node.cfg.markets.market(symbol)
    except KeyError:
        raise ApiError.of(Reason.UNKNOWN_SYMBOL) from None
