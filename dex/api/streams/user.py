"""The `user` stream: a logged-in account's executionReport and
balanceUpdate messages, from the events of its accounts in each block.

The hub collects the events of accounts that have a user stream (`mine`) in
its one pass over a block; `read` takes what the messages need from the
ledger under the same lock as the depth reads (the touched accounts'
balances, the engine's view of their orders); `messages` renders them,
preferring History's record of an order (it knows finished orders) to the
engine's view."""

from __future__ import annotations

from dex.api.streams.wire import Formats, text
from dex.core.events import BalanceChanged, OrderAccepted, OrderAmended, OrderCancelled, OrderExpired, OrderRejected, Trade
from dex.core.markets import units_to_amount

EXECUTION = {OrderAccepted: "NEW", OrderCancelled: "CANCELED", OrderExpired: "EXPIRED", OrderAmended: "AMENDMENT"}


def accounts_of(ev) -> tuple:
    if ev.__class__ is Trade:
        return (ev.maker_account, ev.taker_account)
    return (ev.account,)


def orders_of(ev) -> tuple:
    """(order id, account) pairs an event is about."""
    if ev.__class__ is Trade:
        return ((ev.maker_order_id, ev.maker_account), (ev.taker_order_id, ev.taker_account))
    if ev.__class__ in EXECUTION:
        return ((ev.order_id, ev.account),)
    return ()


class UserFeed:
    """Renders user-stream messages (Raft thread, the hub's lock held)."""

    def __init__(self, markets: dict, assets: dict, formats: dict[str, Formats], history) -> None:
        self.markets = markets
        self.assets = assets
        self.formats = formats
        self.history = history

    def read(self, view, mine: list, users) -> tuple[dict, dict]:
        """(account -> balances, order id -> the engine's view) for the
        watched accounts `mine` touches (a LedgerView: the lock is held)."""
        balances: dict[int, dict] = {}
        views: dict[int, object] = {}
        for account in {a for ev in mine for a in accounts_of(ev) if a in users}:
            balances[account] = view.balances(account)
        for ev in mine:
            for oid, account in orders_of(ev):
                if account in users and oid not in views:
                    views[oid] = view.order(account, ev.symbol, oid)
        return balances, views

    def messages(self, header, mine: list, users, balances: dict, views: dict, now: int) -> list:
        """executionReport and balanceUpdate texts as (account, text)."""
        history = self.history
        block_fills: dict[int, int] = {}
        for ev in mine:
            if ev.__class__ is Trade:
                block_fills[ev.maker_order_id] = block_fills.get(ev.maker_order_id, 0) + ev.qty
                block_fills[ev.taker_order_id] = block_fills.get(ev.taker_order_id, 0) + ev.qty
        last_event: dict[int, int] = {}
        for i, ev in enumerate(mine):
            for oid, _ in orders_of(ev):
                last_event[oid] = i
        orders: dict[int, dict] = {}  # oid -> {static fields, filled so far, final status}

        def order(oid: int, account: int, symbol: str) -> dict:
            o = orders.get(oid)
            if o is not None:
                return o
            record, view = history.order(oid), views.get(oid)
            if record is not None and record.account == account:
                o = {"side": record.side, "type": record.type, "tif": record.tif, "price": record.price, "qty": record.qty,
                     "cid": record.client_order_id, "filled_end": record.filled, "status": record.status}
            elif view is not None:
                o = {"side": view.side, "type": view.type, "tif": view.tif, "price": view.price, "qty": view.qty,
                     "cid": view.client_order_id, "filled_end": view.filled, "status": view.status}
            else:
                o = {"side": None, "type": None, "tif": None, "price": 0, "qty": 0, "cid": None, "filled_end": block_fills.get(oid, 0), "status": None}
            o["filled"] = o["filled_end"] - block_fills.get(oid, 0)
            orders[oid] = o
            return o

        out: list = []
        for i, ev in enumerate(mine):
            cls = ev.__class__
            if cls is Trade:
                m = self.markets[ev.symbol]
                for oid, account in ((ev.maker_order_id, ev.maker_account), (ev.taker_order_id, ev.taker_account)):
                    if account not in users:
                        continue
                    o = order(oid, account, ev.symbol)
                    o["filled"] += ev.qty
                    if last_event[oid] == i and o["status"] is not None:
                        status = o["status"].name
                    else:
                        status = "FILLED" if o["qty"] and o["filled"] >= o["qty"] else "PARTIALLY_FILLED"
                    out.append((account, self._report(m, ev.symbol, oid, o, "TRADE", status, header, now, trade=ev)))
            elif cls is OrderRejected:
                m = self.markets.get(ev.symbol or "")
                data = {
                    "e": "executionReport", "E": now, "s": ev.symbol, "c": ev.client_order_id, "x": "REJECTED", "X": "REJECTED",
                    "i": ev.order_id, "r": ev.reason.msg, "rc": ev.reason.code, "T": header.time_ms, "h": header.height,
                }
                out.append((ev.account, text("user", data)))
            elif cls in EXECUTION:
                m = self.markets[ev.symbol]
                o = order(ev.order_id, ev.account, ev.symbol)
                x = EXECUTION[cls]
                if x == "AMENDMENT":
                    o["price"], o["qty"] = ev.price, ev.qty
                if last_event[ev.order_id] == i and o["status"] is not None:
                    status = o["status"].name
                elif x == "NEW" or x == "AMENDMENT":
                    status = "PARTIALLY_FILLED" if o["filled"] else "NEW"
                else:
                    status = x
                out.append((ev.account, self._report(m, ev.symbol, ev.order_id, o, x, status, header, now)))
        for account, held in balances.items():
            changed: set[str] = set()
            for ev in mine:
                if account not in accounts_of(ev):
                    continue
                if ev.__class__ is BalanceChanged:
                    changed.add(ev.asset)
                elif ev.__class__ is not OrderRejected:
                    m = self.markets[ev.symbol]
                    changed.update((m.base.name, m.quote.name))
            for name in sorted(changed):
                free, locked = held[name]
                asset = self.assets[name]
                data = {"e": "balanceUpdate", "E": now, "a": name, "f": units_to_amount(asset, free), "l": units_to_amount(asset, locked), "h": header.height}
                out.append((account, text("user", data)))
        return out

    def _report(self, m, symbol: str, oid: int, o: dict, x: str, status: str, header, now: int, trade=None) -> str:
        f = self.formats[symbol]
        data = {
            "e": "executionReport", "E": now, "s": symbol, "c": o["cid"],
            "S": None if o["side"] is None else o["side"].name,
            "o": None if o["type"] is None else o["type"].name,
            "f": None if o["tif"] is None else o["tif"].name,
            "q": f.qty(o["qty"]), "p": f.price(o["price"]),
            "x": x, "X": status, "i": oid,
            "l": f.qty(trade.qty if trade is not None else 0),
            "z": f.qty(o["filled"]),
            "L": f.price(trade.price if trade is not None else 0),
            "t": trade.trade_id if trade is not None else -1,
            "T": header.time_ms, "h": header.height,
        }
        return text("user", data)
