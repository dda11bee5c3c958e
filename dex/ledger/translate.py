"""Signed requests into commands: the one translation the API's routes and
`dex audit` share.

A state-changing route parses its body (the exact bytes that were signed)
with the models here and builds its commands with the functions here; the
auditor, holding only a block's signed payload, calls `request_commands`,
which goes through the same models and functions, so a block can hold only
what the API would have made of the request. Nothing here imports FastAPI:
the auditor runs without a web stack.

Expected refusals are `Refused(status, code, msg)` values raised to the
caller (the API answers them as `{code, msg}`; the auditor reports them).
Codes are Binance's where Binance has one, else a `Reason`'s stable code.
Invariant: every command returned carries the signer's account, and a
client order id that reaches a command is valid for the ledger codec
(unless `check_client_id=False`: the auditor re-deriving blocks made before
the edge checked ids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dex.core import limits
from dex.core.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw, valid_client_order_id
from dex.core.markets import amount_to_units, plain_decimal_problem
from dex.core.reasons import Reason
from dex.core.types import OrderType, SelfTradePrevention, Side, TimeInForce

# Wire codes of refusals that are not engine reasons (dex/api/errors.py re-exports them).
MANDATORY_PARAM = -1102
ILLEGAL_CHARS = -1100
BAD_PRECISION = -1111

BATCH_ORDERS_MAX = 100
ORDER_ID_MAX = 2**63 - 1
CLIENT_ID_RULE = f"1 to {limits.CLIENT_ORDER_ID_LENGTH_MAX} printable ASCII characters; anything else is refused with -1100."
assert 1 <= BATCH_ORDERS_MAX <= 2**16  # a batch index travels in 2 bytes of a derived client id


class Refused(Exception):
    """A request refused at the edge: nothing reaches a block."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg

    @classmethod
    def of(cls, reason: Reason):
        status = 404 if reason == Reason.UNKNOWN_ORDER else 400
        return cls(status, reason.code, reason.msg)


# ------------------------------------------------------------------ bodies


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


class BatchOrders(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batchOrders: list[NewOrder] = Field(min_length=1, max_length=BATCH_ORDERS_MAX)


class AmendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"symbol": "BTCUSDT", "orderId": 12, "newQty": "0.005"}]
    })
    symbol: str = Field(max_length=20)
    orderId: int | None = Field(default=None, ge=1, le=ORDER_ID_MAX)
    origClientOrderId: str | None = Field(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=CLIENT_ID_RULE)
    newPrice: str | None = Field(default=None, max_length=40)
    newQty: str | None = Field(default=None, max_length=40)  # new total quantity, filled part included


TRANSFER_ID_RULE = (
    "The client's id for this transfer (optional): " + CLIENT_ID_RULE[:-1] + ". The account's first transfer under an id "
    "executes; sending the id again (a retry) executes nothing and is answered with the first one's outcome, "
    "\"duplicate\": true. Deposits and withdrawals share one set of ids per account; the last 1,000 are remembered."
)


class DepositRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"asset": "USDT", "amount": "10000", "clientTransferId": "my-deposit-1"}]})
    asset: str = Field(max_length=20)
    amount: str = Field(max_length=40)
    clientTransferId: str | None = Field(default=None, min_length=1, max_length=limits.CLIENT_ORDER_ID_LENGTH_MAX, description=TRANSFER_ID_RULE)


def parse(model: type[BaseModel], body: bytes) -> BaseModel:
    """The body as `model`, or Refused -1102 naming the first problems."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        raise Refused(400, MANDATORY_PARAM, problems or "invalid body") from None


# ---------------------------------------------------------------- commands


def plain(text: str | None, param: str) -> str | None:
    """A price, quantity or amount as sent, or Refused -1100 when it is not a
    plain decimal ("1e-3" is refused as such, not as a filter failure)."""
    if text is not None:
        problem = plain_decimal_problem(param, text)
        if problem is not None:
            raise Refused(400, ILLEGAL_CHARS, problem)
    return text


def market_of(markets, symbol: str):
    """The market `symbol` names, or Refused -1121."""
    try:
        return markets.market(symbol)
    except KeyError:
        raise Refused.of(Reason.UNKNOWN_SYMBOL) from None


_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648's base32 alphabet, lower case
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # 10 bits -> two characters
_B32_SHIFTS = range(150, -1, -10)


def derived_client_id(signature: bytes) -> str:
    """A client order id for an order sent without one, derived from its
    signature: a replay of the same signed request within recvWindow is then
    a duplicate, not a second order. "dex-" and the first 32 characters of the
    SHA-256's lower-case base32 (its first 160 bits); written out here because
    `base64.b32encode` is Python code, ~8 µs a call, most of translating an order."""
    n = int.from_bytes(hashlib.sha256(signature).digest()[:20], "big")
    return "dex-" + "".join([_B32_PAIRS[(n >> shift) & 1023] for shift in _B32_SHIFTS])


def client_id(cid: str, param: str) -> str:
    """A client order id the engine (and the ledger codec) can take, or -1100:
    an id outside printable ASCII must not reach a block."""
    if not valid_client_order_id(cid):
        raise Refused(400, ILLEGAL_CHARS, f"Illegal characters found in parameter '{param}'.")
    return cid


def order_ref(order_id: int | None, orig_cid: str | None, *, check_client_id: bool = True) -> tuple[int, str | None]:
    """(order_id, client_order_id) as the engine takes them: by id when one is
    sent, otherwise by the client's id."""
    if order_id is None and orig_cid is None:
        raise Refused(400, MANDATORY_PARAM, "Either orderId or origClientOrderId must be sent.")
    if order_id:
        return order_id, None
    return 0, (client_id(orig_cid, "origClientOrderId") if check_client_id else orig_cid)


def place_command(markets, o: NewOrder, account: int, signature: bytes, index: int = 0, *, check_client_id: bool = True):
    """(market, PlaceOrder) for one new order, after the edge's checks, or
    Refused. `index` tells the orders of one batch apart when their client
    ids are derived from its `signature`."""
    m = market_of(markets, o.symbol)
    otype = _ORDER_TYPES[o.type]
    text_price, text_qty, text_quote = o.price, o.quantity, o.quoteOrderQty
    price, quantity, quote_qty = _order_amounts(m, text_price, text_qty, text_quote)
    if otype is _LIMIT and (text_price is None or text_qty is None):
        raise Refused(400, MANDATORY_PARAM, "A LIMIT order needs price and quantity.")
    if otype is _MARKET and (text_qty is None) == (text_quote is None):
        raise Refused(400, MANDATORY_PARAM, "A MARKET order needs exactly one of quantity and quoteOrderQty.")
    tif = _TIFS[o.timeInForce] if o.timeInForce else _GTC
    if o.newClientOrderId is not None:
        cid = client_id(o.newClientOrderId, "newClientOrderId") if check_client_id else o.newClientOrderId
    else:
        cid = derived_client_id(signature + index.to_bytes(2, "big"))
    return m, PlaceOrder(
        account=account,
        symbol=o.symbol,
        side=_SIDES[o.side],
        type=otype,
        tif=tif,
        price=price,
        qty=quantity,
        quote_qty=quote_qty,
        post_only=o.postOnly,
        stp=_STPS[o.selfTradePreventionMode],
        client_order_id=cid,
    )


# The enums by name as plain dicts, and members read once: `Side[name]` and
# `OrderType.LIMIT` go through the enum's metaclass (~70-170 ns each on
# CPython 3.11, four to six an order), a dict lookup or a global ~20.
_SIDES = dict(Side.__members__)
_ORDER_TYPES = dict(OrderType.__members__)
_TIFS = dict(TimeInForce.__members__)
_STPS = dict(SelfTradePrevention.__members__)
_LIMIT, _MARKET, _GTC = OrderType.LIMIT, OrderType.MARKET, TimeInForce.GTC


def _order_amounts(m, text_price: str | None, text_qty: str | None, text_quote: str | None) -> tuple[int, int, int]:
    """(ticks, lots, quote units) of an order's price, quantity and
    quoteOrderQty, 0 for one not sent; or Refused: first -1100 for the first
    of them (in that order) that is not a plain decimal, then the price's
    filter, the quantity's, the quote amount's precision. Every text converts
    in the common case, and a text that converts is a plain decimal (the
    conversion takes only what `plain` passes), so the -1100 checks run only
    when one does not."""
    price = 0 if text_price is None else m.price_to_ticks(text_price)
    quantity = 0 if text_qty is None else m.qty_to_lots(text_qty)
    quote_qty = 0 if text_quote is None else amount_to_units(m.quote, text_quote)
    if price is not None and quantity is not None and quote_qty is not None:
        return price, quantity, quote_qty
    plain(text_price, "price")
    plain(text_qty, "quantity")
    plain(text_quote, "quoteOrderQty")
    if price is None:
        raise Refused.of(Reason.PRICE_FILTER)
    if quantity is None:
        raise Refused.of(Reason.LOT_SIZE)
    raise Refused(400, BAD_PRECISION, "Precision is over the maximum defined for this asset (quoteOrderQty).")


def batch_commands(markets, batch: BatchOrders, account: int, signature: bytes, *, check_client_id: bool = True) -> list:
    """One entry per order of the batch, in order: (market, PlaceOrder), or
    the Refused that keeps that order (alone) out of the block."""
    out: list = []
    for i, o in enumerate(batch.batchOrders):
        try:
            out.append(place_command(markets, o, account, signature, i, check_client_id=check_client_id))
        except Refused as e:
            out.append(e)
    return out


def cancel_command(markets, account: int, symbol: str, order_id: int | None, orig_cid: str | None, *, check_client_id: bool = True):
    """(market, CancelOrder), or Refused."""
    m = market_of(markets, symbol)
    oid, cid = order_ref(order_id, orig_cid, check_client_id=check_client_id)
    return m, CancelOrder(account=account, symbol=symbol, order_id=oid, client_order_id=cid)


def cancel_all_command(markets, account: int, symbol: str | None) -> CancelAll:
    if symbol is not None:
        market_of(markets, symbol)
    return CancelAll(account=account, symbol=symbol)


def amend_command(markets, a: AmendRequest, account: int, *, check_client_id: bool = True):
    """(market, AmendOrder), or Refused."""
    m = market_of(markets, a.symbol)
    order_id, cid = order_ref(a.orderId, a.origClientOrderId, check_client_id=check_client_id)
    if a.newPrice is None and a.newQty is None:
        raise Refused(400, MANDATORY_PARAM, "At least one of newPrice and newQty must be sent.")
    price = quantity = 0
    for param, text in (("newPrice", a.newPrice), ("newQty", a.newQty)):
        plain(text, param)
    if a.newPrice is not None:
        price = m.price_to_ticks(a.newPrice)
        if price is None or price <= 0:  # 0 would mean "keep" to the engine
            raise Refused.of(Reason.PRICE_FILTER)
    if a.newQty is not None:
        quantity = m.qty_to_lots(a.newQty)
        if quantity is None or quantity <= 0:
            raise Refused.of(Reason.LOT_SIZE)
    return m, AmendOrder(account=account, symbol=a.symbol, order_id=order_id, client_order_id=cid, price=price, qty=quantity)


def faucet_command(markets, d: DepositRequest, account: int, command: type[Deposit] | type[Withdraw]):
    """(asset, Deposit or Withdraw) of a positive amount, with the client's
    transfer id if it sent one, or Refused."""
    try:
        asset = markets.asset(d.asset)
    except KeyError:
        raise Refused.of(Reason.UNKNOWN_ASSET) from None
    units = amount_to_units(asset, plain(d.amount, "amount"))
    if units is None or units <= 0:
        raise Refused.of(Reason.BAD_AMOUNT)
    tid = None if d.clientTransferId is None else client_id(d.clientTransferId, "clientTransferId")
    return asset, command(account=account, asset=d.asset, amount=units, transfer_id=tid)


# ------------------------------------------------------ a whole request

# The routes that make commands, as "METHOD path".
ORDER = "POST /api/v1/order"
BATCH_ORDERS = "POST /api/v1/batchOrders"
CANCEL = "DELETE /api/v1/order"
CANCEL_ALL = "DELETE /api/v1/openOrders"
AMEND = "PUT /api/v1/order/amend"
DEPOSIT = "POST /api/v1/deposit"
WITHDRAW = "POST /api/v1/withdraw"
COMMAND_ROUTES = (ORDER, BATCH_ORDERS, CANCEL, CANCEL_ALL, AMEND, DEPOSIT, WITHDRAW)


def query_int(params: Mapping[str, str], name: str) -> int | None:
    """An integer query parameter as the API's validation takes it (1..2^63-1)."""
    text = params.get(name)
    if text is None:
        return None
    text = text.strip()
    if not text.lstrip("+").isdigit() or not 1 <= int(text) <= ORDER_ID_MAX:
        raise Refused(400, MANDATORY_PARAM, f"{name}: not an integer in 1..{ORDER_ID_MAX}")
    return int(text)


def request_commands(route: str, params: Mapping[str, str], body: bytes, account: int, signature: bytes, markets, *, check_client_id: bool = True) -> list | None:
    """The commands the API makes from a signed request: `route` is
    "METHOD path", `params` its query parameters, `body` its body. None: a
    route that makes no commands. Refused: the API would refuse it whole.
    (Orders of a batch refused alone are left out, as the API leaves them.)"""
    if route == ORDER:
        return [place_command(markets, parse(NewOrder, body), account, signature, check_client_id=check_client_id)[1]]
    if route == BATCH_ORDERS:
        placed = batch_commands(markets, parse(BatchOrders, body), account, signature, check_client_id=check_client_id)
        return [p[1] for p in placed if not isinstance(p, Refused)]
    if route == CANCEL:
        symbol = params.get("symbol")
        if symbol is None:
            raise Refused(400, MANDATORY_PARAM, "symbol: Field required")
        return [cancel_command(markets, account, symbol, query_int(params, "orderId"), params.get("origClientOrderId"), check_client_id=check_client_id)[1]]
    if route == CANCEL_ALL:
        return [cancel_all_command(markets, account, params.get("symbol"))]
    if route == AMEND:
        return [amend_command(markets, parse(AmendRequest, body), account, check_client_id=check_client_id)[1]]
    if route in (DEPOSIT, WITHDRAW):
        return [faucet_command(markets, parse(DepositRequest, body), account, Deposit if route == DEPOSIT else Withdraw)[1]]
    return None
