"""Public market data: time, exchange info, depth, recent trades, klines, 24 h tickers."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_EVEN, Decimal

from fastapi import APIRouter, Query

from dex.api import render
from dex.api.deps import NodeDep, market_of
from dex.api.errors import MANDATORY_PARAM, ApiError
from dex.api.history import TRADES_PER_MARKET_MAX
from dex.core.types import Side

router = APIRouter(prefix="/api/v1", tags=["market data"])

DEPTH_LIMIT_MAX = 1000
TRADES_LIMIT_MAX = 1000
KLINES_LIMIT_DEFAULT = 500
KLINES_LIMIT_MAX = 1000
INVALID_INTERVAL = -1120
INTERVALS_MS = {
    "1m": 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "1h": 3_600_000,
    "4h": 4 * 3_600_000,
    "1d": 86_400_000,
}
TICKER_WINDOW_MS = 86_400_000




@router.get("/time", summary="Server time")
async def server_time():
    return {"serverTime": time.time_ns() // 1_000_000}


@router.get("/exchangeInfo", summary="Markets and their filters")
async def exchange_info(node: NodeDep):
    return {
        "timezone": "UTC",
        "serverTime": time.time_ns() // 1_000_000,
        "assets": [{"asset": a.name, "decimals": a.decimals} for a in node.cfg.markets.assets],
        "symbols": [
            {
                "symbol": m.symbol,
                "status": "TRADING",
                "baseAsset": m.base.name,
                "quoteAsset": m.quote.name,
                "makerFeeBps": m.maker_fee_bps,
                "takerFeeBps": m.taker_fee_bps,
                "orderTypes": ["LIMIT", "MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": str(m.tick_size), "maxPrice": str(m.max_price), "tickSize": str(m.tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": str(m.min_qty), "maxQty": str(m.max_qty), "stepSize": str(m.step_size)},
                    {"filterType": "NOTIONAL", "minNotional": str(m.min_notional), "applyMinToMarket": False},
                ],
            }
            for m in node.cfg.markets.markets
        ],
    }


@router.get("/depth", summary="Order book")
async def depth(node: NodeDep, symbol: str = Query(max_length=20), limit: int = Query(default=100, ge=1, le=DEPTH_LIMIT_MAX)):
    m = market_of(node, symbol)
    bids, asks, height = node.port.depth(symbol, limit)
    return {
        "lastUpdateId": height,
        "bids": [[render.price(m, p), render.qty(m, q)] for p, q in bids],
        "asks": [[render.price(m, p), render.qty(m, q)] for p, q in asks],
    }


@router.get("/trades", summary="Recent trades")
async def trades(node: NodeDep, symbol: str = Query(max_length=20), limit: int = Query(default=500, ge=1, le=TRADES_LIMIT_MAX)):
    m = market_of(node, symbol)
    return [
        {
            "id": t.trade_id,
            "price": render.price(m, t.price),
            "qty": render.qty(m, t.qty),
            "quoteQty": render.quote(m, t.price * t.qty * m.notional_units),
            "time": time_ms,
            "isBuyerMaker": t.taker_side == Side.SELL,
        }
        for t, time_ms in node.history.trades(symbol, limit)
    ]


@router.get("/klines", summary="Candlesticks from recent trades")
async def klines(
    node: NodeDep,
    symbol: str = Query(max_length=20),
    interval: str = Query(max_length=8),
    startTime: int | None = Query(default=None, ge=0, le=2**63 - 1),
    endTime: int | None = Query(default=None, ge=0, le=2**63 - 1),
    limit: int = Query(default=KLINES_LIMIT_DEFAULT, ge=1, le=KLINES_LIMIT_MAX),
):
    """Binance's kline arrays: [openTime, open, high, low, close, volume,
    closeTime, quoteAssetVolume, numberOfTrades, takerBuyBaseAssetVolume,
    takerBuyQuoteAssetVolume, "0"], oldest first, open times aligned to the
    interval in UTC epoch ms, by block time.

    Built from this node's recent trades: the node keeps the last 10,000
    trades per market (History), so candles older than those will come from
    the trade store later. Only intervals with at least one trade yield a
    candle. With startTime (and no endTime) the first `limit` candles from
    startTime are returned, otherwise the last `limit` up to endTime.
    """
    m = market_of(node, symbol)
    step = INTERVALS_MS.get(interval)
    if step is None:
        raise ApiError(400, INVALID_INTERVAL, "Invalid interval.")
    if startTime is not None and endTime is not None and startTime > endTime:
        raise ApiError(400, MANDATORY_PARAM, "startTime must not be after endTime.")
    trades = [
        (t, time_ms)
        for t, time_ms in node.history.trades(symbol, TRADES_PER_MARKET_MAX)
        if (startTime is None or time_ms >= startTime) and (endTime is None or time_ms <= endTime)
    ]
    candles = fold_candles([], m, trades, step)
    candles = candles[:limit] if startTime is not None and endTime is None else candles[-limit:]
    return [
        [
            c[0],
            render.price(m, c[1]),
            render.price(m, c[2]),
            render.price(m, c[3]),
            render.price(m, c[4]),
            render.qty(m, c[5]),
            c[0] + step - 1,
            render.quote(m, c[6]),
            c[7],
            render.qty(m, c[8]),
            render.quote(m, c[9]),
            "0",
        ]
        for c in candles
    ]


def fold_candles(candles: list, m, trades, step: int) -> list:
    """Add `trades` ((Trade, block time ms), oldest first) to `candles`, a
    list of [open_ms, o, h, l, c, lots, quote_units, count, taker_buy_lots,
    taker_buy_units] oldest first (the REST klines and the kline stream)."""
    notional_units = m.notional_units  # a Decimal computation: once, not per trade
    for t, time_ms in trades:
        open_ms = time_ms - time_ms % step
        units = t.price * t.qty * notional_units
        buy = t.taker_side == Side.BUY
        c = candles[-1] if candles else None
        if c is None or c[0] != open_ms:  # trades come oldest first, block times never go back
            candles.append([open_ms, t.price, t.price, t.price, t.price, t.qty, units, 1, t.qty if buy else 0, units if buy else 0])
            continue
        c[2] = max(c[2], t.price)
        c[3] = min(c[3], t.price)
        c[4] = t.price
        c[5] += t.qty
        c[6] += units
        c[7] += 1
        if buy:
            c[8] += t.qty
            c[9] += units
    return candles


def _ticker(node, m) -> dict:
    """24 h statistics over this node's recent trades (see klines for the
    bound), the window ending at the newest trade's block time: the same
    trades give the same answer on every node."""
    trades = node.history.trades(m.symbol, TRADES_PER_MARKET_MAX)
    bids, asks, _ = node.port.depth(m.symbol, 1)
    bid_p, bid_q = bids[0] if bids else (0, 0)
    ask_p, ask_q = asks[0] if asks else (0, 0)
    out = {"symbol": m.symbol}
    if not trades:
        zero_p, zero_q, zero_u = render.price(m, 0), render.qty(m, 0), render.quote(m, 0)
        out.update(
            priceChange=zero_p, priceChangePercent="0.000", weightedAvgPrice=zero_p, lastPrice=zero_p, lastQty=zero_q,
            bidPrice=render.price(m, bid_p), bidQty=render.qty(m, bid_q), askPrice=render.price(m, ask_p), askQty=render.qty(m, ask_q),
            openPrice=zero_p, highPrice=zero_p, lowPrice=zero_p, volume=zero_q, quoteVolume=zero_u,
            openTime=0, closeTime=0, firstId=-1, lastId=-1, count=0,
        )
        return out
    close_ms = trades[-1][1]
    open_ms = close_ms - TICKER_WINDOW_MS
    window = [t for t, time_ms in trades if time_ms > open_ms]  # never empty: the newest is in it
    first, last = window[0], window[-1]
    high = max(t.price for t in window)
    low = min(t.price for t in window)
    lots = sum(t.qty for t in window)
    price_lots = sum(t.price * t.qty for t in window)
    change = last.price - first.price
    percent = (Decimal(change) * 100 / Decimal(first.price)) if first.price else Decimal(0)
    places = max(8, -m.tick_size.normalize().as_tuple().exponent)
    weighted = (Decimal(price_lots) / Decimal(lots) * m.tick_size) if lots else Decimal(0)
    out.update(
        priceChange=render.price(m, change),
        priceChangePercent=format(percent.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN), "f"),
        weightedAvgPrice=format(weighted.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN), "f"),
        lastPrice=render.price(m, last.price),
        lastQty=render.qty(m, last.qty),
        bidPrice=render.price(m, bid_p),
        bidQty=render.qty(m, bid_q),
        askPrice=render.price(m, ask_p),
        askQty=render.qty(m, ask_q),
        openPrice=render.price(m, first.price),
        highPrice=render.price(m, high),
        lowPrice=render.price(m, low),
        volume=render.qty(m, lots),
        quoteVolume=render.quote(m, price_lots * m.notional_units),
        openTime=open_ms,
        closeTime=close_ms,
        firstId=first.trade_id,
        lastId=last.trade_id,
        count=len(window),
    )
    return out


@router.get("/ticker/24hr", summary="24 hour price change statistics")
async def ticker_24hr(node: NodeDep, symbol: str | None = Query(default=None, max_length=20)):
    """One market's ticker, or a list of every market's without `symbol`.
    The window is the 24 h of block time ending at the market's newest trade
    (openTime = closeTime - 24 h), over the trades this node keeps (the last
    10,000 per market)."""
    if symbol is not None:
        return _ticker(node, market_of(node, symbol))
    return [_ticker(node, m) for m in node.cfg.markets.markets]
