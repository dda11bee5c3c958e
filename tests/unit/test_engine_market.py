"""Market orders: by base quantity (buy or sell) and market buys by quote
amount. They never rest; what they cannot fill expires."""

import pytest

from dex.core.events import OrderAccepted, OrderExpired
from dex.core.reasons import StopReason
from dex.core.types import OrderStatus
from dex.engine import engine as engine_module
from tests import kit
from tests.kit import ALICE, BOB, BUY, CAROL, DAVE, IOC, MARKET, SELL, cost, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")


def _status_of_cid(ex, account, cid):
    return ex.status(account, client_order_id=cid)


# ---------------------------------------------------------------- by qty


def test_market_accepted_event_has_ioc_and_no_price(ex):
    ex.sell(BOB, price=P, qty=Q)

    events = ex.market_buy(ALICE, qty=Q)

    assert events[0] == OrderAccepted(2, ALICE, "BTCUSDT", BUY, MARKET, IOC, 0, Q, 0, None)


def test_market_buy_walks_the_asks_at_maker_prices(ex):
    ex.sell(BOB, price=P, qty=600)
    ex.sell(CAROL, price=P + 100, qty=600)

    events = ex.market_buy(ALICE, qty=Q)

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 600), (P + 100, 400)]
    assert not kit.of_type(events, OrderExpired)


def test_market_sell_walks_the_bids_at_maker_prices(ex):
    ex.buy(BOB, price=P, qty=600)
    ex.buy(CAROL, price=P - 100, qty=600)

    events = ex.market_sell(ALICE, qty=Q)

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 600), (P - 100, 400)]


def test_market_order_on_empty_book_expires_whole(ex):
    events = ex.market_sell(ALICE, qty=Q, client_order_id="m1")

    oid = kit.accepted_id(events)
    assert events[1:] == [OrderExpired(oid, ALICE, "BTCUSDT", Q, StopReason.IOC)]
    assert _status_of_cid(ex, ALICE, "m1") == OrderStatus.EXPIRED


def test_market_remainder_expires_when_book_runs_out(ex):
    ex.sell(BOB, price=P, qty=300)

    events = ex.market_buy(ALICE, qty=Q)

    assert kit.kinds(events) == ["OrderAccepted", "Trade", "OrderExpired"]
    assert events[-1].qty == Q - 300 and events[-1].reason == StopReason.IOC
    assert ex.depth() == ([], [])


def test_market_order_never_rests_or_locks(ex):
    ex.sell(BOB, price=P, qty=300)

    ex.market_buy(ALICE, qty=Q)

    assert ex.engine.open_orders(ALICE) == []
    assert ex.locked(ALICE, "USDT") == 0


def test_filled_market_order_with_client_id_is_filled(ex):
    ex.sell(BOB, price=P, qty=Q)

    ex.market_buy(ALICE, qty=Q, client_order_id="m1")

    assert _status_of_cid(ex, ALICE, "m1") == OrderStatus.FILLED


def test_market_buy_by_qty_spends_no_more_than_free_quote(ex):
    ex.sell(BOB, price=P, qty=Q)
    budget = cost(P, 250) + cost(P, 1) // 2  # 250.5 lots' worth
    ex.deposit(DAVE, "USDT", budget)

    events = ex.market_buy(DAVE, qty=Q)

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 250)]
    assert events[-1].qty == Q - 250 and events[-1].reason == StopReason.NO_BALANCE
    assert ex.free(DAVE, "USDT") == cost(P, 1) // 2


@pytest.mark.parametrize("trades_max", [None, 2], ids=["usual-bound", "the-cut-short-fill-is-the-last-allowed"])
def test_market_buy_by_qty_budget_runs_out_on_a_later_level(ex, monkeypatch, trades_max):
    """With a bound of 2 fills, the fill the budget cuts short is also the
    taker's last allowed one: the rest still expires for want of balance, what
    stopped it (regression: it said TRADES_MAX; found by the small-bounds
    model test)."""
    if trades_max is not None:
        monkeypatch.setattr(engine_module, "TRADES_MAX", trades_max)
    ex.sell(BOB, price=P, qty=100)
    ex.sell(CAROL, price=P + 100, qty=Q)
    ex.deposit(DAVE, "USDT", cost(P, 100) + cost(P + 100, 50) + 7)

    events = ex.market_buy(DAVE, qty=Q)

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 100), (P + 100, 50)]
    assert events[-1].qty == Q - 150 and events[-1].reason == StopReason.NO_BALANCE
    assert ex.free(DAVE, "USDT") == 7


def test_market_buy_by_qty_that_cannot_afford_one_lot_expires_unfilled(ex):
    ex.sell(BOB, price=P, qty=Q)
    ex.deposit(DAVE, "USDT", cost(P, 1) - 1)

    events = ex.market_buy(DAVE, qty=Q)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].reason == StopReason.NO_BALANCE
    assert ex.free(DAVE, "USDT") == cost(P, 1) - 1


# -------------------------------------------------------------- by quote


def test_market_buy_by_quote_spending_budget_exactly_is_filled(ex):
    ex.sell(BOB, price=P, qty=Q)

    events = ex.market_buy(ALICE, quote_qty=cost(P, 400), client_order_id="q1")

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 400)]
    assert not kit.of_type(events, OrderExpired)
    assert _status_of_cid(ex, ALICE, "q1") == OrderStatus.FILLED


def test_market_buy_by_quote_buys_whole_lots_per_level(ex):
    ex.sell(BOB, price=P, qty=100)
    ex.sell(CAROL, price=P + 100, qty=Q)
    budget = cost(P, 100) + cost(P + 100, 30) + cost(P + 100, 1) - 1
    usdt_before = ex.free(ALICE, "USDT")

    events = ex.market_buy(ALICE, quote_qty=budget)

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 100), (P + 100, 30)]
    assert ex.free(ALICE, "USDT") == usdt_before - cost(P, 100) - cost(P + 100, 30)


def test_market_buy_by_quote_with_budget_left_below_one_lot_is_filled(ex):
    ex.sell(BOB, price=P, qty=10)
    ex.sell(CAROL, price=P + 1000, qty=10)

    events = ex.market_buy(ALICE, quote_qty=cost(P, 10) + cost(P + 1000, 1) - 1, client_order_id="q1")

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 10)]
    assert not kit.of_type(events, OrderExpired)
    assert _status_of_cid(ex, ALICE, "q1") == OrderStatus.FILLED


def test_market_buy_by_quote_expires_when_book_runs_out_first(ex):
    ex.sell(BOB, price=P, qty=10)

    events = ex.market_buy(ALICE, quote_qty=cost(P, 20), client_order_id="q1")

    oid = kit.accepted_id(events)
    assert [t.qty for t in kit.trades(events)] == [10]
    assert events[-1] == OrderExpired(oid, ALICE, "BTCUSDT", 0, StopReason.IOC)
    assert _status_of_cid(ex, ALICE, "q1") == OrderStatus.EXPIRED


def test_market_buy_by_quote_that_buys_nothing_expires(ex):
    ex.sell(BOB, price=ticks("200000"), qty=Q)  # one lot costs 2 USDT

    events = ex.market_buy(ALICE, quote_qty=kit.units("1.5", "USDT"))

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].qty == 0 and events[-1].reason == StopReason.NO_BALANCE


def test_market_buy_by_quote_on_empty_book_expires(ex):
    events = ex.market_buy(ALICE, quote_qty=kit.units("100", "USDT"))

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].qty == 0 and events[-1].reason == StopReason.IOC


def test_market_buy_by_quote_accepted_event_carries_the_quote_amount(ex):
    events = ex.market_buy(ALICE, quote_qty=kit.units("100", "USDT"))

    assert events[0] == OrderAccepted(1, ALICE, "BTCUSDT", BUY, MARKET, IOC, 0, 0, kit.units("100", "USDT"), None)


def test_market_buy_by_quote_fees_are_charged_in_base(ex):
    ex.sell(BOB, price=P, qty=2 * Q)

    events = ex.market_buy(ALICE, quote_qty=cost(P, 1_237))

    trade = kit.trades(events)[0]
    assert trade.taker_fee == 1_237_000 * 5 // 10_000
    assert trade.maker_fee == cost(P, 1_237) * 2 // 10_000


def test_market_sell_remainder_expires_when_bids_run_out(ex):
    ex.buy(BOB, price=P, qty=100)

    events = ex.market_sell(ALICE, qty=Q)

    assert events[-1].qty == Q - 100 and events[-1].reason == StopReason.IOC
    assert kit.trades(events)[0].taker_side == SELL
