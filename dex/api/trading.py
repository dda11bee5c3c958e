"""Trading: new order, cancel, query, account, and the faucet.

Every state-changing route is signed. On the leader, a request becomes
commands in the block builder; on a follower it is forwarded to the leader
as received. Either way the answer comes after the block holding the command
is applied on the node that answers.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dex.api import render
from dex.api.deps import NodeDep, SignedDep, market_of, verify_request
from dex.api.errors import (
    BAD_PRECISION,
    DISABLED,
    DISCONNECTED,
    ILLEGAL_CHARS,
    MANDATORY_PARAM,
    ApiError,
)
from dex.core import limits
from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw, valid_client_order_id
from dex.core.events import (
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderDuplicate,
    OrderRejected,
)
from dex.core.markets import amount_to_units, units_to_amount
from dex.core.reasons import Reason
from dex.core.types import (
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

router = APIRouter(prefix="/api/v1", tags=["trading"])

FORWARDED = "x-dex-forwarded"
CLIENT_ID_RULE = f"1 to {limits.CLIENT_ORDER_ID_LENGTH_MAX} printable ASCII characters; anything else is refused with -1100."


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "price": "50000.00", "quantity": "0.01000", "newClientOrderId": "my-order-1"}]
    })
    symbol: str = Field(max_length=20)
    side: Literal["BUY", "SELL"]
    type: Literal["LIMIT", "MARKET"]
    timeInForce: Literal["GTC", "IOC", "FOK"] | None = None
    price: str | None = Field(default=None, max_length=40)
    quantity: str | None = Field(default=None, max_length=40)
    quoteOrderQty: str | None = Field(default=None, max_length=40)
    newClientOrderId: str | None = Field(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=CLIENT_ID_RULE)
    postOnly: bool = False
    selfTradePreventionMode: Literal["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"] = "EXPIRE_TAKER"
    newOrderRespType: Literal["ACK", "RESULT", "FULL"] = "FULL"


class AmendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"symbol": "BTCUSDT", "orderId": 12, "newQty": "0.005"}]
    })
    symbol: str = Field(max_length=20)
    orderId: int | None = Field(default=None, ge=1, le=2**63 - 1)
    origClientOrderId: str | None = Field(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=CLIENT_ID_RULE)
    newPrice: str | None = Field(default=None, max_length=40)
    newQty: str | None = Field(default=None, max_length=40)  # new total quantity, filled part included


class DepositRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"asset": "USDT", "amount": "10000"}]})
    asset: str = Field(max_length=20)
    amount: str = Field(max_length=40)


def _parse(model: type[BaseModel], body: bytes) -> BaseModel:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        raise ApiError(400, MANDATORY_PARAM, problems or "invalid body") from None




def _derived_client_id(signature: bytes) -> str:
    """A client order id for an order sent without one, derived from its
    signature: a replay of the same signed request within recvWindow is then
    a duplicate, not a second order."""
    return "dex-" + base64.b32encode(hashlib.sha256(signature).digest()).decode()[:32].lower()


async def _forward_if_follower(node, request: Request):
    """None on the leader; the leader's answer (as a response) on a follower."""
    leader = await node.wait_leader()
    if leader is None:
        raise ApiError.unavailable(DISCONNECTED, "No leader: the cluster is electing one or has lost quorum. Please try again.")
    if leader == node.node_id:
        return None
    if request.headers.get(FORWARDED):
        raise ApiError.unavailable(DISCONNECTED, "Forwarded to a node that is no longer the leader. Please try again.")
    signed = await verify_request(request)  # here, where the user sent it: bad signatures stop here, the rate limit is charged once
    body = await request.body()
    status, payload, retry_after = await node.forward(
        leader, request.method, request.url.path, request.url.query, dict(request.headers), body, signed.auth.payload
    )
    return JSONResponse(payload, status_code=status, headers={"Retry-After": retry_after} if retry_after else None)


def _reject(events: list) -> None:
    first = events[0] if events else None
    if first.__class__ is OrderRejected:
        raise ApiError.of(first.reason)


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


def _client_id(cid: str, param: str) -> str:
    """A client order id the engine (and the ledger codec) can take, or -1100
    here: an id outside printable ASCII must not reach a block."""
    if not valid_client_order_id(cid):
        raise ApiError(400, ILLEGAL_CHARS, f"Illegal characters found in parameter '{param}'.")
    return cid


def _order_ref(order_id: int | None, orig_cid: str | None) -> tuple[int, str | None]:
    """(order_id, client_order_id) as the engine takes them: by id when one is
    sent, otherwise by the client's id."""
    if order_id is None and orig_cid is None:
        raise ApiError(400, MANDATORY_PARAM, "Either orderId or origClientOrderId must be sent.")
    if order_id:
        return order_id, None
    return 0, _client_id(orig_cid, "origClientOrderId")


def _place_command(node, o: NewOrder, signed, index: int = 0, *, check_client_id: bool = True):
    """The engine command for one new order, after the edge's checks:
    (market, PlaceOrder), or ApiError. `index` tells the orders of one
    batch apart when their client ids are derived from its signature.
    `check_client_id=False` (dex audit): blocks made before the edge checked
    client ids hold orders whose ids only the engine refused."""
    m = market_of(node, o.symbol)
    otype = OrderType[o.type]
    price = quantity = quote_qty = 0
    if o.price is not None:
        price = m.price_to_ticks(o.price)
        if price is None:
            raise ApiError.of(Reason.PRICE_FILTER)
    if o.quantity is not None:
        quantity = m.qty_to_lots(o.quantity)
        if quantity is None:
            raise ApiError.of(Reason.LOT_SIZE)
    if o.quoteOrderQty is not None:
        quote_qty = amount_to_units(m.quote, o.quoteOrderQty)
        if quote_qty is None:
            raise ApiError(400, BAD_PRECISION, "Precision is over the maximum defined for this asset (quoteOrderQty).")
    if otype == OrderType.LIMIT and (o.price is None or o.quantity is None):
        raise ApiError(400, MANDATORY_PARAM, "A LIMIT order needs price and quantity.")
    if otype == OrderType.MARKET and (o.quantity is None) == (o.quoteOrderQty is None):
        raise ApiError(400, MANDATORY_PARAM, "A MARKET order needs exactly one of quantity and quoteOrderQty.")
    tif = TimeInForce[o.timeInForce] if o.timeInForce else TimeInForce.GTC
    if o.newClientOrderId is not None:
        cid = _client_id(o.newClientOrderId, "newClientOrderId") if check_client_id else o.newClientOrderId
    else:
        cid = _derived_client_id(signed.auth.signature + index.to_bytes(2, "big"))
    return m, PlaceOrder(
        account=signed.account,
        symbol=o.symbol,
        side=Side[o.side],
        type=otype,
        tif=tif,
        price=price,
        qty=quantity,
        quote_qty=quote_qty,
        post_only=o.postOnly,
        stp=SelfTradePrevention[o.selfTradePreventionMode],
        client_order_id=cid,
    )


def _order_answer(node, m, events: list, height: int, block_hash: bytes, resp_type: str) -> dict:
    """The answer for one placed order from its events; ApiError if rejected."""
    _reject(events)
    first = events[0]
    if first.__class__ is OrderDuplicate:
        return {
            "symbol": first.symbol,
            "orderId": first.order_id,
            "clientOrderId": first.client_order_id,
            "status": first.status.name,
            "origQty": m.lots_to_qty(first.qty),
            "executedQty": m.lots_to_qty(first.filled),
            "duplicate": True,
            "blockHeight": height,
            "blockHash": block_hash.hex(),
        }
    assert first.__class__ is OrderAccepted, first
    header = node.replica.chain.header(height)
    time_ms = header.time_ms if header is not None else 0
    return render.order_result(m, first, events, time_ms, height, block_hash, resp_type)


@router.post("/order", summary="New order (signed)", openapi_extra=_signed_body(NewOrder), responses={400: {"description": "Rejected: {code, msg}"}, 503: {"description": "No leader, lost quorum, or outcome unknown; retry with the same newClientOrderId"}})
async def new_order(request: Request, node: NodeDep):
    forwarded = await _forward_if_follower(node, request)
    if forwarded is not None:
        return forwarded
    signed = await verify_request(request)
    o: NewOrder = _parse(NewOrder, await request.body())
    m, cmd = _place_command(node, o, signed)
    height, block_hash, results = await node.submit([cmd], signed.auth)
    return _order_answer(node, m, results[0], height, block_hash, o.newOrderRespType)


BATCH_ORDERS_MAX = 100


class BatchOrders(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batchOrders: list[NewOrder] = Field(min_length=1, max_length=BATCH_ORDERS_MAX)


@router.post(
    "/batchOrders",
    summary=f"Up to {BATCH_ORDERS_MAX} new orders under one signature, placed in one block, in order (signed)",
    openapi_extra=_signed_body(BatchOrders),
    responses={200: {"description": "One entry per order, in order: the order's answer, or {code, msg} for an order rejected alone"}},
)
async def batch_orders(request: Request, node: NodeDep):
    forwarded = await _forward_if_follower(node, request)
    if forwarded is not None:
        return forwarded
    signed = await verify_request(request)
    batch: BatchOrders = _parse(BatchOrders, await request.body())
    answers: list = [None] * len(batch.batchOrders)
    placed = []  # (position, market, command, response type)
    for i, o in enumerate(batch.batchOrders):
        try:
            m, cmd = _place_command(node, o, signed, i)
        except ApiError as e:
            answers[i] = {"code": e.code, "msg": e.msg}
        else:
            placed.append((i, m, cmd, o.newOrderRespType))
    height = None
    if placed:
        height, block_hash, results = await node.submit([cmd for _, _, cmd, _ in placed], signed.auth)
        for (i, m, _, resp_type), events in zip(placed, results):
            try:
                answers[i] = _order_answer(node, m, events, height, block_hash, resp_type)
            except ApiError as e:
                answers[i] = {"code": e.code, "msg": e.msg}
    # The block height travels in a header so a forwarding follower can wait
    # for it; the body is Binance's plain list.
    return JSONResponse(answers, headers={"X-DEX-BLOCK-HEIGHT": str(height)} if height else None)


@router.delete("/order", summary="Cancel an order (signed)", openapi_extra={"parameters": SIGNED_HEADERS})
async def cancel_order(
    request: Request,
    node: NodeDep,
    symbol: str = Query(max_length=20),
    orderId: int | None = Query(default=None, ge=1, le=2**63 - 1),
    origClientOrderId: str | None = Query(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=CLIENT_ID_RULE),
):
    forwarded = await _forward_if_follower(node, request)
    if forwarded is not None:
        return forwarded
    signed = await verify_request(request)
    m = market_of(node, symbol)
    order_id, cid = _order_ref(orderId, origClientOrderId)
    cmd = CancelOrder(account=signed.account, symbol=symbol, order_id=order_id, client_order_id=cid)
    height, block_hash, results = await node.submit([cmd], signed.auth)
    events = results[0]
    _reject(events)
    ev = events[0]
    assert ev.__class__ is OrderCancelled, ev
    record = node.history.order(ev.order_id)
    out = render.order_record(m, record) if record is not None else {"symbol": symbol, "orderId": ev.order_id}
    out.update(status="CANCELED", blockHeight=height, blockHash=block_hash.hex())
    if origClientOrderId:
        out["origClientOrderId"] = origClientOrderId
    return out


@router.delete("/openOrders", summary="Cancel every open order of the account, in one market or all (signed)", openapi_extra={"parameters": SIGNED_HEADERS})
async def cancel_open_orders(request: Request, node: NodeDep, symbol: str | None = Query(default=None, max_length=20)):
    forwarded = await _forward_if_follower(node, request)
    if forwarded is not None:
        return forwarded
    signed = await verify_request(request)
    if symbol is not None:
        market_of(node, symbol)
    height, block_hash, results = await node.submit([CancelAll(account=signed.account, symbol=symbol)], signed.auth)
    events = results[0]
    _reject(events)
    answers = []
    for ev in events:
        if ev.__class__ is not OrderCancelled:
            continue
        m = node.cfg.markets.market(ev.symbol)
        record = node.history.order(ev.order_id)
        out = render.order_record(m, record) if record is not None else {"symbol": ev.symbol, "orderId": ev.order_id}
        out.update(status="CANCELED", blockHeight=height, blockHash=block_hash.hex())
        answers.append(out)
    # A plain list, as Binance answers; the height travels in a header so a
    # forwarding follower can wait for the block.
    return JSONResponse(answers, headers={"X-DEX-BLOCK-HEIGHT": str(height)})


@router.put(
    "/order/amend",
    summary="Amend an open order's price and/or total quantity (signed)",
    openapi_extra=_signed_body(AmendRequest),
    responses={400: {"description": "Rejected: {code, msg}"}, 404: {"description": "No such open order of this account (-2013)"}},
)
async def amend_order(request: Request, node: NodeDep):
    forwarded = await _forward_if_follower(node, request)
    if forwarded is not None:
        return forwarded
    signed = await verify_request(request)
    a: AmendRequest = _parse(AmendRequest, await request.body())
    m = market_of(node, a.symbol)
    order_id, cid = _order_ref(a.orderId, a.origClientOrderId)
    if a.newPrice is None and a.newQty is None:
        raise ApiError(400, MANDATORY_PARAM, "At least one of newPrice and newQty must be sent.")
    price = quantity = 0
    if a.newPrice is not None:
        price = m.price_to_ticks(a.newPrice)
        if price is None or price <= 0:  # 0 would mean "keep" to the engine
            raise ApiError.of(Reason.PRICE_FILTER)
    if a.newQty is not None:
        quantity = m.qty_to_lots(a.newQty)
        if quantity is None or quantity <= 0:
            raise ApiError.of(Reason.LOT_SIZE)
    cmd = AmendOrder(
        account=signed.account,
        symbol=a.symbol,
        order_id=order_id,
        client_order_id=cid,
        price=price,
        qty=quantity,
    )
    height, block_hash, results = await node.submit([cmd], signed.auth)
    events = results[0]
    _reject(events)
    amended = events[0]
    assert amended.__class__ is OrderAmended, amended
    oid = amended.order_id
    fills, expired = render.taker_outcome(events, oid)
    header = node.replica.chain.header(height)
    record = node.history.order(oid)
    if record is not None:
        out = render.order_record(m, record)
    else:  # older than the read model: what the engine still knows
        with node.replica.lock:
            view = node.replica.engine.order(signed.account, a.symbol, oid)
        out = render.order_view(m, view) if view is not None else {"symbol": a.symbol, "orderId": oid}
        out.update(price=render.price(m, amended.price), origQty=render.qty(m, amended.qty))
        if view is None:
            out["status"] = (OrderStatus.EXPIRED if expired is not None else OrderStatus.FILLED).name
    if a.origClientOrderId:
        out["origClientOrderId"] = a.origClientOrderId
    out.update(
        priorityKept=amended.priority_kept,
        transactTime=header.time_ms if header is not None else 0,
        blockHeight=height,
        blockHash=block_hash.hex(),
        fills=render.taker_fills(m, fills),
    )
    if expired is not None:
        out["expiryReason"] = expired.reason.name
    return out


@router.post(
    "/order/test",
    summary="Test a new order: every check a new order passes, nothing placed (signed)",
    openapi_extra=_signed_body(NewOrder),
    responses={200: {"description": "{} when the order would be accepted"}, 400: {"description": "Would be rejected: {code, msg}"}},
)
async def test_order(request: Request, node: NodeDep):
    # Read-only: answered by whichever node receives it, against its state.
    signed = await verify_request(request)
    o: NewOrder = _parse(NewOrder, await request.body())
    _, cmd = _place_command(node, o, signed)  # the client id is checked there
    engine = node.replica.engine
    with node.replica.lock:
        book = engine.books.get(cmd.symbol)
        if book is None:
            raise ApiError.of(Reason.UNKNOWN_SYMBOL)
        acct = engine.accounts.get(cmd.account)
        reason = engine._check_place(cmd, book, acct)
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
    orderId: int | None = Query(default=None, ge=1, le=2**63 - 1),
    origClientOrderId: str | None = Query(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=CLIENT_ID_RULE),
):
    m = market_of(node, symbol)
    order_id, cid = _order_ref(orderId, origClientOrderId)
    with node.replica.lock:
        view = node.replica.engine.order(signed.account, symbol, order_id, cid)
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
    with node.replica.lock:
        views = node.replica.engine.open_orders(signed.account, symbol)
    return [render.order_view(node.cfg.markets.market(v.symbol), v) for v in views]


@router.get("/account", summary="Balances (signed)")
async def account(node: NodeDep, signed: SignedDep):
    with node.replica.lock:
        balances = node.replica.engine.balances(signed.account)
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
    """A deposit or a withdrawal of the signer's own balance; the faucet
    setting turns both on or off. A withdrawal over the free balance is -2010."""
    if not node.cfg.faucet:
        raise ApiError(403, DISABLED, "The faucet is disabled on this cluster.")
    forwarded = await _forward_if_follower(node, request)
    if forwarded is not None:
        return forwarded
    signed = await verify_request(request)
    d: DepositRequest = _parse(DepositRequest, await request.body())
    try:
        asset = node.cfg.markets.asset(d.asset)
    except KeyError:
        raise ApiError.of(Reason.UNKNOWN_ASSET) from None
    units = amount_to_units(asset, d.amount)
    if units is None or units <= 0:
        raise ApiError.of(Reason.BAD_AMOUNT)
    height, block_hash, results = await node.submit([command(account=signed.account, asset=d.asset, amount=units)], signed.auth)
    events = results[0]
    _reject(events)
    ev = events[0]
    return {"asset": d.asset, "amount": d.amount, "free": units_to_amount(asset, ev.free), "blockHeight": height, "blockHash": block_hash.hex()}
