"""Engine values to JSON: decimal strings, Binance's names, epoch ms."""

from __future__ import annotations

from dex.core.events import OrderExpired, Trade
from dex.core.markets import Market, units_to_amount
from dex.core.types import OrderStatus, Side


def price(m: Market, ticks: int) -> str:
    return m.ticks_to_price(ticks)


def qty(m: Market, lots: int) -> str:
    return m.lots_to_qty(lots)


def quote(m: Market, units: int) -> str:
    return units_to_amount(m.quote, units)


def order_result(m: Market, accepted, events: list, time_ms: int, height: int, block_hash: bytes, resp_type: str) -> dict:
    """The answer to a new order, from its events (Binance's FULL/RESULT/ACK)."""
    oid = accepted.order_id
    out = {
        "symbol": m.symbol,
        "orderId": oid,
        "clientOrderId": accepted.client_order_id,
        "transactTime": time_ms,
        "blockHeight": height,
        "blockHash": block_hash.hex(),
    }
    if resp_type == "ACK":  # what the order did is not part of the answer: not worked out
        return out
    fills, expired = taker_outcome(events, oid)
    executed = sum(f.qty for f in fills)
    notional_units = m.notional_units  # a Decimal computation: once, not per fill
    quote_units = sum(f.price * f.qty for f in fills) * notional_units
    if expired is not None:
        status = OrderStatus.EXPIRED
    elif accepted.type == 1:  # MARKET: never rests
        status = OrderStatus.FILLED
    elif executed == accepted.qty:
        status = OrderStatus.FILLED
    else:
        status = OrderStatus.PARTIALLY_FILLED if executed else OrderStatus.NEW
    out.update(
        price=price(m, accepted.price),
        origQty=qty(m, accepted.qty),
        executedQty=qty(m, executed),
        cummulativeQuoteQty=quote(m, quote_units),
        status=status.name,
        timeInForce=accepted.tif.name,
        type=accepted.type.name,
        side=accepted.side.name,
    )
    if accepted.quote_qty:
        out["origQuoteOrderQty"] = quote(m, accepted.quote_qty)
    if expired is not None:
        out["expiryReason"] = expired.reason.name
    if resp_type == "FULL":
        out["fills"] = taker_fills(m, fills)
    return out


def taker_outcome(events: list, order_id: int) -> tuple[list, object]:
    """The fills an order made as taker in a command's events, and its
    OrderExpired if it has one (else None)."""
    fills = [e for e in events if e.__class__ is Trade and e.taker_order_id == order_id]
    expired = next((e for e in events if e.__class__ is OrderExpired and e.order_id == order_id), None)
    return fills, expired


def taker_fills(m: Market, fills: list) -> list[dict]:
    """Binance's `fills`: the taker's commission is in the asset it receives."""
    out = []
    for f in fills:
        receives = m.base if f.taker_side == Side.BUY else m.quote
        out.append({
            "price": price(m, f.price),
            "qty": qty(m, f.qty),
            "commission": units_to_amount(receives, f.taker_fee),
            "commissionAsset": receives.name,
            "tradeId": f.trade_id,
        })
    return out


def order_view(m: Market, v) -> dict:
    """An engine OrderView (live, or finished within the dedup window)."""
    return {
        "symbol": m.symbol,
        "orderId": v.order_id,
        "clientOrderId": v.client_order_id,
        "price": price(m, v.price),
        "origQty": qty(m, v.qty),
        "executedQty": qty(m, v.filled),
        "status": v.status.name,
        "timeInForce": v.tif.name,
        "type": v.type.name,
        "side": v.side.name,
        "postOnly": v.post_only,
        "time": v.time_ms,
    }


def order_record(m: Market, r) -> dict:
    """A History record."""
    return {
        "symbol": m.symbol,
        "orderId": r.order_id,
        "clientOrderId": r.client_order_id,
        "price": price(m, r.price),
        "origQty": qty(m, r.qty),
        "executedQty": qty(m, r.filled),
        "cummulativeQuoteQty": quote(m, r.filled_quote_units),
        "status": r.status.name,
        "timeInForce": r.tif.name,
        "type": r.type.name,
        "side": r.side.name,
        "time": r.time_ms,
        "updateTime": r.update_ms,
        "blockHeight": r.height,
    }


def event(markets: dict[str, Market], assets: dict, ev) -> dict:
    """Any engine event as JSON, for the block explorer."""
    d = {"event": type(ev).__name__}
    m = markets.get(getattr(ev, "symbol", None) or "")
    for k, v in ev._asdict().items():
        name = "".join(w.capitalize() if i else w for i, w in enumerate(k.split("_")))
        if m is not None and k == "price":
            v = price(m, v)
        elif m is not None and k == "qty":
            v = qty(m, v)
        elif k in ("account", "maker_account", "taker_account"):
            v = str(v)
        elif hasattr(v, "name"):
            v = v.name
        elif k in ("delta", "free") and "asset" in ev._fields:
            v = units_to_amount(assets[ev.asset], v)
        elif m is not None and k == "quote_qty":
            v = quote(m, v)
        elif m is not None and k in ("maker_fee", "taker_fee"):
            buyer_is_maker = ev.taker_side == Side.SELL
            receives_base = buyer_is_maker if k == "maker_fee" else not buyer_is_maker
            v = units_to_amount(m.base if receives_base else m.quote, v)
        d[name] = v
    return d
