"""A node's read model of recent orders (dex/api/history.py): the record an
accepted order gets, field by field (it is built positionally, so a field
moved in OrderRecord or in OrderAccepted must show here), and what fills and
cancels do to it."""

from __future__ import annotations

from types import SimpleNamespace

from dex.api.history import History, OrderRecord
from dex.core.events import OrderAccepted, OrderCancelled, Trade
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
        filled=0, filled_quote_units=0, status=OrderStatus.NEW, fills=[],
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
    assert (record.filled, record.filled_quote_units, record.fills) == (2, 10 * 2 * 7, [(9, 10, 2, 4, True)])
    assert (record.status, record.time_ms, record.update_ms, record.height) == (OrderStatus.CANCELED, 100, 300, 1)
