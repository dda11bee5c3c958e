"""Amending a resting order: priority kept or lost, matching when the new
price crosses, balance and filter checks, rejections that change nothing."""

import pytest

from dex.core.events import OrderAmended, OrderExpired
from dex.core.reasons import Reason, StopReason
from dex.core.types import OrderStatus
from tests import kit
from tests.kit import ALICE, BOB, CAROL, DAVE, EXPIRE_MAKER, cost, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")
BTCUSDT = kit.markets().market("BTCUSDT")


def _two_asks_at_p(ex):
    """BOB's ask joins the level first, CAROL's second."""
    bob = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    carol = kit.accepted_id(ex.sell(CAROL, price=P, qty=Q))
    return bob, carol


# ---------------------------------------------------------------- priority


def test_lower_qty_at_same_price_keeps_priority(ex):
    bob, carol = _two_asks_at_p(ex)

    events = ex.amend(BOB, order_id=bob, qty=Q // 2)

    assert events == [OrderAmended(bob, BOB, "BTCUSDT", P, Q // 2, True)]


def test_lower_qty_order_still_fills_first(ex):
    bob, carol = _two_asks_at_p(ex)
    ex.amend(BOB, order_id=bob, qty=Q // 2)

    events = ex.buy(ALICE, price=P, qty=Q)

    assert [(t.maker_order_id, t.qty) for t in kit.trades(events)] == [(bob, Q // 2), (carol, Q // 2)]


def test_lower_qty_releases_the_difference(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    ex.amend(ALICE, order_id=oid, qty=400)

    assert ex.locked(ALICE, "USDT") == cost(P, 400)
    assert ex.depth() == ([(P, 400)], [])


def test_amend_with_nothing_changed_keeps_priority(ex):
    bob, carol = _two_asks_at_p(ex)

    events = ex.amend(BOB, order_id=bob)

    assert events == [OrderAmended(bob, BOB, "BTCUSDT", P, Q, True)]


def test_higher_qty_loses_priority(ex):
    bob, carol = _two_asks_at_p(ex)

    events = ex.amend(BOB, order_id=bob, qty=2 * Q)
    fills = ex.buy(ALICE, price=P, qty=Q)

    assert events == [OrderAmended(bob, BOB, "BTCUSDT", P, 2 * Q, False)]
    assert [t.maker_order_id for t in kit.trades(fills)] == [carol]


def test_new_price_loses_priority_at_the_new_level(ex):
    bob = kit.accepted_id(ex.sell(BOB, price=P + 1, qty=Q))
    carol = kit.accepted_id(ex.sell(CAROL, price=P, qty=Q))

    ex.amend(BOB, order_id=bob, price=P)
    fills = ex.buy(ALICE, price=P, qty=Q)

    assert [t.maker_order_id for t in kit.trades(fills)] == [carol]


def test_requeued_order_keeps_id_client_id_and_fills_with_the_amend_time(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q, client_order_id="keep"))
    ex.sell(BOB, price=P, qty=300)

    ex.amend(ALICE, client_order_id="keep", price=P - 10)

    view = ex.engine.order(ALICE, "BTCUSDT", client_order_id="keep")
    assert (view.order_id, view.price, view.qty, view.filled) == (oid, P - 10, Q, 300)
    assert view.status == OrderStatus.PARTIALLY_FILLED
    assert view.time_ms == ex.time_ms


def test_amend_qty_is_the_new_total_including_fills(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    ex.sell(BOB, price=P, qty=300)

    ex.amend(ALICE, order_id=oid, qty=500)

    assert ex.depth() == ([(P, 200)], [])
    assert ex.locked(ALICE, "USDT") == cost(P, 200)


def test_raising_a_buys_price_locks_the_new_cost(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    ex.amend(ALICE, order_id=oid, price=P + 100)

    assert ex.locked(ALICE, "USDT") == cost(P + 100, Q)


# ---------------------------------------------------------------- crossing


def test_amend_to_crossing_price_matches_as_taker_at_maker_price(ex):
    carol = kit.accepted_id(ex.sell(CAROL, price=P, qty=400))
    bob = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q))

    events = ex.amend(BOB, order_id=bob, price=P + 50)

    assert kit.kinds(events) == ["OrderAmended", "Trade"]
    trade = kit.trades(events)[0]
    assert (trade.maker_order_id, trade.taker_order_id, trade.price, trade.qty) == (carol, bob, P, 400)
    assert ex.depth() == ([(P + 50, Q - 400)], [])
    assert ex.locked(BOB, "USDT") == cost(P + 50, Q - 400)


def test_amend_crossing_that_fills_partly_rests_partially_filled(ex):
    ex.sell(CAROL, price=P, qty=400)
    bob = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q))

    ex.amend(BOB, order_id=bob, price=P)

    view = ex.engine.order(BOB, "BTCUSDT", order_id=bob)
    assert (view.status, view.filled, view.qty) == (OrderStatus.PARTIALLY_FILLED, 400, Q)


def test_amend_crossing_pays_the_taker_fee(ex):
    ex.sell(CAROL, price=P, qty=Q)
    bob = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q))

    events = ex.amend(BOB, order_id=bob, price=P)

    assert kit.trades(events)[0].taker_fee == kit.base_units(Q) * BTCUSDT.taker_fee_bps // 10_000


def test_amend_crossing_that_fills_completely_finishes_the_order(ex):
    ex.sell(CAROL, price=P, qty=Q)
    bob = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q, client_order_id="b"))

    events = ex.amend(BOB, order_id=bob, price=P)

    assert not kit.of_type(events, OrderExpired)
    assert ex.status(BOB, client_order_id="b") == OrderStatus.FILLED
    assert ex.engine.open_orders(BOB) == []


def test_amend_crossing_own_order_expires_remainder_under_expire_taker(ex):
    ex.sell(BOB, price=P, qty=Q)
    bob_bid = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q))

    events = ex.amend(BOB, order_id=bob_bid, price=P)

    assert events[-1] == OrderExpired(bob_bid, BOB, "BTCUSDT", Q, StopReason.SELF_TRADE)
    assert ex.depth() == ([], [(P, Q)])


def test_amend_crossing_own_order_cancels_it_under_expire_maker(ex):
    own_ask = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    bob_bid = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q, stp=EXPIRE_MAKER))

    events = ex.amend(BOB, order_id=bob_bid, price=P)

    assert kit.kinds(events) == ["OrderAmended", "OrderCancelled"]
    assert events[1].order_id == own_ask and events[1].reason == StopReason.SELF_TRADE
    assert ex.depth() == ([(P, Q)], [])


# -------------------------------------------------------------- rejections


def _rejects_unchanged(ex, reason, **amend):
    before = ex.state_hash()

    events = ex.amend(**amend)

    assert kit.rejection(events) == reason
    assert ex.state_hash() == before


def test_amend_one_unit_beyond_free_balance_is_rejected(ex):
    ex.deposit(DAVE, "USDT", cost(P, Q) + cost(P, 1) - 1)
    oid = kit.accepted_id(ex.buy(DAVE, price=P, qty=Q))

    _rejects_unchanged(ex, Reason.INSUFFICIENT_BALANCE, account=DAVE, order_id=oid, qty=Q + 1)


def test_amend_affording_exactly_the_extra_cost_is_accepted(ex):
    ex.deposit(DAVE, "USDT", cost(P, Q) + cost(P, 1))
    oid = kit.accepted_id(ex.buy(DAVE, price=P, qty=Q))

    events = ex.amend(DAVE, order_id=oid, qty=Q + 1)

    assert kit.kinds(events) == ["OrderAmended"]
    assert ex.engine.balances(DAVE)["USDT"] == (0, cost(P, Q + 1))


def test_amend_raising_price_beyond_free_balance_is_rejected(ex):
    ex.deposit(DAVE, "USDT", cost(P, Q))
    oid = kit.accepted_id(ex.buy(DAVE, price=P, qty=Q))

    _rejects_unchanged(ex, Reason.INSUFFICIENT_BALANCE, account=DAVE, order_id=oid, price=P + 1)


def test_amend_sell_beyond_free_base_is_rejected(ex):
    ex.deposit(DAVE, "BTC", kit.base_units(Q))
    oid = kit.accepted_id(ex.sell(DAVE, price=P, qty=Q))

    _rejects_unchanged(ex, Reason.INSUFFICIENT_BALANCE, account=DAVE, order_id=oid, qty=Q + 1)


def test_amend_of_post_only_to_crossing_price_is_rejected(ex):
    ex.sell(CAROL, price=P, qty=Q)
    oid = kit.accepted_id(ex.buy(BOB, price=P - 100, qty=Q, post_only=True))

    _rejects_unchanged(ex, Reason.WOULD_TAKE, account=BOB, order_id=oid, price=P)


def test_amend_qty_not_above_filled_is_rejected(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    ex.sell(BOB, price=P, qty=300)

    _rejects_unchanged(ex, Reason.LOT_SIZE, account=ALICE, order_id=oid, qty=300)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"price": BTCUSDT.max_price_ticks + 1}, Reason.PRICE_FILTER),
        ({"qty": BTCUSDT.max_qty_lots + 1}, Reason.LOT_SIZE),
        ({"qty": 1}, Reason.NOTIONAL),  # 0.5 USDT
        ({"price": -1}, Reason.BAD_PARAMETER),
        ({"qty": -1}, Reason.BAD_PARAMETER),
    ],
    ids=["price-above-max", "qty-above-max", "below-min-notional", "negative-price", "negative-qty"],
)
def test_amend_failing_a_filter_is_rejected(ex, change, reason):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    _rejects_unchanged(ex, reason, account=ALICE, order_id=oid, **change)


def test_amend_of_another_accounts_order_is_unknown(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    _rejects_unchanged(ex, Reason.UNKNOWN_ORDER, account=BOB, order_id=oid, qty=400)


def test_amend_of_finished_order_by_client_id_is_unknown(ex):
    ex.buy(ALICE, price=P, qty=Q, client_order_id="gone")
    ex.cancel(ALICE, client_order_id="gone")

    _rejects_unchanged(ex, Reason.UNKNOWN_ORDER, account=ALICE, client_order_id="gone", qty=400)


def test_amend_in_unknown_symbol_is_rejected(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))

    _rejects_unchanged(ex, Reason.UNKNOWN_SYMBOL, account=ALICE, order_id=oid, symbol="DOGEUSDT")


def test_amend_rejection_names_the_order(ex):
    oid = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q, client_order_id="a"))

    events = ex.amend(ALICE, client_order_id="a", qty=1)

    assert events[0].order_id == oid and events[0].client_order_id == "a"
