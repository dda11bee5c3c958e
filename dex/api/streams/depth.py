"""The `<symbol>@depth` streams: which price levels a block changed, their
new totals, and the snapshot a subscription starts from.

A cancel's event does not say its price, so the feed keeps an index of where
each live order rests (`resting`: order id -> (symbol, is bid, price)),
rebuilt from the ledger when the hub attaches or a snapshot was loaded, and
kept up from every block's events (the hub's one pass over them) and the
orders that block may have left resting (read through the port).

Ordering. Update ids are block heights. `last_u[symbol]` (Raft thread) is
the last height that changed the market, so a block's diff has U = that + 1
and u = its height. A subscription takes its snapshot on the event loop
through the SnapshotCache, which reads the levels (or checks that its
cached text is of the current height) and the applied height L under one
lock, in the same step that registers it, so every diff with u <= L is
dropped for it and the first diff with u > L follows the snapshot with
nothing missing; its U is rewritten to L + 1 for that connection (the blocks
between touched nothing).
"""

from __future__ import annotations

from dex.api import render
from dex.api.streams.wire import DEPTH, DEPTH_SNAPSHOT_LEVELS_MAX, Formats, now_ms, text


class DepthFeed:
    """Raft-thread state of the depth streams (the hub's lock is held)."""

    def __init__(self, markets: dict, formats: dict[str, Formats]) -> None:
        self.markets = markets
        self.formats = formats
        self.resting: dict[int, tuple[str, bool, int]] = {}  # live order id -> (symbol, is bid, price)
        self.last_u: dict[str, int] = {}

    def start(self, view) -> None:
        """Index the book as it stands (a LedgerView: the lock is held)."""
        self.index(view)
        for symbol in self.markets:
            self.last_u[symbol] = view.height

    def index(self, view) -> None:
        """Rebuild the index of resting orders from the ledger."""
        self.resting = {
            oid: (symbol, is_bid, price)
            for symbol in self.markets
            for oid, is_bid, price in view.resting_orders(symbol)
        }

    def settle(self, view, seen: dict[int, int], touched: dict[str, set]) -> None:
        """After a block (lock held): the orders it may have left resting
        (`seen`: order id -> account) are indexed where they rest now, or
        dropped; their levels join `touched` (symbol -> {(is bid, price)})."""
        resting = self.resting
        for oid, account in seen.items():
            where = view.resting_order(account, oid)
            if where is None:
                resting.pop(oid, None)
                continue
            resting[oid] = where
            touched.setdefault(where[0], set()).add(where[1:])

    def advance(self, height: int, touched: dict[str, set]) -> dict[str, int]:
        """Move the touched markets' last update id to `height`; the previous ones."""
        last_u = self.last_u
        previous = {symbol: last_u[symbol] for symbol in touched}
        for symbol in touched:
            last_u[symbol] = height
        return previous

    def messages(self, height: int, levels: dict[str, tuple[list, list]], previous: dict[str, int], subs, now: int) -> list:
        """depthUpdate messages as (DEPTH, stream, text, (symbol, data))."""
        out = []
        for symbol, (bids, asks) in levels.items():
            stream = f"{symbol.lower()}@depth"
            if stream not in subs:
                continue
            f = self.formats[symbol]
            data = {
                "e": "depthUpdate", "E": now, "s": symbol, "U": previous[symbol] + 1, "u": height,
                "b": [[f.price(p), f.qty(q)] for p, q in bids],
                "a": [[f.price(p), f.qty(q)] for p, q in asks],
            }
            out.append((DEPTH, stream, text(stream, data), (symbol, data)))
        return out


class SnapshotCache:
    """Depth snapshots rendered once per (market, applied height) and shared
    by every subscription at that height (event loop only; its "E" is the
    time it was rendered). The check that the cached one is current reads
    the applied height under the same lock as the levels, so a cached text
    is served only while it is exactly the book's state, and the ordering
    argument above holds unchanged. One entry per market: bounded."""

    def __init__(self, port, markets: dict) -> None:
        self.port = port
        self.markets = markets
        self.cached: dict[str, tuple[int, str]] = {}  # symbol -> (height, text)
        self.renders = 0

    def get(self, symbol: str) -> tuple[int, str]:
        """(height, text) of the snapshot of `symbol` at the applied height."""
        market = self.markets[symbol]
        found = self.cached.get(symbol)
        with self.port.view() as view:  # the lock: the height cannot move under us
            if found is not None and found[0] == view.height:
                return found
            bids, asks = view.depth(symbol, DEPTH_SNAPSHOT_LEVELS_MAX)
            height = view.height
        found = self.cached[symbol] = (height, _render(market, bids, asks, height))
        self.renders += 1
        return found


def _render(market, bids: list, asks: list, height: int) -> str:
    data = {
        "e": "depthSnapshot", "E": now_ms(), "s": market.symbol, "lastUpdateId": height,
        "bids": [[render.price(market, p), render.qty(market, q)] for p, q in bids],
        "asks": [[render.price(market, p), render.qty(market, q)] for p, q in asks],
    }
    return text(f"{market.symbol.lower()}@depth", data)
