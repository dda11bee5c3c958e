"""Events are the NamedTuples of dex.core.events whichever engine made them,
and making them keeps no reference (the compiled engine builds them in C:
engine.py, `_new`)."""

from __future__ import annotations

import gc
import sys

import pytest

from dex.core import events
from dex.core.types import OrderType, Side, TimeInForce
from tests import kit
from tests.kit import ALICE, BOB, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
Q = lots("0.01")
CID = "kept-by-no-event"


def _trade_many(ex: kit.Exchange, n: int) -> None:
    for i in range(n):
        ex.sell(BOB, price=P + i % 5, qty=Q)
        ex.buy(ALICE, price=P + 10, qty=Q, tif=TimeInForce.IOC)


def test_events_are_their_named_tuples_with_every_field():
    ex = kit.funded_exchange()
    accepted = ex.sell(BOB, price=P, qty=Q, client_order_id=CID)
    taken = ex.buy(ALICE, price=P, qty=Q)

    assert [type(e) for e in accepted] == [events.OrderAccepted]
    assert accepted[0] == events.OrderAccepted(accepted[0].order_id, BOB, kit.SYMBOL, Side.SELL, OrderType.LIMIT,
                                               TimeInForce.GTC, P, Q, 0, CID)
    trade = next(e for e in taken if type(e) is events.Trade)
    assert (trade.price, trade.qty, trade.maker_order_id, trade.maker_account, trade.taker_account) == (
        P, Q, accepted[0].order_id, BOB, ALICE,
    )
    assert len(trade) == len(events.Trade._fields) and trade._asdict()["price"] == P


def test_making_events_keeps_no_reference():
    ex = kit.funded_exchange()
    _trade_many(ex, 200)
    gc.collect()
    before = [sys.getrefcount(x) for x in (Side.BUY, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, TimeInForce.IOC)]

    _trade_many(ex, 2_000)  # ~8,000 events, all dropped
    gc.collect()

    after = [sys.getrefcount(x) for x in (Side.BUY, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, TimeInForce.IOC)]
    assert after == before


def test_compiled_events_are_not_tracked_by_the_collector():
    """An event holds only ints, strs, None, bools and enum members, so it can
    be in no reference cycle: the compiled engine untracks it when it makes it
    (engine.py, `_new`), where a NamedTuple would otherwise sit in every
    young-generation collection. The pure engine's events are plain
    tuple.__new__ NamedTuples, tracked as CPython tracks them."""
    ex = kit.funded_exchange()
    made = ex.sell(BOB, price=P, qty=Q, client_order_id=CID) + ex.buy(ALICE, price=P, qty=Q)
    kinds = {type(e) for e in made}

    assert {events.OrderAccepted, events.Trade} <= kinds
    # Made in C by the compiled engine on the CPython versions `_new` knows.
    made_in_c = type(ex.engine).__module__.startswith("dex.engine._compiled") and sys.version_info < (3, 14)
    assert [gc.is_tracked(e) for e in made] == [not made_in_c] * len(made)
