"""Cancelling one order (by id or client order id) and cancelling all."""

import pytest

from dex.core.events import OrderCancelled, OrderRejected
from dex.core.reasons import Reason, StopReason
from dex.core.types import OrderStatus
from tests import kit
from tests.kit import ALICE, BOB, CAROL, IOC, cost, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")
ETH_P = ticks("3000", "ETHUSDT")
ETH_Q = lots("1", "ETHUSDT")


def _assert_rejected_unchanged(ex, command_helper, reason):
    before = ex.state_hash()

    events = command_helper()

    assert kit.rejection(events) == reason
    assert ex.state_hash() == before


# ------------------------------------------------------------------ cancel


def test_cancel_by_id_removes_the_order_and_releases_its_lock(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    usdt_before = ex.free(ALICE, "USDT")

    events = ex.cancel(ALICE, order_id=oid)

    assert events == [OrderCancelled(oid, ALICE, "BTCUSDT", Q, StopReason.USER)]
    assert ex.depth() == ([], [])
    assert ex.locked(ALICE, "USDT") == 0
    assert ex.free(ALICE, "USDT") == usdt_before + cost(P, Q)


def test_cancel_by_client_order_id(ex):
    oid = kit.accepted_id(ex.sell(ALICE, price=P, qty=Q, client_order_id="sell-1"))

    events = ex.cancel(ALICE, client_order_id="sell-1")

    assert events == [OrderCancelled(oid, ALICE, "BTCUSDT", Q, StopReason.USER)]
    assert ex.locked(ALICE, "BTC") == 0
    assert ex.status(ALICE, client_order_id="sell-1") == OrderStatus.CANCELED


def test_cancel_of_partly_filled_order_releases_only_its_open_part(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    ex.sell(BOB, price=P, qty=300)

    events = ex.cancel(ALICE, order_id=oid)

    assert events[0].qty == Q - 300
    assert ex.locked(ALICE, "USDT") == 0


def test_cancel_of_front_order_lets_the_next_in_line_fill_first(ex):
    front = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    nxt = kit.accepted_id(ex.sell(CAROL, price=P, qty=Q))
    ex.cancel(BOB, order_id=front)

    events = ex.buy(ALICE, price=P, qty=Q)

    assert [t.maker_order_id for t in kit.trades(events)] == [nxt]


def test_cancel_of_another_accounts_order_is_unknown_and_changes_nothing(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q, client_order_id="mine"))

    _assert_rejected_unchanged(ex, lambda: ex.cancel(BOB, order_id=oid), Reason.UNKNOWN_ORDER)


def test_cancel_of_another_accounts_client_order_id_is_unknown(ex):
    ex.buy(ALICE, price=P, qty=Q, client_order_id="mine")

    _assert_rejected_unchanged(ex, lambda: ex.cancel(BOB, client_order_id="mine"), Reason.UNKNOWN_ORDER)


def test_cancel_in_the_wrong_symbol_is_unknown(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE, order_id=oid, symbol="ETHUSDT"), Reason.UNKNOWN_ORDER)


def test_cancel_of_unknown_order_id_is_unknown(ex):
    ex.buy(ALICE, price=P, qty=Q)

    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE, order_id=999), Reason.UNKNOWN_ORDER)


def test_cancel_naming_no_order_is_unknown(ex):
    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE), Reason.UNKNOWN_ORDER)


def test_cancel_by_unknown_account_is_unknown(ex):
    _assert_rejected_unchanged(ex, lambda: ex.cancel(99, order_id=1), Reason.UNKNOWN_ORDER)


def test_cancel_in_unknown_symbol_is_rejected(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE, order_id=oid, symbol="DOGEUSDT"), Reason.UNKNOWN_SYMBOL)


def test_cancel_of_filled_order_by_client_id_is_cancel_rejected(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q, client_order_id="done"))
    ex.sell(BOB, price=P, qty=Q)
    before = ex.state_hash()

    events = ex.cancel(ALICE, client_order_id="done")

    assert events == [OrderRejected(ALICE, "BTCUSDT", "done", oid, Reason.CANCEL_REJECTED)]
    assert ex.state_hash() == before


def test_second_cancel_by_client_id_is_cancel_rejected(ex):
    ex.buy(ALICE, price=P, qty=Q, client_order_id="c1")
    ex.cancel(ALICE, client_order_id="c1")

    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE, client_order_id="c1"), Reason.CANCEL_REJECTED)


def test_cancel_of_expired_ioc_by_client_id_is_cancel_rejected(ex):
    ex.buy(ALICE, price=P, qty=Q, tif=IOC, client_order_id="ioc")

    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE, client_order_id="ioc"), Reason.CANCEL_REJECTED)


def test_cancel_of_finished_order_by_id_is_unknown(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q, client_order_id="done"))
    ex.sell(BOB, price=P, qty=Q)

    _assert_rejected_unchanged(ex, lambda: ex.cancel(ALICE, order_id=oid), Reason.UNKNOWN_ORDER)


# -------------------------------------------------------------- cancel all


def _orders_in_three_markets(ex):
    """ALICE's orders, interleaving markets: ids 1..4; BOB's order is 5."""
    ex.buy(ALICE, price=ETH_P, qty=ETH_Q, symbol="ETHUSDT")
    ex.buy(ALICE, price=P, qty=Q)
    ex.sell(ALICE, price=ticks("0.05", "ETHBTC"), qty=lots("1", "ETHBTC"), symbol="ETHBTC")
    ex.sell(ALICE, price=P + 100, qty=Q)
    ex.buy(BOB, price=P, qty=Q)


def test_cancel_all_cancels_every_market_in_order_id_order(ex):
    _orders_in_three_markets(ex)

    events = ex.cancel_all(ALICE)

    assert [(e.order_id, e.symbol, e.reason) for e in events] == [
        (1, "ETHUSDT", StopReason.CANCEL_ALL),
        (2, "BTCUSDT", StopReason.CANCEL_ALL),
        (3, "ETHBTC", StopReason.CANCEL_ALL),
        (4, "BTCUSDT", StopReason.CANCEL_ALL),
    ]
    assert ex.engine.open_orders(ALICE) == []
    assert ex.engine.balances(ALICE) == {"BTC": (kit.units("100", "BTC"), 0), "ETH": (kit.units("1000", "ETH"), 0), "USDT": (kit.units("1000000", "USDT"), 0)}


def test_cancel_all_leaves_other_accounts_orders(ex):
    _orders_in_three_markets(ex)

    ex.cancel_all(ALICE)

    assert [o.order_id for o in ex.engine.open_orders(BOB)] == [5]


def test_cancel_all_in_one_symbol_cancels_only_that_market(ex):
    _orders_in_three_markets(ex)

    events = ex.cancel_all(ALICE, symbol="BTCUSDT")

    assert [e.order_id for e in events] == [2, 4]
    assert [o.order_id for o in ex.engine.open_orders(ALICE)] == [1, 3]


def test_cancel_all_orders_by_id_even_after_an_amend_requeued_one(ex):
    first = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    second = kit.accepted_id(ex.buy(ALICE, price=P - 1, qty=Q))
    ex.amend(ALICE, order_id=first, price=P - 2)  # first leaves and rejoins the book

    events = ex.cancel_all(ALICE)

    assert [e.order_id for e in events] == [first, second]


def test_cancel_all_with_nothing_open_changes_nothing(ex):
    before = ex.state_hash()

    events = ex.cancel_all(ALICE)

    assert events == []
    assert ex.state_hash() == before


def test_cancel_all_for_unknown_account_changes_nothing(ex):
    before = ex.state_hash()

    events = ex.cancel_all(99)

    assert events == []
    assert ex.state_hash() == before


def test_cancel_all_in_unknown_symbol_is_rejected(ex):
    _orders_in_three_markets(ex)

    _assert_rejected_unchanged(ex, lambda: ex.cancel_all(ALICE, symbol="DOGEUSDT"), Reason.UNKNOWN_SYMBOL)
