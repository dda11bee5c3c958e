"""A node's read model of recent orders (dex/api/history.py): the record an
accepted order gets, field by field (it is built positionally, so a field
moved in OrderRecord or in OrderAccepted must show here), and what fills and
cancels do to it."""

from __future__ import annotations

from types import SimpleNamespace

from dex.api.history import History, OrderRecord
from dex.core.events import OrderAccepted, OrderAmended, OrderCancelled, OrderExpired, Trade
from dex.core.reasons import StopReason
from dex.core.types import OrderStatus, OrderType, Side, TimeInForce

MARKETS = SimpleNamespace(markets=[SimpleNamespace(symbol="BTCUSDT", notional_units=7)])


def _header(height: int, time_ms: int):
    return SimpleNamespace(height=height, time_ms=time_ms)


def test_an_accepted_order_gets_a_record_of_every_field():
    history = History(MARKETS)
    ev = OrderAccepted(order_id=11, account=22, symbol="BTCUSDT", side=Side.SELL, type=OrderType.LIMIT,
                       tif=TimeInForce.IOC, price=33, qty=44, quote_qty=55, client_order_id="c-66")
    history.on_block(_header(77, 88), b"", None, [[ev]])

    assert history.order(11) == OrderRecord(
        order_id=11, account=22, symbol="BTCUSDT", side=Side.SELL, type=OrderType.LIMIT, tif=TimeInForce.IOC,
        price=33, qty=44, quote_qty=55, client_order_id="c-66", time_ms=88, update_ms=88, height=77,
        filled=0, filled_quote_units=0, status=OrderStatus.NEW,
    )


def test_fills_and_a_cancel_update_the_record():
    history = History(MARKETS)
    accepted = OrderAccepted(order_id=1, account=2, symbol="BTCUSDT", side=Side.BUY, type=OrderType.LIMIT,
                             tif=TimeInForce.GTC, price=10, qty=5, quote_qty=0, client_order_id=None)
    history.on_block(_header(1, 100), b"", None, [[accepted]])
    fill = Trade(trade_id=9, symbol="BTCUSDT", price=10, qty=2, taker_side=Side.SELL, maker_order_id=1, taker_order_id=3,
                 maker_account=2, taker_account=5, maker_fee=4, taker_fee=6)
    history.on_block(_header(2, 200), b"", None, [[fill]])
    cancelled = OrderCancelled(order_id=1, account=2, symbol="BTCUSDT", qty=3, reason=StopReason.USER)
    history.on_block(_header(3, 300), b"", None, [[cancelled]])

    record = history.order(1)
    assert (record.filled, record.filled_quote_units) == (2, 10 * 2 * 7)
    assert (record.status, record.time_ms, record.update_ms, record.height) == (OrderStatus.CANCELED, 100, 300, 1)


def _accepted(order_id: int, account: int, *, type_: OrderType = OrderType.LIMIT, qty: int = 5, price: int = 10):
    return OrderAccepted(order_id=order_id, account=account, symbol="BTCUSDT", side=Side.BUY, type=type_,
                         tif=TimeInForce.GTC, price=price, qty=qty, quote_qty=0, client_order_id=None)


def _trade(trade_id: int, maker: int, taker: int, qty: int, price: int = 10):
    return Trade(trade_id=trade_id, symbol="BTCUSDT", price=price, qty=qty, taker_side=Side.SELL, maker_order_id=maker,
                 taker_order_id=taker, maker_account=2, taker_account=5, maker_fee=0, taker_fee=0)


def test_a_trade_updates_maker_and_taker_and_says_filled_only_when_all_lots_are():
    history = History(MARKETS)
    history.on_block(_header(1, 100), b"", None, [[_accepted(1, 2, qty=5)]])
    # The taker (order 3, 4 lots) takes 4 of the maker's 5: the taker is filled, the maker partly.
    history.on_block(_header(2, 200), b"", None, [[_accepted(3, 5, qty=4), _trade(9, maker=1, taker=3, qty=4, price=11)]])
    maker, taker = history.order(1), history.order(3)
    assert (maker.filled, maker.status, maker.update_ms) == (4, OrderStatus.PARTIALLY_FILLED, 200)
    assert (taker.filled, taker.status, taker.filled_quote_units) == (4, OrderStatus.FILLED, 11 * 4 * 7)
    history.on_block(_header(3, 300), b"", None, [[_accepted(4, 5, qty=1), _trade(10, maker=1, taker=4, qty=1)]])
    assert (history.order(1).filled, history.order(1).status) == (5, OrderStatus.FILLED)
    assert [t.trade_id for t, _ in history.trades("BTCUSDT", 10)] == [9, 10]


def test_a_market_order_is_done_unless_it_expired_and_an_amend_and_an_expiry_show():
    history = History(MARKETS)
    expired = OrderExpired(order_id=8, account=5, symbol="BTCUSDT", qty=3, reason=StopReason.IOC)
    history.on_block(_header(1, 100), b"", None, [
        [_accepted(7, 5, type_=OrderType.MARKET, qty=0)],  # a market buy by quote amount: no fill event here
        [_accepted(8, 5, type_=OrderType.MARKET, qty=3), expired],
        [_accepted(9, 5)],
    ])
    amended = OrderAmended(order_id=9, account=5, symbol="BTCUSDT", price=12, qty=3, priority_kept=True)
    history.on_block(_header(2, 200), b"", None, [[amended]])
    assert history.order(7).status == OrderStatus.FILLED
    assert history.order(8).status == OrderStatus.EXPIRED
    assert (history.order(9).price, history.order(9).qty, history.order(9).update_ms, history.order(9).status) == (12, 3, 200, OrderStatus.NEW)


def test_a_block_seen_before_changes_nothing_and_old_orders_are_dropped(monkeypatch):
    monkeypatch.setattr("dex.api.history.ORDERS_MAX", 2)
    history = History(MARKETS)
    history.on_block(_header(1, 100), b"", None, [[_accepted(1, 2)], [_accepted(2, 2)]])
    history.on_block(_header(1, 100), b"", None, [[OrderCancelled(order_id=1, account=2, symbol="BTCUSDT", qty=5, reason=StopReason.USER)]])
    assert history.order(1).status == OrderStatus.NEW  # height 1 again: a replay, skipped
    history.on_block(_header(2, 200), b"", None, [[_accepted(3, 2)]])
    assert history.order(1) is None and history.order(2) is not None and history.order(3) is not None



def test_orders_gives_each_ids_record_or_none_as_copies():
    history = History(MARKETS)
    accepted = [OrderAccepted(order_id=i, account=2, symbol="BTCUSDT", side=Side.BUY, type=OrderType.LIMIT,
                              tif=TimeInForce.GTC, price=10, qty=5, quote_qty=0, client_order_id=None) for i in (1, 2)]
    history.on_block(_header(1, 100), b"", None, [[accepted[0]], [accepted[1]]])

    records = history.orders([2, 99, 1])

    assert [None if r is None else r.order_id for r in records] == [2, None, 1]
    assert records[0] == history.order(2)
    records[0].status = OrderStatus.CANCELED  # a copy: the history's own record is not touched
    assert history.order(2).status == OrderStatus.NEW
