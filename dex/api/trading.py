"""Trading: new order, cancel, query, account, and the faucet.

Every state-changing route is signed and is one call of dex.api.forward.handle:
on the leader dex.api.execute turns the signed request into commands
(dex.ledger.translate, shared with `dex audit`), submits them through the
ledger port and renders the answer; on a follower the request goes to the
leader through the forward channel (dex.api.channel) as received, and the
leader runs the same executor. Either way the answer comes after the block
holding the command is applied on the node that answers. The routes declare
their parameters for the OpenAPI document only: translate validates them.
The five order routes (FORWARDED) are also served by dex.api.fastpath, which
calls the same forward.handle without FastAPI's layers around it.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from dex.api import execute, forward, render
from dex.api.deps import NodeDep, SignedDep, market_of, verify_request
from dex.api.errors import ApiError
from dex.core import limits
from dex.core.commands import Deposit, Withdraw
from dex.core.markets import units_to_amount
from dex.core.reasons import Reason
from dex.core.types import Side
from dex.ledger import translate
from dex.ledger.translate import (
    BATCH_ORDERS_MAX,
    CLIENT_ID_RULE,
    AmendRequest,
    BatchOrders,
    DepositRequest,
    NewOrder,
)

router = APIRouter(prefix="/api/v1", tags=["trading"])

__all__ = ["BATCH_ORDERS_MAX", "FORWARDED", "AmendRequest", "BatchOrders", "DepositRequest", "NewOrder", "router"]


def _body(model: type[BaseModel]) -> dict:
    """Document a JSON body that the route parses itself (after forwarding
    and signature checks, from the exact bytes that were signed)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _inline_defs(model.model_json_schema())}}}}


def _inline_defs(schema: dict) -> dict:
    """The schema with its local `#/$defs/X` references replaced by the
    definitions themselves: embedded in the OpenAPI document, such a
    reference would resolve against the document's root, where there is no
    `$defs`. The body models are not recursive."""
    defs = schema.get("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


SIGNED_HEADERS = [
    {"name": "X-API-KEY", "in": "header", "required": True, "schema": {"type": "string"}, "description": "the account's Ed25519 public key, hex"},
    {"name": "X-TIMESTAMP", "in": "header", "required": True, "schema": {"type": "string"}, "description": "epoch milliseconds"},
    {"name": "X-SIGNATURE", "in": "header", "required": True, "schema": {"type": "string"}, "description": "base64 Ed25519 signature over timestamp + method + path + ('?' + query) + body"},
]


def _signed_body(model: type[BaseModel]) -> dict:
    return {**_body(model), "parameters": SIGNED_HEADERS}


@router.post("/order", summary="New order (signed)", openapi_extra=_signed_body(NewOrder), responses={400: {"description": "Rejected: {code, msg}"}, 503: {"description": "No leader, lost quorum, or outcome unknown; retry with the same newClientOrderId"}})
async def new_order(request: Request, node: NodeDep):
    return await forward.handle(node, request)


@router.post(
    "/batchOrders",
    summary=f"Up to {BATCH_ORDERS_MAX} new orders under one signature, placed in one block, in order (signed)",
    openapi_extra=_signed_body(BatchOrders),
    responses={200: {"description": "One entry per order, in order: the order's answer, or {code, msg} for an order rejected alone"}},
)
async def batch_orders(request: Request, node: NodeDep):
    return await forward.handle(node, request)


_ORDER_REF = [
    {"name": "orderId", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": translate.ORDER_ID_MAX}},
    {"name": "origClientOrderId", "in": "query", "required": False, "description": CLIENT_ID_RULE,
     "schema": {"type": "string", "minLength": 1, "maxLength": limits.CLIENT_ORDER_ID_LENGTH_MAX}},
]


def _symbol(required: bool) -> dict:
    return {"name": "symbol", "in": "query", "required": required, "schema": {"type": "string", "maxLength": 20}}


# The query parameters are documented, not declared: dex.ledger.translate
# validates them, once, from the signed bytes, wherever the request arrives
# (as it does the bodies), so FastAPI has nothing to check on these routes.
@router.delete("/order", summary="Cancel an order (signed)", openapi_extra={"parameters": [_symbol(True), *_ORDER_REF, *SIGNED_HEADERS]})
async def cancel_order(request: Request, node: NodeDep):
    return await forward.handle(node, request)


@router.delete(
    "/openOrders",
    summary="Cancel every open order of the account, in one market or all (signed)",
    openapi_extra={"parameters": [_symbol(False), *SIGNED_HEADERS]},
)
async def cancel_open_orders(request: Request, node: NodeDep):
    return await forward.handle(node, request)


@router.put(
    "/order/amend",
    summary="Amend an open order's price and/or total quantity (signed)",
    openapi_extra=_signed_body(AmendRequest),
    responses={400: {"description": "Rejected: {code, msg}"}, 404: {"description": "No such open order of this account (-2013)"}},
)
async def amend_order(request: Request, node: NodeDep):
    return await forward.handle(node, request)


@router.post(
    "/order/test",
    summary="Test a new order: every check a new order passes, nothing placed (signed)",
    openapi_extra=_signed_body(NewOrder),
    responses={200: {"description": "{} when the order would be accepted"}, 400: {"description": "Would be rejected: {code, msg}"}},
)
async def test_order(request: Request, node: NodeDep):
    # Read-only: answered by whichever node receives it, against its state.
    signed = await verify_request(request)
    o: NewOrder = translate.parse(NewOrder, await request.body())
    _, cmd = translate.place_command(node.cfg.markets, o, signed.account, signed.auth.signature)  # the client id is checked there
    reason = node.port.check_place(cmd)
    if reason is not None:
        raise ApiError.of(reason)
    return {}


MY_TRADES_LIMIT_DEFAULT = 500
MY_TRADES_LIMIT_MAX = 1000


@router.get("/myTrades", summary="The account's recent trades in a market (signed)")
async def my_trades(
    node: NodeDep,
    signed: SignedDep,
    symbol: str = Query(max_length=20),
    limit: int = Query(default=MY_TRADES_LIMIT_DEFAULT, ge=1, le=MY_TRADES_LIMIT_MAX),
):
    m = market_of(node, symbol)
    out = []
    for t, time_ms, is_maker in node.history.account_trades(signed.account, symbol, limit):
        is_buyer = (t.taker_side == Side.SELL) if is_maker else (t.taker_side == Side.BUY)
        receives = m.base if is_buyer else m.quote
        out.append({
            "symbol": symbol,
            "id": t.trade_id,
            "orderId": t.maker_order_id if is_maker else t.taker_order_id,
            "price": render.price(m, t.price),
            "qty": render.qty(m, t.qty),
            "quoteQty": render.quote(m, t.price * t.qty * m.notional_units),
            "commission": units_to_amount(receives, t.maker_fee if is_maker else t.taker_fee),
            "commissionAsset": receives.name,
            "time": time_ms,
            "isBuyer": is_buyer,
            "isMaker": is_maker,
        })
    return out


@router.get("/order", summary="Query an order (signed)")
async def get_order(
    node: NodeDep,
    signed: SignedDep,
    symbol: str = Query(max_length=20),
    orderId: int | None = Query(default=None, ge=1, le=translate.ORDER_ID_MAX),
    origClientOrderId: str | None = Query(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=CLIENT_ID_RULE),
):
    m = market_of(node, symbol)
    order_id, cid = translate.order_ref(orderId, origClientOrderId)
    view = node.port.order(signed.account, symbol, order_id, cid)
    record = node.history.order(view.order_id if view is not None else order_id)
    if record is not None and record.account == signed.account and record.symbol == symbol:
        return render.order_record(m, record)
    if view is not None:
        return render.order_view(m, view)
    raise ApiError.of(Reason.UNKNOWN_ORDER)


@router.get("/openOrders", summary="Open orders (signed)")
async def open_orders(node: NodeDep, signed: SignedDep, symbol: str | None = Query(default=None, max_length=20)):
    if symbol is not None:
        market_of(node, symbol)
    views = node.port.open_orders(signed.account, symbol)
    return [render.order_view(node.cfg.markets.market(v.symbol), v) for v in views]


@router.get("/account", summary="Balances (signed)")
async def account(node: NodeDep, signed: SignedDep):
    balances = node.port.balances(signed.account)
    assets = {a.name: a for a in node.cfg.markets.assets}
    return {
        "accountId": str(signed.account),
        "balances": [
            {"asset": name, "free": units_to_amount(assets[name], free), "locked": units_to_amount(assets[name], locked)}
            for name, (free, locked) in balances.items()
        ],
    }


@router.post("/deposit", summary="Faucet deposit (signed; local clusters only)", openapi_extra=_signed_body(DepositRequest))
async def deposit(request: Request, node: NodeDep):
    return await _faucet(request, node, Deposit)


@router.post(
    "/withdraw",
    summary="Faucet withdrawal: take free balance out of the exchange (signed; local clusters only)",
    openapi_extra=_signed_body(DepositRequest),
)
async def withdraw(request: Request, node: NodeDep):
    return await _faucet(request, node, Withdraw)


async def _faucet(request: Request, node, command: type[Deposit] | type[Withdraw]):
    """A deposit or a withdrawal of the signer's own balance (dex.api.execute);
    the faucet setting turns both on or off, checked where the request arrives."""
    execute.faucet_enabled(node)
    return await forward.handle(node, request)


# The routes whose whole handler is `forward.handle(node, request)` and which
# declare nothing for FastAPI to validate: dex.api.fastpath serves these.
FORWARDED = frozenset((method, router.prefix + path) for method, path in (
    ("POST", "/order"), ("POST", "/batchOrders"), ("DELETE", "/order"), ("DELETE", "/openOrders"), ("PUT", "/order/amend"),
))
