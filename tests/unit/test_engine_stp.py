"""Self-trade prevention: the taker's mode decides what happens when the next
maker belongs to the taker's own account; FOK's pre-check follows the same
rule."""

import pytest

from dex.core.events import OrderCancelled, OrderExpired
from dex.core.reasons import StopReason
from tests import kit
from tests.kit import (
    ALICE,
    BOB,
    CAROL,
    EXPIRE_BOTH,
    EXPIRE_MAKER,
    EXPIRE_TAKER,
    FOK,
    cost,
    lots,
    ticks,
)

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")


# ------------------------------------------------------------ expire taker


def test_expire_taker_stops_matching_and_keeps_the_maker(ex):
    own = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))

    events = ex.buy(BOB, price=P, qty=Q)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1] == OrderExpired(kit.accepted_id(events), BOB, "BTCUSDT", Q, StopReason.SELF_TRADE)
    assert [o.order_id for o in ex.engine.open_orders(BOB)] == [own]


def test_expire_taker_is_the_default_mode(ex):
    ex.sell(BOB, price=P, qty=Q)

    default = ex.buy(BOB, price=P, qty=Q)

    assert default[-1].reason == StopReason.SELF_TRADE
    assert ex.depth() == ([], [(P, Q)])


def test_expire_taker_keeps_fills_made_before_the_own_maker(ex):
    ex.sell(CAROL, price=P, qty=400)
    ex.sell(BOB, price=P, qty=Q)

    events = ex.buy(BOB, price=P, qty=Q, stp=EXPIRE_TAKER)

    assert [t.qty for t in kit.trades(events)] == [400]
    assert events[-1].qty == Q - 400 and events[-1].reason == StopReason.SELF_TRADE
    assert ex.locked(BOB, "USDT") == 0


def test_mode_is_the_takers_not_the_makers(ex):
    ex.sell(BOB, price=P, qty=Q, stp=EXPIRE_MAKER)

    events = ex.buy(BOB, price=P, qty=Q, stp=EXPIRE_TAKER)

    assert events[-1].reason == StopReason.SELF_TRADE
    assert not kit.of_type(events, OrderCancelled)


# ------------------------------------------------------------ expire maker


def test_expire_maker_cancels_own_maker_where_met_and_goes_on(ex):
    carol = kit.accepted_id(ex.sell(CAROL, price=P, qty=100))
    own = kit.accepted_id(ex.sell(BOB, price=P, qty=100))
    alice = kit.accepted_id(ex.sell(ALICE, price=P, qty=100))

    events = ex.buy(BOB, price=P, qty=200, stp=EXPIRE_MAKER)

    assert kit.kinds(events) == ["OrderAccepted", "Trade", "OrderCancelled", "Trade"]
    assert [t.maker_order_id for t in kit.trades(events)] == [carol, alice]
    assert events[2] == OrderCancelled(own, BOB, "BTCUSDT", 100, StopReason.SELF_TRADE)


def test_expire_maker_releases_the_cancelled_makers_lock(ex):
    ex.sell(BOB, price=P, qty=Q)
    btc_before = ex.free(BOB, "BTC") + ex.locked(BOB, "BTC")

    ex.buy(BOB, price=P, qty=Q, stp=EXPIRE_MAKER)

    assert ex.locked(BOB, "BTC") == 0
    assert ex.free(BOB, "BTC") == btc_before


def test_expire_maker_gtc_rests_once_own_makers_are_gone(ex):
    ex.sell(BOB, price=P, qty=Q)

    events = ex.buy(BOB, price=P, qty=Q, stp=EXPIRE_MAKER)

    assert kit.kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert ex.depth() == ([(P, Q)], [])
    assert ex.locked(BOB, "USDT") == cost(P, Q)


def test_expire_maker_on_a_sell_taker(ex):
    own = kit.accepted_id(ex.buy(BOB, price=P, qty=Q))
    carol = kit.accepted_id(ex.buy(CAROL, price=P - 1, qty=Q))

    events = ex.sell(BOB, price=P - 1, qty=Q, stp=EXPIRE_MAKER)

    assert events[1].order_id == own
    assert [(t.maker_order_id, t.price) for t in kit.trades(events)] == [(carol, P - 1)]


# ------------------------------------------------------------- expire both


def test_expire_both_cancels_the_maker_and_expires_the_taker(ex):
    own = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    ex.sell(CAROL, price=P, qty=Q)

    events = ex.buy(BOB, price=P, qty=Q, stp=EXPIRE_BOTH)

    taker = kit.accepted_id(events)
    assert events[1:] == [
        OrderCancelled(own, BOB, "BTCUSDT", Q, StopReason.SELF_TRADE),
        OrderExpired(taker, BOB, "BTCUSDT", Q, StopReason.SELF_TRADE),
    ]
    assert ex.depth() == ([], [(P, Q)])


def test_expire_both_on_a_sell_taker(ex):
    own = kit.accepted_id(ex.buy(BOB, price=P, qty=Q))
    ex.buy(CAROL, price=P, qty=Q)

    events = ex.sell(BOB, price=P, qty=Q, stp=EXPIRE_BOTH)

    assert kit.kinds(events) == ["OrderAccepted", "OrderCancelled", "OrderExpired"]
    assert events[1].order_id == own
    assert ex.depth() == ([(P, Q)], [])


def test_expire_taker_on_a_sell_taker(ex):
    own = kit.accepted_id(ex.buy(BOB, price=P, qty=Q))

    events = ex.sell(BOB, price=P, qty=Q, stp=EXPIRE_TAKER)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert [o.order_id for o in ex.engine.open_orders(BOB)] == [own]


def test_stp_applies_to_market_orders(ex):
    ex.sell(BOB, price=P, qty=Q)

    events = ex.market_buy(BOB, qty=Q)

    assert events[-1].reason == StopReason.SELF_TRADE


def test_different_accounts_trade_normally(ex):
    ex.sell(CAROL, price=P, qty=Q)

    events = ex.buy(BOB, price=P, qty=Q, stp=EXPIRE_BOTH)

    assert kit.kinds(events) == ["OrderAccepted", "Trade"]


# ------------------------------------------------------------------ FOK


def _own_ask_then_enough_from_carol(ex):
    own = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    ex.sell(CAROL, price=P, qty=2 * Q)
    return own


def test_fok_expire_taker_stops_at_own_order_and_expires_unfilled(ex):
    own = _own_ask_then_enough_from_carol(ex)
    before = ex.depth()

    events = ex.buy(BOB, price=P, qty=Q, tif=FOK, stp=EXPIRE_TAKER)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].reason == StopReason.FOK
    assert ex.depth() == before
    assert own in [o.order_id for o in ex.engine.open_orders(BOB)]


def test_fok_expire_both_stops_at_own_order_and_cancels_nothing(ex):
    own = _own_ask_then_enough_from_carol(ex)

    events = ex.buy(BOB, price=P, qty=Q, tif=FOK, stp=EXPIRE_BOTH)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].reason == StopReason.FOK
    assert own in [o.order_id for o in ex.engine.open_orders(BOB)]


def test_fok_expire_maker_skips_own_order_and_fills(ex):
    own = _own_ask_then_enough_from_carol(ex)

    events = ex.buy(BOB, price=P, qty=Q, tif=FOK, stp=EXPIRE_MAKER)

    assert kit.kinds(events) == ["OrderAccepted", "OrderCancelled", "Trade"]
    assert events[1].order_id == own
    assert kit.trades(events)[0].qty == Q


def test_fok_expire_maker_without_enough_others_expires_and_keeps_own_order(ex):
    own = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    ex.sell(CAROL, price=P, qty=Q - 1)

    events = ex.buy(BOB, price=P, qty=Q, tif=FOK, stp=EXPIRE_MAKER)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert own in [o.order_id for o in ex.engine.open_orders(BOB)]


def test_fok_fills_when_own_order_lies_beyond_the_fill(ex):
    ex.sell(CAROL, price=P, qty=Q)
    ex.sell(BOB, price=P, qty=Q)

    events = ex.buy(BOB, price=P, qty=Q, tif=FOK, stp=EXPIRE_TAKER)

    assert kit.kinds(events) == ["OrderAccepted", "Trade"]
