"""Placing orders: every rejection in ENGINE.md's validation table (and the
order the checks run in), time in force, post-only, price-time priority,
trade prices and fees.

Every rejection must leave the state exactly as it was: same state hash, so
no order id consumed, no account created, nothing locked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest

from dex.core import limits
from dex.core.commands import valid_client_order_id
from dex.core.events import (
    OrderAccepted,
    OrderDuplicate,
    OrderExpired,
    OrderRejected,
)
from dex.core.reasons import Reason, StopReason
from dex.core.types import OrderStatus
from tests import kit
from tests.kit import (
    ALICE,
    BOB,
    BUY,
    CAROL,
    DAVE,
    FEE,
    FOK,
    IOC,
    SELL,
    cost,
    limit_order,
    lots,
    market_order,
    ticks,
)

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")  # 5,000,000 ticks
Q = lots("0.01")  # 1,000 lots
BTCUSDT = kit.markets().market("BTCUSDT")


# --------------------------------------------------------------- rejections


@dataclass(frozen=True)
class Rejection:
    id: str
    command: object
    reason: Reason
    arrange: Callable[[kit.Exchange], None] = field(default=lambda ex: None)


def _bob_asks_at_p(ex):
    ex.sell(BOB, price=P, qty=Q)


def _bob_bids_at_p(ex):
    ex.buy(BOB, price=P, qty=Q)


def _dave_has_usdt_units(amount: int):
    return lambda ex: ex.deposit(DAVE, "USDT", amount)


def _dave_has_btc_units(amount: int):
    return lambda ex: ex.deposit(DAVE, "BTC", amount)


PLACE_REJECTIONS = [
    Rejection("unknown-symbol", limit_order(ALICE, BUY, P, Q, symbol="DOGEUSDT"), Reason.UNKNOWN_SYMBOL),
    Rejection("cid-empty", limit_order(ALICE, BUY, P, Q, client_order_id=""), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-37-chars", limit_order(ALICE, BUY, P, Q, client_order_id="x" * 37), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-non-ascii", limit_order(ALICE, BUY, P, Q, client_order_id="ordré"), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-control-char", limit_order(ALICE, BUY, P, Q, client_order_id="a\tb"), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-delete-char", limit_order(ALICE, BUY, P, Q, client_order_id="ab\x7f"), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-unit-separator", limit_order(ALICE, BUY, P, Q, client_order_id="\x1fab"), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-line-separator", limit_order(ALICE, BUY, P, Q, client_order_id="a\u2028"), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("cid-astral", limit_order(ALICE, BUY, P, Q, client_order_id="a\U0001f600"), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("side-out-of-range", limit_order(ALICE, 2, P, Q), Reason.BAD_PARAMETER),
    Rejection("type-out-of-range", limit_order(ALICE, BUY, P, Q, type=2), Reason.BAD_PARAMETER),
    Rejection("tif-out-of-range", limit_order(ALICE, BUY, P, Q, tif=3), Reason.BAD_PARAMETER),
    Rejection("stp-out-of-range", limit_order(ALICE, BUY, P, Q, stp=3), Reason.BAD_PARAMETER),
    # Past a C int, and below 0: the compiled engine checks these fields as C ints.
    Rejection("side-huge", limit_order(ALICE, 2**70, P, Q), Reason.BAD_PARAMETER),
    Rejection("side-negative", limit_order(ALICE, -1, P, Q), Reason.BAD_PARAMETER),
    Rejection("tif-huge", limit_order(ALICE, BUY, P, Q, tif=2**64), Reason.BAD_PARAMETER),
    Rejection("stp-negative", limit_order(ALICE, BUY, P, Q, stp=-1), Reason.BAD_PARAMETER),
    Rejection("unknown-account", limit_order(99, BUY, P, Q), Reason.INSUFFICIENT_BALANCE),
    Rejection("fee-account", limit_order(FEE, BUY, P, Q), Reason.RESERVED_ACCOUNT),
    Rejection("limit-with-quote-qty", limit_order(ALICE, BUY, P, Q, quote_qty=1), Reason.BAD_PARAMETER),
    Rejection("price-zero", limit_order(ALICE, BUY, 0, Q), Reason.PRICE_FILTER),
    Rejection("price-negative", limit_order(ALICE, SELL, -1, Q), Reason.PRICE_FILTER),
    Rejection("price-above-max", limit_order(ALICE, SELL, BTCUSDT.max_price_ticks + 1, Q), Reason.PRICE_FILTER),
    Rejection("qty-zero", limit_order(ALICE, BUY, P, 0), Reason.LOT_SIZE),
    Rejection("qty-negative", limit_order(ALICE, SELL, P, -Q), Reason.LOT_SIZE),
    Rejection("qty-above-max", limit_order(ALICE, SELL, P, BTCUSDT.max_qty_lots + 1), Reason.LOT_SIZE),
    # Past 64 bits, and not ints at all: the compiled engine reads a limit
    # order's price and quantity as C ints (engine.py, `_lots`), and anything
    # it cannot read is out of range for both engines.
    Rejection("price-past-int64", limit_order(ALICE, BUY, 2**63, Q), Reason.PRICE_FILTER),
    Rejection("price-past-uint64", limit_order(ALICE, SELL, 2**70, Q), Reason.PRICE_FILTER),
    Rejection("price-float", limit_order(ALICE, BUY, float(P), Q), Reason.PRICE_FILTER),
    Rejection("price-str", limit_order(ALICE, BUY, str(P), Q), Reason.PRICE_FILTER),
    Rejection("qty-past-int64", limit_order(ALICE, BUY, P, 2**63), Reason.LOT_SIZE),
    Rejection("qty-past-uint64", limit_order(ALICE, SELL, P, -(2**70)), Reason.LOT_SIZE),
    Rejection("qty-float", limit_order(ALICE, SELL, P, float(Q)), Reason.LOT_SIZE),
    Rejection("cost-below-min-notional", limit_order(ALICE, BUY, P, 1), Reason.NOTIONAL),  # 0.5 USDT < 1
    Rejection("post-only-ioc", limit_order(ALICE, BUY, P, Q, post_only=True, tif=IOC), Reason.BAD_PARAMETER),
    Rejection("post-only-fok", limit_order(ALICE, SELL, P, Q, post_only=True, tif=FOK), Reason.BAD_PARAMETER),
    Rejection("post-only-buy-crosses", limit_order(ALICE, BUY, P, Q, post_only=True), Reason.WOULD_TAKE, _bob_asks_at_p),
    Rejection("post-only-sell-crosses", limit_order(ALICE, SELL, P, Q, post_only=True), Reason.WOULD_TAKE, _bob_bids_at_p),
    Rejection(
        "limit-buy-one-unit-short",
        limit_order(DAVE, BUY, P, Q),
        Reason.INSUFFICIENT_BALANCE,
        _dave_has_usdt_units(cost(P, Q) - 1),
    ),
    Rejection(
        "limit-sell-one-unit-short",
        limit_order(DAVE, SELL, P, Q),
        Reason.INSUFFICIENT_BALANCE,
        _dave_has_btc_units(kit.base_units(Q) - 1),
    ),
    Rejection("market-with-price", market_order(ALICE, BUY, qty=Q, price=P), Reason.BAD_PARAMETER),
    Rejection("market-post-only", market_order(ALICE, SELL, qty=Q, post_only=True), Reason.BAD_PARAMETER),
    Rejection("market-sell-by-quote", market_order(ALICE, SELL, quote_qty=kit.units("100", "USDT")), Reason.QUOTE_QTY_SELL),
    Rejection("market-by-quote-with-qty", market_order(ALICE, BUY, qty=Q, quote_qty=kit.units("100", "USDT")), Reason.BAD_PARAMETER),
    Rejection("market-by-quote-negative", market_order(ALICE, BUY, quote_qty=-1), Reason.BAD_PARAMETER),
    Rejection("market-by-quote-above-bound", market_order(ALICE, BUY, quote_qty=limits.AMOUNT_UNITS_MAX + 1), Reason.BAD_PARAMETER),
    Rejection("market-by-quote-below-min-notional", market_order(ALICE, BUY, quote_qty=BTCUSDT.min_notional_units - 1), Reason.NOTIONAL),
    Rejection(
        "market-by-quote-more-than-free",
        market_order(DAVE, BUY, quote_qty=kit.units("2", "USDT")),
        Reason.INSUFFICIENT_BALANCE,
        _dave_has_usdt_units(kit.units("2", "USDT") - 1),
    ),
    Rejection("market-qty-zero", market_order(ALICE, BUY), Reason.LOT_SIZE),
    Rejection("market-qty-float", market_order(ALICE, SELL, qty=float(Q)), Reason.LOT_SIZE),
    Rejection("market-by-quote-float", market_order(ALICE, BUY, quote_qty=float(kit.units("100", "USDT"))), Reason.BAD_PARAMETER),
    Rejection("market-qty-above-max", market_order(ALICE, SELL, qty=BTCUSDT.max_qty_lots + 1), Reason.LOT_SIZE),
    Rejection("market-buy-no-free-quote", market_order(DAVE, BUY, qty=Q), Reason.INSUFFICIENT_BALANCE, _dave_has_btc_units(1)),
    Rejection(
        "market-sell-one-unit-short",
        market_order(DAVE, SELL, qty=Q),
        Reason.INSUFFICIENT_BALANCE,
        _dave_has_btc_units(kit.base_units(Q) - 1),
    ),
]


@pytest.mark.parametrize("case", PLACE_REJECTIONS, ids=lambda c: c.id)
def test_place_rejection_has_its_reason_and_changes_nothing(ex, case):
    case.arrange(ex)
    before = ex.state_hash()

    events = ex.apply(case.command)

    assert kit.rejection(events) == case.reason
    assert ex.state_hash() == before


@pytest.mark.parametrize(
    "case", [c for c in PLACE_REJECTIONS if c.reason not in (Reason.UNKNOWN_SYMBOL, Reason.BAD_CLIENT_ORDER_ID)], ids=lambda c: c.id
)
def test_the_pre_trade_check_refuses_what_the_engine_refuses(ex, case):
    """`_check_place` (behind the port's check_place and POST /order/test)
    gives the reason the engine's own place does (an unknown symbol and a bad
    client order id are the port's and the engine's before it)."""
    case.arrange(ex)
    cmd = case.command
    engine = ex.engine

    assert engine._check_place(cmd, engine.books[cmd.symbol], engine.accounts.get(cmd.account)) == case.reason


def test_rejection_event_echoes_the_command(ex):
    events = ex.apply(limit_order(ALICE, BUY, 0, Q, client_order_id="retry-1"))

    assert events == [OrderRejected(ALICE, "BTCUSDT", "retry-1", 0, Reason.PRICE_FILTER)]


@pytest.mark.parametrize("cid", [" ", "~", " !~", "x" * 36, "a b"], ids=["space", "tilde", "ends", "36-chars", "inner-space"])
def test_a_client_order_id_of_printable_ascii_up_to_36_chars_is_accepted(ex, cid):
    assert valid_client_order_id(cid)  # the rule the compiled engine's check must agree with
    assert kit.of_type(ex.buy(ALICE, price=P, qty=Q, client_order_id=cid), OrderAccepted)


def test_rejected_place_consumes_no_order_id(ex):
    first = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    ex.buy(ALICE, price=0, qty=Q)

    events = ex.buy(ALICE, price=P, qty=Q)

    assert kit.accepted_id(events) == first + 1


def test_rejected_place_by_unknown_account_creates_no_account(ex):
    ex.apply(limit_order(99, BUY, P, Q))

    assert 99 not in ex.engine.accounts


def test_limit_at_exactly_min_notional_is_accepted(ex):
    qty = BTCUSDT.min_notional_units // (P * BTCUSDT.notional_units)  # 2 lots = 1 USDT

    events = ex.buy(ALICE, price=P, qty=qty)

    assert kit.kinds(events) == ["OrderAccepted"]


def test_limit_buy_affording_exactly_its_cost_is_accepted(ex):
    ex.deposit(DAVE, "USDT", cost(P, Q))

    events = ex.buy(DAVE, price=P, qty=Q)

    assert kit.kinds(events) == ["OrderAccepted"]
    assert ex.engine.balances(DAVE)["USDT"] == (0, cost(P, Q))


def test_limit_at_max_price_and_max_qty_is_accepted(ex):
    ex.deposit(DAVE, "BTC", kit.base_units(BTCUSDT.max_qty_lots))

    events = ex.sell(DAVE, price=BTCUSDT.max_price_ticks, qty=BTCUSDT.max_qty_lots)

    assert kit.kinds(events) == ["OrderAccepted"]


def test_gtc_at_the_account_bound_of_open_orders_is_rejected():
    ex = kit.Exchange()
    ex.fund(ALICE, USDT="1000000000")
    bound = limits.OPEN_ORDERS_PER_ACCOUNT_MAX
    # 200,000 bids spread over 1,000 levels below the price of the last one.
    ex.apply_all(limit_order(ALICE, BUY, P - (i % 1000), lots("0.01")) for i in range(bound))
    before = ex.state_hash()

    events = ex.apply(limit_order(ALICE, BUY, P, Q), check=False)

    assert kit.rejection(events) == Reason.MAX_NUM_ORDERS
    assert ex.state_hash() == before


def test_ioc_at_the_account_bound_of_open_orders_is_not_limited(ex, monkeypatch, engine_impl):
    # The bound only applies to GTC orders, which may rest.
    monkeypatch.setattr(engine_impl, "OPEN_MAX", 1)
    ex.buy(ALICE, price=P - 1, qty=Q)
    ex.sell(BOB, price=P, qty=Q)

    events = ex.buy(ALICE, price=P, qty=Q, tif=IOC)

    assert kit.kinds(events) == ["OrderAccepted", "Trade"]


def test_a_bound_changed_after_the_engine_read_it_is_the_one_checked(ex, monkeypatch, engine_impl):
    # The compiled engine caches a module global's lookup against the module
    # dict's version on CPython 3.12 and 3.13 (setup.py): a bound swapped
    # after a place has read it must be seen by the next place, and its
    # restore by the one after.
    ex.buy(ALICE, price=P - 2, qty=Q)
    monkeypatch.setattr(engine_impl, "BOOK_MAX", 1)

    events = ex.buy(BOB, price=P - 1, qty=Q)

    assert kit.rejection(events) == Reason.BOOK_FULL
    monkeypatch.undo()
    assert kit.kinds(ex.buy(BOB, price=P - 1, qty=Q)) == ["OrderAccepted"]


def test_gtc_into_a_full_book_is_rejected_and_changes_nothing(ex, monkeypatch, engine_impl):
    # Five million live orders take too long to place: shrink the engine's bound.
    monkeypatch.setattr(engine_impl, "BOOK_MAX", 3)
    ex.buy(ALICE, price=P - 2, qty=Q)
    ex.buy(BOB, price=P - 1, qty=Q)
    ex.sell(CAROL, price=P + 1, qty=Q)
    before = ex.state_hash()

    events = ex.sell(ALICE, price=P + 2, qty=Q)

    assert kit.rejection(events) == Reason.BOOK_FULL
    assert ex.state_hash() == before


def test_every_place_reason_in_engine_md_is_produced_by_a_test():
    produced = {case.reason for case in PLACE_REJECTIONS} | {Reason.MAX_NUM_ORDERS, Reason.BOOK_FULL}

    documented = {Reason[name] for name, _ in kit.engine_md_place_checks()}

    assert documented <= produced


# Check order: when a command fails two checks, the one listed first in
# ENGINE.md wins.
PRECEDENCE = [
    Rejection("unknown-symbol-before-bad-cid", limit_order(ALICE, BUY, P, Q, symbol="X", client_order_id=""), Reason.UNKNOWN_SYMBOL),
    Rejection("bad-cid-before-bad-parameter", limit_order(ALICE, 7, P, Q, client_order_id=""), Reason.BAD_CLIENT_ORDER_ID),
    Rejection("bad-parameter-before-unknown-account", limit_order(99, BUY, P, Q, tif=9), Reason.BAD_PARAMETER),
    Rejection("unknown-account-before-price-filter", limit_order(99, BUY, 0, Q), Reason.INSUFFICIENT_BALANCE),
    Rejection("fee-account-before-price-filter", limit_order(FEE, BUY, 0, Q), Reason.RESERVED_ACCOUNT),
    Rejection("quote-qty-on-limit-before-price-filter", limit_order(ALICE, BUY, 0, Q, quote_qty=5), Reason.BAD_PARAMETER),
    Rejection("price-filter-before-lot-size", limit_order(ALICE, BUY, 0, 0), Reason.PRICE_FILTER),
    Rejection("lot-size-before-notional", limit_order(ALICE, BUY, 1, 0), Reason.LOT_SIZE),
    Rejection("notional-before-post-only-tif", limit_order(ALICE, BUY, 1, 1, post_only=True, tif=IOC), Reason.NOTIONAL),
    Rejection(
        "post-only-tif-before-would-take",
        limit_order(ALICE, BUY, P, Q, post_only=True, tif=IOC),
        Reason.BAD_PARAMETER,
        _bob_asks_at_p,
    ),
    Rejection(
        "would-take-before-insufficient-balance",
        limit_order(DAVE, BUY, P, Q, post_only=True),
        Reason.WOULD_TAKE,
        lambda ex: (_bob_asks_at_p(ex), ex.deposit(DAVE, "USDT", 1)),
    ),
    Rejection("market-price-before-quote-qty-sell", market_order(ALICE, SELL, quote_qty=10**9, price=P), Reason.BAD_PARAMETER),
    Rejection("quote-qty-sell-before-qty-check", market_order(ALICE, SELL, qty=Q, quote_qty=10**9), Reason.QUOTE_QTY_SELL),
    Rejection("by-quote-notional-before-balance", market_order(DAVE, BUY, quote_qty=1), Reason.NOTIONAL, _dave_has_btc_units(1)),
    Rejection("market-lot-size-before-balance", market_order(DAVE, BUY, qty=0), Reason.LOT_SIZE, _dave_has_btc_units(1)),
]


@pytest.mark.parametrize("case", PRECEDENCE, ids=lambda c: c.id)
def test_first_failing_check_in_engine_md_order_wins(ex, case):
    case.arrange(ex)
    before = ex.state_hash()

    events = ex.apply(case.command)

    assert kit.rejection(events) == case.reason
    assert ex.state_hash() == before


def test_reserved_client_order_id_answers_before_parameter_checks(ex):
    original = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q, client_order_id="a"))

    events = ex.apply(limit_order(ALICE, 7, 0, 0, client_order_id="a"))

    assert len(events) == 1 and isinstance(events[0], OrderDuplicate)
    assert events[0].order_id == original


# ------------------------------------------------------------ time in force


def test_gtc_that_does_not_cross_rests_and_locks_its_cost(ex):
    usdt_before = ex.free(ALICE, "USDT")

    events = ex.buy(ALICE, price=P, qty=Q)

    assert kit.kinds(events) == ["OrderAccepted"]
    assert ex.depth() == ([(P, Q)], [])
    assert ex.locked(ALICE, "USDT") == cost(P, Q)
    assert ex.free(ALICE, "USDT") == usdt_before - cost(P, Q)
    assert ex.status(ALICE, kit.accepted_id(events)) == OrderStatus.NEW


def test_accepted_event_describes_the_order(ex):
    events = ex.sell(ALICE, price=P, qty=Q, client_order_id="s1")

    assert events == [
        OrderAccepted(1, ALICE, "BTCUSDT", SELL, kit.LIMIT, kit.GTC, P, Q, 0, "s1"),
    ]


def test_order_ids_count_up_across_markets(ex):
    first = kit.accepted_id(ex.buy(ALICE, price=P, qty=Q))
    second = kit.accepted_id(ex.buy(ALICE, price=ticks("3000", "ETHUSDT"), qty=lots("1", "ETHUSDT"), symbol="ETHUSDT"))

    assert (first, second) == (1, 2)


def test_gtc_remainder_rests_after_partial_fill(ex):
    ex.sell(BOB, price=P, qty=400)

    events = ex.buy(ALICE, price=P, qty=Q)

    assert kit.kinds(events) == ["OrderAccepted", "Trade"]
    assert ex.depth() == ([(P, Q - 400)], [])
    assert ex.status(ALICE, kit.accepted_id(events)) == OrderStatus.PARTIALLY_FILLED


def test_ioc_remainder_expires(ex):
    ex.sell(BOB, price=P, qty=400)

    events = ex.buy(ALICE, price=P, qty=Q, tif=IOC)

    oid = kit.accepted_id(events)
    assert kit.kinds(events) == ["OrderAccepted", "Trade", "OrderExpired"]
    assert events[-1] == OrderExpired(oid, ALICE, "BTCUSDT", Q - 400, StopReason.IOC)
    assert ex.depth() == ([], [])
    assert ex.locked(ALICE, "USDT") == 0


def test_ioc_that_does_not_cross_expires_whole(ex):
    ex.sell(BOB, price=P + 1, qty=Q)

    events = ex.buy(ALICE, price=P, qty=Q, tif=IOC)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].qty == Q and events[-1].reason == StopReason.IOC
    assert ex.depth() == ([], [(P + 1, Q)])


def test_ioc_that_fills_completely_has_no_expiry(ex):
    ex.sell(BOB, price=P, qty=Q)

    events = ex.buy(ALICE, price=P, qty=Q, tif=IOC)

    assert kit.kinds(events) == ["OrderAccepted", "Trade"]


def test_fok_fills_completely_across_levels(ex):
    ex.sell(BOB, price=P, qty=600)
    ex.sell(CAROL, price=P + 1, qty=600)

    events = ex.buy(ALICE, price=P + 1, qty=Q, tif=FOK)

    assert [(t.price, t.qty) for t in kit.trades(events)] == [(P, 600), (P + 1, 400)]
    assert not kit.of_type(events, OrderExpired)
    assert ex.depth() == ([], [(P + 1, 200)])


def test_fok_that_cannot_fill_completely_expires_with_no_fill(ex):
    ex.sell(BOB, price=P, qty=600)
    ex.sell(CAROL, price=P + 1, qty=300)
    book_before = ex.depth()
    usdt_before = ex.free(ALICE, "USDT")

    events = ex.buy(ALICE, price=P + 1, qty=Q, tif=FOK)

    oid = kit.accepted_id(events)
    assert events[1:] == [OrderExpired(oid, ALICE, "BTCUSDT", Q, StopReason.FOK)]
    assert ex.depth() == book_before
    assert ex.free(ALICE, "USDT") == usdt_before


def test_fok_does_not_count_liquidity_beyond_its_limit(ex):
    ex.sell(BOB, price=P, qty=600)
    ex.sell(CAROL, price=P + 2, qty=Q)

    events = ex.buy(ALICE, price=P + 1, qty=Q, tif=FOK)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]


def test_fok_sell_that_does_not_cross_expires(ex):
    ex.buy(BOB, price=P - 1, qty=Q)

    events = ex.sell(ALICE, price=P, qty=Q, tif=FOK)

    assert events[-1].reason == StopReason.FOK and events[-1].qty == Q


def test_post_only_that_does_not_cross_rests(ex):
    ex.sell(BOB, price=P + 1, qty=Q)

    events = ex.buy(ALICE, price=P, qty=Q, post_only=True)

    assert kit.kinds(events) == ["OrderAccepted"]
    assert ex.depth() == ([(P, Q)], [(P + 1, Q)])


# ------------------------------------------------------- price-time priority


def test_same_price_fills_in_arrival_order(ex):
    first = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))
    second = kit.accepted_id(ex.sell(CAROL, price=P, qty=Q))

    events = ex.buy(ALICE, price=P, qty=Q + 1)

    assert [t.maker_order_id for t in kit.trades(events)] == [first, second]
    assert [t.qty for t in kit.trades(events)] == [Q, 1]


def test_better_price_fills_before_earlier_order(ex):
    ex.sell(CAROL, price=P + 1, qty=Q)
    cheaper = kit.accepted_id(ex.sell(BOB, price=P, qty=Q))

    events = ex.buy(ALICE, price=P + 1, qty=Q)

    assert [t.maker_order_id for t in kit.trades(events)] == [cheaper]


def test_higher_bid_fills_first_for_a_seller(ex):
    ex.buy(CAROL, price=P - 1, qty=Q)
    higher = kit.accepted_id(ex.buy(BOB, price=P, qty=Q))

    events = ex.sell(ALICE, price=P - 1, qty=Q)

    assert [(t.maker_order_id, t.price) for t in kit.trades(events)] == [(higher, P)]


def test_buy_taker_trades_at_the_makers_lower_price(ex):
    ex.sell(BOB, price=P, qty=Q)
    usdt_before = ex.free(ALICE, "USDT")

    events = ex.buy(ALICE, price=P + 500, qty=Q)

    assert kit.trades(events)[0].price == P
    assert ex.free(ALICE, "USDT") == usdt_before - cost(P, Q)
    assert ex.locked(ALICE, "USDT") == 0


def test_sell_taker_trades_at_the_makers_higher_price(ex):
    ex.buy(BOB, price=P, qty=Q)

    events = ex.sell(ALICE, price=P - 500, qty=Q)

    assert kit.trades(events)[0].price == P


def test_trades_come_in_matching_order_with_consecutive_ids(ex):
    a = kit.accepted_id(ex.sell(BOB, price=P + 1, qty=100))
    b = kit.accepted_id(ex.sell(CAROL, price=P, qty=100))
    c = kit.accepted_id(ex.sell(BOB, price=P, qty=100))

    events = ex.buy(ALICE, price=P + 1, qty=300)

    taker = kit.accepted_id(events)
    assert [(t.trade_id, t.maker_order_id, t.price) for t in kit.trades(events)] == [
        (1, b, P),
        (2, c, P),
        (3, a, P + 1),
    ]
    assert all(t.taker_order_id == taker and t.taker_side == BUY for t in kit.trades(events))


def test_taker_stops_at_its_limit_and_rests_there(ex):
    ex.sell(BOB, price=P, qty=100)
    ex.sell(BOB, price=P + 2, qty=100)

    ex.buy(ALICE, price=P + 1, qty=300)

    assert ex.depth() == ([(P + 1, 200)], [(P + 2, 100)])


# --------------------------------------------------------------------- fees


def test_buy_taker_pays_fee_in_base_and_sell_maker_in_quote_rounded_down(ex):
    qty = 1_237  # base 1,237,000 units: taker fee 618.5 -> 618
    price = P + 3  # notional 61,850,037,110 units: maker fee 12,370,007.42 -> 12,370,007
    ex.sell(BOB, price=price, qty=qty)
    notional = cost(price, qty)
    base = kit.base_units(qty)
    alice_btc, alice_usdt = ex.free(ALICE, "BTC"), ex.free(ALICE, "USDT")
    bob_usdt = ex.free(BOB, "USDT")

    events = ex.buy(ALICE, price=price, qty=qty)

    trade = kit.trades(events)[0]
    assert (trade.taker_fee, trade.maker_fee) == (618, 12_370_007)
    assert trade.taker_fee == base * BTCUSDT.taker_fee_bps // 10_000
    assert trade.maker_fee == notional * BTCUSDT.maker_fee_bps // 10_000
    assert ex.free(ALICE, "BTC") == alice_btc + base - 618
    assert ex.free(ALICE, "USDT") == alice_usdt - notional
    assert ex.free(BOB, "USDT") == bob_usdt + notional - 12_370_007
    assert ex.engine.balances(FEE)["BTC"] == (618, 0)
    assert ex.engine.balances(FEE)["USDT"] == (12_370_007, 0)


def test_sell_taker_pays_fee_in_quote_and_buy_maker_in_base(ex):
    qty = 1_237
    price = P + 3
    ex.buy(BOB, price=price, qty=qty)
    notional = cost(price, qty)
    base = kit.base_units(qty)
    bob_btc = ex.free(BOB, "BTC")
    alice_usdt = ex.free(ALICE, "USDT")

    events = ex.sell(ALICE, price=price, qty=qty)

    trade = kit.trades(events)[0]
    assert trade.taker_fee == notional * 5 // 10_000 == 30_925_018  # 30,925,018.555 rounded down
    assert trade.maker_fee == base * 2 // 10_000 == 247  # 247.4 rounded down
    assert ex.free(ALICE, "USDT") == alice_usdt + notional - 30_925_018
    assert ex.free(BOB, "BTC") == bob_btc + base - 247
    assert ex.locked(BOB, "USDT") == 0


def test_fee_smaller_than_one_unit_rounds_to_zero(ex):
    ex.sell(BOB, price=ticks("100000"), qty=1)  # 1 lot = 1,000 BTC units; 5 bps = 0.5

    events = ex.buy(ALICE, price=ticks("100000"), qty=1)

    assert kit.trades(events)[0].taker_fee == 0
    assert ex.engine.balances(FEE)["BTC"] == (0, 0)


def test_fees_accumulate_in_the_fee_account(ex):
    ex.sell(BOB, price=P, qty=Q)
    ex.sell(CAROL, price=P, qty=Q)

    events = ex.buy(ALICE, price=P, qty=2 * Q)

    fees_btc = sum(t.taker_fee for t in kit.trades(events))
    fees_usdt = sum(t.maker_fee for t in kit.trades(events))
    assert fees_btc == 2 * (kit.base_units(Q) * 5 // 10_000)
    assert ex.engine.balances(FEE) == {"BTC": (fees_btc, 0), "ETH": (0, 0), "USDT": (fees_usdt, 0)}


def test_fees_on_a_market_with_btc_as_quote(ex):
    # ETHBTC: 1 tick x 1 lot = 1 BTC unit. 0.05 BTC x 2.001 ETH.
    price, qty = ticks("0.05", "ETHBTC"), lots("2.001", "ETHBTC")
    ex.sell(BOB, price=price, qty=qty, symbol="ETHBTC")

    events = ex.buy(ALICE, price=price, qty=qty, symbol="ETHBTC")

    trade = kit.trades(events)[0]
    assert trade.maker_fee == 10_005_000 * 2 // 10_000 == 2_001  # BTC to the seller
    assert trade.taker_fee == 200_100_000 * 5 // 10_000 == 100_050  # ETH to the buyer


# ---------------------------------------------------------------- the bound


MANY_P = ticks("100000")  # one lot at 100,000 USDT is exactly min_notional


def _bob_posts_one_lot_asks(ex, count):
    ex.fund(BOB, BTC="1")
    ex.apply_all(limit_order(BOB, SELL, MANY_P, 1) for _ in range(count))


def test_taker_stops_after_trades_max_fills_and_gtc_remainder_expires():
    ex = kit.funded_exchange()
    _bob_posts_one_lot_asks(ex, limits.TRADES_PER_ORDER_MAX + 1)

    events = ex.buy(ALICE, price=MANY_P, qty=limits.TRADES_PER_ORDER_MAX + 2)

    assert len(kit.trades(events)) == limits.TRADES_PER_ORDER_MAX
    assert events[-1] == OrderExpired(kit.accepted_id(events), ALICE, "BTCUSDT", 2, StopReason.TRADES_MAX)
    assert ex.depth() == ([], [(MANY_P, 1)])


def test_fok_needing_more_than_trades_max_makers_expires_unfilled():
    ex = kit.funded_exchange()
    _bob_posts_one_lot_asks(ex, limits.TRADES_PER_ORDER_MAX + 1)

    events = ex.buy(ALICE, price=MANY_P, qty=limits.TRADES_PER_ORDER_MAX + 1, tif=FOK)

    assert kit.kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert events[-1].reason == StopReason.FOK
    assert ex.depth() == ([], [(MANY_P, limits.TRADES_PER_ORDER_MAX + 1)])


def test_fok_filled_by_exactly_trades_max_makers_fills():
    ex = kit.funded_exchange()
    _bob_posts_one_lot_asks(ex, limits.TRADES_PER_ORDER_MAX + 1)

    events = ex.buy(ALICE, price=MANY_P, qty=limits.TRADES_PER_ORDER_MAX, tif=FOK)

    assert len(kit.trades(events)) == limits.TRADES_PER_ORDER_MAX
    assert not kit.of_type(events, OrderExpired)


def test_the_engine_unpacks_a_place_order_in_its_field_order() -> None:
    """Engine._place unpacks a PlaceOrder positionally (one unpack, not ten
    attribute reads) and the ledger codec builds PlaceOrder and CancelOrder
    from their fields in order: a new field, or fields reordered, must be seen
    there."""
    from dex.core.commands import CancelOrder, PlaceOrder

    assert PlaceOrder._fields == ("account", "symbol", "side", "type", "tif", "price", "qty", "quote_qty", "post_only", "stp", "client_order_id")
    assert CancelOrder._fields == ("account", "symbol", "order_id", "client_order_id")


@pytest.mark.parametrize("plain", [int, bool], ids=["int", "bool"])
def test_enum_fields_given_as_plain_values_equal_to_members_act_as_the_members(plain):
    """The compiled `_place` reads an exact member's code directly and asks
    the code dicts about anything else; the pure engine compares values. An
    int equal to a member (1 or True for SELL) must act as that member in
    both, and leave the same state."""
    from dex.core.types import OrderType, SelfTradePrevention, TimeInForce

    def place(ex, side, otype, tif, stp):
        return ex.apply(limit_order(ALICE, side, P, Q, type=otype, tif=tif, stp=stp))

    members = (SELL, OrderType.LIMIT, TimeInForce.GTC, SelfTradePrevention.EXPIRE_MAKER)
    plains = tuple(plain(int(m)) for m in members)  # each member is 0 or 1: a bool can equal it
    with_members, with_plains = kit.funded_exchange(), kit.funded_exchange()
    a = place(with_members, *members)
    b = place(with_plains, *plains)

    assert kit.kinds(a) == kit.kinds(b) == ["OrderAccepted"]
    assert [tuple(e) for e in a] == [tuple(e) for e in b]  # equal fields (the plain values compare equal to members)
    assert with_members.state_hash() == with_plains.state_hash()


# ------------------------------------------------ costs past 64 bits


def _wide_market():
    """One lot is 10^18 base units and one tick one quote unit, with up to
    10^12 lots at up to 10^12 ticks: an order's cost (up to 10^24 units) and
    a sell's base amount (up to 10^30) pass 2^63, which the compiled engine's
    C arithmetic must not wrap."""
    from dex.core.markets import parse_markets

    return parse_markets({
        "assets": [{"name": "BIG", "decimals": 18}, {"name": "CASH", "decimals": 0}],
        "markets": [{
            "symbol": "BIGCASH", "base": "BIG", "quote": "CASH", "tick_size": "1", "step_size": "1",
            "min_qty": "1", "max_qty": "1000000000000", "max_price": "1000000000000", "min_notional": "1",
            "maker_fee_bps": 0, "taker_fee_bps": 0,
        }],
    })


@pytest.mark.parametrize(
    ("side", "price", "qty"),
    [
        (BUY, 10**12, 10**12),  # cost 10^24
        (BUY, 2**32, 2**31),  # cost 2^63 exactly: one past INT64_MAX
        (SELL, 1, 10**12),  # base amount 10^30
        (SELL, 1, 2**34),  # 2^34 lots of 10^18 units: ~2^93.8
    ],
    ids=["buy-cost-10e24", "buy-cost-2e63", "sell-amount-10e30", "sell-amount-2e34-lots"],
)
def test_an_order_whose_cost_passes_64_bits_is_refused_for_want_of_balance(side, price, qty):
    ex = kit.Exchange(_wide_market())
    ex.deposit(ALICE, "BIG", limits.AMOUNT_UNITS_MAX)
    ex.deposit(ALICE, "CASH", limits.AMOUNT_UNITS_MAX)
    before = ex.state_hash()

    events = ex.apply(limit_order(ALICE, side, price, qty, symbol="BIGCASH"))

    assert kit.rejection(events) == Reason.INSUFFICIENT_BALANCE
    assert ex.state_hash() == before


def test_an_order_that_costs_a_whole_62_bit_balance_rests_locking_it_exactly():
    ex = kit.Exchange(_wide_market())
    ex.deposit(ALICE, "CASH", 2**62)
    ex.deposit(BOB, "BIG", 4 * 10**18)

    # 2^31 ticks x 2^31 lots x 1 unit = 2^62: past 32 bits in every factor.
    buy = ex.apply(limit_order(ALICE, BUY, 2**31, 2**31, symbol="BIGCASH"))
    # 4 lots of 10^18 units: past 2^61 base units.
    sell = ex.apply(limit_order(BOB, SELL, 2**31 + 1, 4, symbol="BIGCASH"))

    assert isinstance(buy[0], OrderAccepted) and isinstance(sell[0], OrderAccepted)
    assert ex.engine.balances(ALICE)["CASH"] == (0, 2**62)
    assert ex.engine.balances(BOB)["BIG"] == (0, 4 * 10**18)
