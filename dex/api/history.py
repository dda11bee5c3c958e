"""A node's read model of recent orders and trades, built from applied blocks.

The engine keeps live orders (and finished ones with a client id, for its
dedup window); queries about any recent order, fills included, come from
here. It is fed by every block this node applies, after first reading the
tail of the node's own chain at start-up, and skips blocks it has already
seen, so journal replay after a restart does not count anything twice.

Bounded: the most recent ORDERS_MAX orders and TRADES_MAX trades per market.
The full history lives in the chain and in the trade store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from dex.core.events import (
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    Trade,
)
from dex.core.types import OrderStatus, OrderType, Side, TimeInForce
from dex.ledger.codec import decode_events, decode_proposal

ORDERS_MAX = 200_000
TRADES_PER_MARKET_MAX = 10_000
CATCH_UP_BLOCKS_MAX = 50_000


@dataclass(slots=True)
class OrderRecord:
    """An order as the history knows it: a copy, made when it is asked for."""

    order_id: int
    account: int
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price: int
    qty: int  # total lots (0 for a market buy by quote)
    quote_qty: int
    client_order_id: str | None
    time_ms: int
    update_ms: int
    height: int
    filled: int = 0
    filled_quote_units: int = 0  # sum of price x lots x notional_units
    status: OrderStatus = OrderStatus.NEW


# What the history keeps of an order, made on every node for every accepted
# order: a list [its OrderAccepted, block time, height, update_ms, filled,
# filled_quote_units, status, price, qty]. Making an OrderRecord there (a
# dataclass call of 13 arguments, ~0.6 µs against ~0.05 for the list) was a
# quarter of this read model's CPU (bench/read_model.py: 2.0 -> 1.5-1.7 µs an
# order). The price: the event is kept with the list, ~100 bytes an order
# more than the record's fields (~20 MB at ORDERS_MAX). `History.order`
# copies one into an OrderRecord under the lock, so a reader never sees one
# half updated (the Raft thread changed the records readers were handed).
_EV, _TIME, _HEIGHT, _UPDATE, _FILLED_LOTS, _FILLED_QUOTE, _STATUS, _PRICE, _QTY = range(9)

# Enum members read once: `OrderStatus.FILLED` is an attribute lookup on the
# enum's metaclass, ~70 ns on CPython 3.11, where a global is ~5.
_NEW = OrderStatus.NEW
_FILLED = OrderStatus.FILLED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_CANCELED = OrderStatus.CANCELED
_EXPIRED = OrderStatus.EXPIRED
_MARKET = OrderType.MARKET


def _record(rec: list | None) -> OrderRecord | None:
    """The OrderRecord of a kept order (its list), or None."""
    if rec is None:
        return None
    ev = rec[_EV]
    return OrderRecord(
        ev.order_id, ev.account, ev.symbol, ev.side, ev.type, ev.tif, rec[_PRICE], rec[_QTY], ev.quote_qty,
        ev.client_order_id, rec[_TIME], rec[_UPDATE], rec[_HEIGHT], rec[_FILLED_LOTS], rec[_FILLED_QUOTE], rec[_STATUS],
    )


class History:
    def __init__(self, markets) -> None:
        self._lock = threading.Lock()
        self._orders: OrderedDict[int, list] = OrderedDict()  # order id -> [_EV, ..., _QTY]
        self._trades: dict[str, deque] = {m.symbol: deque(maxlen=TRADES_PER_MARKET_MAX) for m in markets.markets}
        self._notional = {m.symbol: m.notional_units for m in markets.markets}
        self.height = 0

    # ------------------------------------------------------------- feeding

    def catch_up(self, chain) -> None:
        """Read the tail of the chain (called before Raft starts applying)."""
        start = max(chain.base_height + 1, chain.height - CATCH_UP_BLOCKS_MAX + 1)
        for block in chain.blocks(start, chain.height + 1):
            proposal, _ = decode_proposal(block.proposal)
            results = []
            at = 0
            for _ in proposal.commands:
                events, at = decode_events(block.results, at)
                results.append(events)
            self.on_block(block.header, block.hash, proposal, results)

    def on_block(self, header, block_hash, proposal, results) -> None:
        if header.height <= self.height:
            return  # replayed from the journal: already seen
        # Every event of every block on every node: one loop, class tests in
        # order of frequency, no call an event (docs/BENCHMARKS.md, "The
        # read models' cost").
        t = header.time_ms
        height = header.height
        orders = self._orders
        get = orders.get
        trades = self._trades
        notional_of = self._notional
        with self._lock:
            for events in results:
                for ev in events:
                    cls = ev.__class__
                    if cls is OrderAccepted:
                        orders[ev.order_id] = [ev, t, height, t, 0, 0, _NEW, ev.price, ev.qty]
                        if len(orders) > ORDERS_MAX:
                            orders.popitem(last=False)
                    elif cls is Trade:
                        trades[ev.symbol].append((ev, t))
                        qty = ev.qty
                        notional = ev.price * qty * notional_of[ev.symbol]
                        for rec in (get(ev.maker_order_id), get(ev.taker_order_id)):
                            if rec is None:
                                continue
                            filled = rec[_FILLED_LOTS] = rec[_FILLED_LOTS] + qty
                            rec[_FILLED_QUOTE] += notional
                            rec[_UPDATE] = t
                            rec[_STATUS] = _FILLED if rec[_QTY] and filled >= rec[_QTY] else _PARTIALLY_FILLED
                    elif cls is OrderCancelled or cls is OrderExpired:
                        rec = get(ev.order_id)
                        if rec is not None:
                            rec[_STATUS] = _CANCELED if cls is OrderCancelled else _EXPIRED
                            rec[_UPDATE] = t
                    elif cls is OrderAmended:
                        rec = get(ev.order_id)
                        if rec is not None:
                            rec[_PRICE] = ev.price
                            rec[_QTY] = ev.qty
                            rec[_UPDATE] = t
                first = events[0] if events else None
                if first.__class__ is OrderAccepted and first.type == _MARKET:
                    # A market order never rests: unless it expired, it is done.
                    rec = get(first.order_id)
                    if rec is not None and rec[_STATUS] != _EXPIRED:
                        rec[_STATUS] = _FILLED
            self.height = height

    # ------------------------------------------------------------- queries

    def order(self, order_id: int) -> OrderRecord | None:
        """A copy of what the history knows of the order, or None."""
        with self._lock:
            return _record(self._orders.get(order_id))

    def orders(self, order_ids) -> list[OrderRecord | None]:
        """`order` of each id, under one hold of the lock (an answer to a
        cancel of all of an account's orders lists every one)."""
        with self._lock:
            get = self._orders.get
            return [_record(get(order_id)) for order_id in order_ids]

    def trades(self, symbol: str, limit: int) -> list:
        with self._lock:
            trades = self._trades.get(symbol)
            return [] if trades is None else list(trades)[-limit:]

    def account_trades(self, account: int, symbol: str, limit: int) -> list:
        """The account's most recent trades in `symbol` (at most `limit`),
        oldest first, as (trade, time_ms, is_maker): one row per side the
        account took in the trade."""
        rows: list = []
        with self._lock:
            trades = self._trades.get(symbol)
            if trades is None or limit <= 0:
                return rows
            for ev, t in reversed(trades):
                if ev.taker_account == account:
                    rows.append((ev, t, False))
                if ev.maker_account == account:
                    rows.append((ev, t, True))
                if len(rows) >= limit:
                    break
        rows = rows[:limit]
        rows.reverse()
        return rows
