"""The `<symbol>@trade` and `<symbol>@kline_1m` streams: a block's trades,
and the current one-minute candle (closed when a later minute trades).

Candles are folded by `dex.api.market.fold_candles`, the function behind
GET /klines, so the stream and the route agree. A market's current candle is
kept only while someone subscribes to its candles; when it is first needed it
is rebuilt from History, which already holds the block's trades."""

from __future__ import annotations

from dex.api import render
from dex.api.history import TRADES_PER_MARKET_MAX
from dex.api.market import fold_candles
from dex.api.streams.wire import KLINE_INTERVAL, KLINE_STEP_MS, OTHER, Formats, text
from dex.core.types import Side


class TradesFeed:
    """Raft-thread state of the candle streams (the hub's lock is held)."""

    def __init__(self, markets: dict, formats: dict[str, Formats], history) -> None:
        self.markets = markets
        self.formats = formats
        self.history = history
        # symbol -> [the current 1m candle], or None while nobody subscribes.
        self.candles: dict[str, list | None] = {symbol: None for symbol in markets}

    def forget(self) -> None:
        """Drop every current candle: blocks go by unseen from now on (the
        hub stopped following), so a candle is rebuilt from History when it
        is next needed."""
        self.candles = dict.fromkeys(self.markets)

    def fold(self, header, trades: dict[str, list], subs) -> list:
        """Fold a block's trades into the watched candles: (symbol, the candle
        it closed or None, the current candle) for each market that traded."""
        changed = []
        for symbol, fills in trades.items():
            if f"{symbol.lower()}@kline_{KLINE_INTERVAL}" not in subs:
                self.candles[symbol] = None
                continue
            m = self.markets[symbol]
            candles = self.candles[symbol]
            closed = None
            if candles is None:  # History already holds this block's trades
                minute_ms = header.time_ms - header.time_ms % KLINE_STEP_MS
                recent = [(t, ms) for t, ms in self.history.trades(symbol, TRADES_PER_MARKET_MAX) if ms >= minute_ms]
                candles = self.candles[symbol] = fold_candles([], m, recent, KLINE_STEP_MS)[-1:]
            else:
                before = candles[0][0]
                fold_candles(candles, m, [(t, header.time_ms) for t in fills], KLINE_STEP_MS)
                if len(candles) > 1 and candles[0][0] == before:
                    closed = candles[0]
                del candles[:-1]
            if candles:
                changed.append((symbol, closed, list(candles[0])))
        return changed

    def messages(self, header, trades: dict[str, list], candles_changed: list, subs, now: int) -> list:
        """trade and kline messages as (OTHER, stream, text, None)."""
        out = []
        for symbol, fills in trades.items():
            stream = f"{symbol.lower()}@trade"
            if stream not in subs:
                continue
            f = self.formats[symbol]
            for t in fills:
                data = {
                    "e": "trade", "E": now, "s": symbol, "t": t.trade_id, "p": f.price(t.price), "q": f.qty(t.qty),
                    "T": header.time_ms, "m": t.taker_side == Side.SELL, "h": header.height,
                }
                out.append((OTHER, stream, text(stream, data), None))
        for symbol, closed, current in candles_changed:
            stream = f"{symbol.lower()}@kline_{KLINE_INTERVAL}"
            if stream not in subs:
                continue
            m = self.markets[symbol]
            for c, final in ((closed, True), (current, False)):
                if c is not None:
                    out.append((OTHER, stream, text(stream, kline(m, c, final, now)), None))
        return out


def kline(m, c: list, final: bool, now: int) -> dict:
    return {
        "e": "kline", "E": now, "s": m.symbol,
        "k": {
            "t": c[0], "T": c[0] + KLINE_STEP_MS - 1, "s": m.symbol, "i": KLINE_INTERVAL,
            "o": render.price(m, c[1]), "c": render.price(m, c[4]), "h": render.price(m, c[2]), "l": render.price(m, c[3]),
            "v": render.qty(m, c[5]), "q": render.quote(m, c[6]), "n": c[7], "x": final,
        },
    }
