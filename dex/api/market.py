"""Public market data: time, exchange info, depth, recent trades."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query

from dex.api import render
from dex.api.deps import NodeDep
from dex.api.errors import ApiError
from dex.core.reasons import Reason
from dex.core.types import Side

router = APIRouter(prefix="/api/v1", tags=["market data"])

DEPTH_LIMIT_MAX = 1000
TRADES_LIMIT_MAX = 1000


def _market(node, symbol: str):
    try:
        return node.cfg.markets.market(symbol)
    except KeyError:
        raise ApiError.of(Reason.UNKNOWN_SYMBOL) from None


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
    m = _market(node, symbol)
    with node.replica.lock:
        bids, asks = node.replica.engine.depth(symbol, limit)
        height = node.replica.height
    return {
        "lastUpdateId": height,
        "bids": [[render.price(m, p), render.qty(m, q)] for p, q in bids],
        "asks": [[render.price(m, p), render.qty(m, q)] for p, q in asks],
    }


@router.get("/trades", summary="Recent trades")
async def trades(node: NodeDep, symbol: str = Query(max_length=20), limit: int = Query(default=500, ge=1, le=TRADES_LIMIT_MAX)):
    m = _market(node, symbol)
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
