"""Rows for the store from stored blocks: pure functions, no database.

`decode_block` reads a chain's StoredBlock into its header, hash and events
per command (the results alone: the header says how many commands there are,
so the proposal need not be decoded). `BatchRows` folds consecutive blocks
into the rows one transaction writes: a row per block and per trade, a row
per order accepted in the batch (with where it stands at the batch's end),
and one update per order accepted earlier that the batch touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dex.core.events import OrderAccepted, OrderAmended, OrderCancelled, OrderExpired, Trade
from dex.core.types import OrderType
from dex.ledger.codec import decode_events
from dex.store.models import signed64

TRADE_COLUMNS = (
    "trade_id", "height", "block_hash", "time_ms", "symbol", "price_ticks", "qty_lots", "price", "qty", "taker_side",
    "maker_order_id", "taker_order_id", "maker_account", "taker_account", "maker_fee_units", "taker_fee_units",
)
ORDER_COLUMNS = (
    "order_id", "account", "symbol", "side", "type", "tif", "price_ticks", "qty_lots", "quote_qty_units", "client_order_id",
    "status", "filled_lots", "height", "updated_height", "time_ms", "update_ms",
)
# Positions in an order row (a list, updated in place while a batch is folded).
O_PRICE, O_QTY, O_CID, O_STATUS, O_FILLED, O_UPDATED_HEIGHT, O_UPDATE_MS = 6, 7, 9, 10, 11, 13, 15
assert ORDER_COLUMNS[O_PRICE] == "price_ticks" and ORDER_COLUMNS[O_QTY] == "qty_lots" and ORDER_COLUMNS[O_CID] == "client_order_id"
assert ORDER_COLUMNS[O_STATUS] == "status" and ORDER_COLUMNS[O_FILLED] == "filled_lots"
assert ORDER_COLUMNS[O_UPDATED_HEIGHT] == "updated_height" and ORDER_COLUMNS[O_UPDATE_MS] == "update_ms"

_SIDE = ("BUY", "SELL")
_TYPE = ("LIMIT", "MARKET")
_TIF = ("GTC", "IOC", "FOK")


def decode_block(block) -> list[list]:
    """The events of each command of a StoredBlock."""
    results = []
    at = 0
    buf = block.results
    for _ in range(block.header.commands_count):
        events, at = decode_events(buf, at)
        results.append(events)
    assert at == len(buf), f"block {block.header.height}: {len(buf) - at} bytes after the last command's events"
    return results


def trade_key(ev: Trade) -> tuple:
    """The canonical tuple of a trade, as compared between ledger and store."""
    return (
        ev.trade_id, ev.symbol, ev.price, ev.qty, _SIDE[ev.taker_side], ev.maker_order_id, ev.taker_order_id,
        signed64(ev.maker_account), signed64(ev.taker_account), ev.maker_fee, ev.taker_fee,
    )


@dataclass(slots=True)
class _Touch:
    """What a batch did to an order accepted before it."""

    filled_delta: int = 0
    final: str | None = None  # CANCELED / EXPIRED
    price: int | None = None  # after an amend
    qty: int | None = None
    height: int = 0
    time_ms: int = 0


@dataclass(slots=True)
class BatchRows:
    markets: dict  # symbol -> Market
    blocks: list = field(default_factory=list)  # dicts
    trades: list = field(default_factory=list)  # tuples in TRADE_COLUMNS order
    new_orders: dict = field(default_factory=dict)  # order_id -> list in ORDER_COLUMNS order
    touched: dict = field(default_factory=dict)  # order_id -> _Touch
    first_height: int = 0
    last_height: int = 0
    last_hash: str = ""

    def add(self, block, results: list[list]) -> None:
        h = block.header
        assert not self.blocks or h.height == self.last_height + 1, (h.height, self.last_height)
        height, t, block_hash = h.height, h.time_ms, block.hash.hex()
        trades_before = len(self.trades)
        for events in results:
            for ev in events:
                cls = ev.__class__
                if cls is Trade:
                    self._trade(ev, height, block_hash, t)
                elif cls is OrderAccepted:
                    self.new_orders[ev.order_id] = [
                        ev.order_id, signed64(ev.account), ev.symbol, _SIDE[ev.side], _TYPE[ev.type], _TIF[ev.tif],
                        ev.price, ev.qty, ev.quote_qty, ev.client_order_id, "NEW", 0, height, height, t, t,
                    ]
                elif cls is OrderCancelled or cls is OrderExpired:
                    self._stop(ev.order_id, "CANCELED" if cls is OrderCancelled else "EXPIRED", height, t)
                elif cls is OrderAmended:
                    self._amend(ev, height, t)
            first = events[0] if events else None
            if first.__class__ is OrderAccepted and first.type == OrderType.MARKET:
                row = self.new_orders[first.order_id]  # a market order never rests: unless it expired, it is done
                if row[O_STATUS] != "EXPIRED":
                    row[O_STATUS] = "FILLED"
        self.blocks.append({
            "height": height, "hash": block_hash, "parent": h.parent.hex(), "time_ms": t, "leader": h.leader,
            "term": h.term, "commands_count": h.commands_count, "trades_count": len(self.trades) - trades_before,
            "state_hash": h.state_hash.hex(),
        })
        if not self.first_height:
            self.first_height = height
        self.last_height, self.last_hash = height, block_hash

    def _trade(self, ev: Trade, height: int, block_hash: str, t: int) -> None:
        m = self.markets[ev.symbol]
        self.trades.append((
            ev.trade_id, height, block_hash, t, ev.symbol, ev.price, ev.qty, ev.price * m.tick_size, ev.qty * m.step_size,
            _SIDE[ev.taker_side], ev.maker_order_id, ev.taker_order_id, signed64(ev.maker_account), signed64(ev.taker_account),
            ev.maker_fee, ev.taker_fee,
        ))
        for oid in (ev.maker_order_id, ev.taker_order_id):
            row = self.new_orders.get(oid)
            if row is not None:
                row[O_FILLED] += ev.qty
                row[O_STATUS] = "FILLED" if row[O_QTY] and row[O_FILLED] >= row[O_QTY] else "PARTIALLY_FILLED"
                row[O_UPDATED_HEIGHT], row[O_UPDATE_MS] = height, t
            else:
                touch = self.touched.setdefault(oid, _Touch())
                touch.filled_delta += ev.qty
                touch.height, touch.time_ms = height, t

    def _stop(self, order_id: int, status: str, height: int, t: int) -> None:
        row = self.new_orders.get(order_id)
        if row is not None:
            row[O_STATUS] = status
            row[O_UPDATED_HEIGHT], row[O_UPDATE_MS] = height, t
            return
        touch = self.touched.setdefault(order_id, _Touch())
        touch.final = status
        touch.height, touch.time_ms = height, t

    def _amend(self, ev: OrderAmended, height: int, t: int) -> None:
        row = self.new_orders.get(ev.order_id)
        if row is not None:
            row[O_PRICE], row[O_QTY] = ev.price, ev.qty
            row[O_UPDATED_HEIGHT], row[O_UPDATE_MS] = height, t
            return
        touch = self.touched.setdefault(ev.order_id, _Touch())
        touch.price, touch.qty = ev.price, ev.qty
        touch.height, touch.time_ms = height, t

    def stamp(self, written_ms: int) -> None:
        """Set the blocks' written_ms (the writer's clock, just before commit)."""
        for row in self.blocks:
            row["written_ms"] = written_ms

    def order_updates(self) -> list[dict]:
        return [
            {"oid": oid, "d": u.filled_delta, "final": u.final, "p": u.price, "q": u.qty, "h": u.height, "t": u.time_ms}
            for oid, u in self.touched.items()
        ]
