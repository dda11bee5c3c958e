"""Accounts found by id and books by symbol. The compiled engine keeps a
fixed-size cache of its accounts in front of the `accounts` dict
(dex/engine/engine.py, `_cached_account`), so these tests hold more accounts
than the cache has slots (some ids must then share one), ids at the ends of
the u64 range, ids no account can have, and a snapshot read into an engine
that already looked accounts up. It also remembers the last book it found and
the symbol object it found it by (`_book_of`): commands alternate markets,
spell a symbol with equal and unequal objects, and name no market. Each runs
on both engines."""

from __future__ import annotations

import importlib

import pytest

from dex.core.commands import CancelOrder, Deposit
from dex.core.events import OrderRejected
from dex.core.reasons import Reason
from tests import kit
from tests.kit import BUY, SELL, cost, limit_order, lots, ticks

pytestmark = pytest.mark.usefixtures("engine_impl")  # each test runs on both engines (tests/engines.py)

P = ticks("50000")
ONE = lots("0.01")
# More accounts than the compiled cache's 4,096 slots: whatever its hash,
# some of these ids share a slot, and a lookup of one evicts another.
MAKERS = 5_000
WIDE_IDS = [2**64 - 1, 2**63, 2**63 - 1, 2**32, 7]


def _funded(ex: kit.Exchange, accounts) -> None:
    for a in accounts:
        ex.fund(a, USDT="100000", BTC="10")


def test_makers_beyond_the_cache_size_are_each_settled_on_their_own_account(engine_impl):
    ex = kit.Exchange()
    makers = list(range(10, 10 + MAKERS))
    taker = 1
    ex.fund(taker, USDT="10000000")
    for a in makers:
        ex.apply(Deposit(account=a, asset="BTC", amount=kit.units("1", "BTC")), check=False)
    # One ask each, one price apart, so the sweep below reaches them in id
    # order; then the taker buys every one of them in one order.
    for i, a in enumerate(makers):
        events = ex.apply(limit_order(a, SELL, P + i, ONE), check=False)
        assert not kit.of_type(events, OrderRejected), events
    events = ex.apply(limit_order(taker, BUY, P + MAKERS, ONE * MAKERS))
    trades = kit.trades(events)
    assert [t.maker_account for t in trades] == makers
    market = kit.markets().market("BTCUSDT")
    for i, a in enumerate(makers):
        notional = cost(P + i, ONE)
        fee = notional * market.maker_fee_bps // 10_000
        assert ex.free(a, "USDT") == notional - fee, a
        assert ex.free(a, "BTC") + ex.locked(a, "BTC") == kit.units("1", "BTC") - kit.base_units(ONE), a


def test_takers_beyond_the_cache_size_are_each_charged_on_their_own_account(engine_impl):
    ex = kit.Exchange()
    seller = 1
    takers = list(range(10, 10 + MAKERS))
    ex.fund(seller, BTC="100")
    ex.sell(seller, price=P, qty=2 * ONE * MAKERS)
    for a in takers:
        ex.apply(Deposit(account=a, asset="USDT", amount=2 * cost(P, ONE) + a), check=False)
    # Twice round: the second pass finds every taker after all the others
    # have been looked up (evicted from a shared slot, where ids share one).
    for _ in range(2):
        for a in takers:
            events = ex.apply(limit_order(a, BUY, P, ONE), check=False)
            assert [t.taker_account for t in kit.trades(events)] == [a]
    ex.engine.check_invariants()
    for a in takers:
        assert ex.free(a, "USDT") == a, a


@pytest.mark.parametrize("account", WIDE_IDS, ids=str)
def test_ids_across_the_u64_range_trade_as_any_other(engine_impl, account):
    ex = kit.funded_exchange()
    _funded(ex, [account])
    ex.sell(account, price=P, qty=ONE)
    trades = kit.trades(ex.buy(kit.ALICE, price=P, qty=ONE))
    assert [(t.maker_account, t.taker_account) for t in trades] == [(account, kit.ALICE)]
    trades = kit.trades(ex.sell(kit.BOB, price=P, qty=ONE) + ex.buy(account, price=P, qty=ONE))
    assert [(t.maker_account, t.taker_account) for t in trades] == [(kit.BOB, account)]


@pytest.mark.parametrize("account", [-1, 2**64, 2**70, -(2**63)], ids=str)
def test_an_id_no_account_can_have_is_refused_and_changes_nothing(engine_impl, account):
    ex = kit.funded_exchange()
    ex.sell(kit.BOB, price=P, qty=ONE)
    before = ex.state_hash()
    for command in (limit_order(account, BUY, P, ONE), CancelOrder(account=account, symbol="BTCUSDT", order_id=1)):
        (event,) = ex.apply(command)
        assert isinstance(event, OrderRejected) and event.account == account
    assert kit.rejection(ex.apply(limit_order(account, BUY, P, ONE))) == Reason.INSUFFICIENT_BALANCE
    assert ex.state_hash() == before


def test_a_snapshot_read_into_a_used_engine_trades_on_the_accounts_it_read(engine_impl):
    """The snapshot reader refills `accounts`; an engine that had looked
    accounts up before must not settle on the ones it held then."""
    used = kit.funded_exchange()
    used.sell(kit.BOB, price=P, qty=ONE)
    used.buy(kit.ALICE, price=P, qty=ONE)  # ALICE and BOB looked up as taker and maker
    other = kit.funded_exchange()
    other.fund(kit.ALICE, USDT="5")
    other.sell(kit.BOB, price=P, qty=ONE)
    snapshot = importlib.import_module(engine_impl.__package__ + ".snapshot")
    snapshot.decode(used.engine, other.engine.snapshot())
    fresh = other.restored()
    for ex in (used, fresh):
        trades = kit.trades(ex.buy(kit.ALICE, price=P, qty=ONE))
        assert [(t.maker_account, t.taker_account) for t in trades] == [(kit.BOB, kit.ALICE)]
    assert used.state_hash() == fresh.state_hash()
    assert used.engine.balances(kit.ALICE) == fresh.engine.balances(kit.ALICE)
    assert used.engine.balances(kit.BOB) == fresh.engine.balances(kit.BOB)


def test_commands_alternating_markets_and_symbol_objects_reach_their_own_book(engine_impl):
    ex = kit.funded_exchange()
    eth_p = ticks("3000", "ETHUSDT")
    eth_q = lots("0.1", "ETHUSDT")
    # The same symbol as distinct but equal str objects, and the markets in turn.
    btc = ["".join(["BTC", "USDT"]) for _ in range(3)]
    eth = ["".join(["ETH", "USDT"]) for _ in range(3)]
    assert btc[0] is not btc[1]
    for b, e in zip(btc, eth):
        assert not kit.of_type(ex.apply(limit_order(kit.BOB, SELL, P, ONE, symbol=b)), OrderRejected)
        assert not kit.of_type(ex.apply(limit_order(kit.BOB, SELL, eth_p, eth_q, symbol=e)), OrderRejected)
    assert ex.depth("BTCUSDT")[1] == [(P, 3 * ONE)]
    assert ex.depth("ETHUSDT")[1] == [(eth_p, 3 * eth_q)]
    for symbol in ("NOPEUSDT", None, btc[0]):  # no such market, then a known one again
        events = ex.apply(limit_order(kit.ALICE, BUY, P, ONE, symbol=symbol))
        if symbol == "BTCUSDT":
            assert [t.symbol for t in kit.trades(events)] == ["BTCUSDT"]
        else:
            assert kit.rejection(events) == Reason.UNKNOWN_SYMBOL
    trades = kit.trades(ex.apply(limit_order(kit.ALICE, BUY, eth_p, eth_q, symbol=eth[0])))
    assert [t.symbol for t in trades] == ["ETHUSDT"]
    assert ex.depth("BTCUSDT")[1] == [(P, 2 * ONE)]
    assert ex.depth("ETHUSDT")[1] == [(eth_p, 2 * eth_q)]
