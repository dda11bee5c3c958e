"""The engine against a naive reference (tests/property/reference.py), side by side.

A Hypothesis state machine sends the same random commands to the engine (each
implementation: pure Python, and compiled when built; tests/engines.py)
and to `Reference`: deposits and withdrawals, every kind of place (LIMIT
GTC/IOC/FOK, post-only, MARKET by qty and by quote amount, each STP mode),
cancels by id and by client id, cancel-all, amends. After every command the
two must have emitted the same events; after every step they must agree on
every order (by id and by client id), every balance (the fee account
included) and every book's depth, and `check_invariants()` must pass.

Markets are small on purpose: a few ticks around a mid of 100, a few lots,
fees large enough that rounding down shows, bounds close enough to be hit.
Client order ids come from a small pool, so duplicates happen. A second run
shrinks the engine's own bounds (dedup window, open orders per account and
per book, fills per taker) so those are reached too.

To replay a failure: Hypothesis prints the steps with every command as a note
and a `@reproduce_failure` blob, and replays the failure from its database on
the next `pytest tests/property -q`. Paste the commands into a regression test
like the ones at the bottom to keep it.

Runtime: about 30 s of CPU for the file.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dex.core import limits
from dex.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from dex.core.events import OrderAccepted, Trade
from dex.core.markets import parse_markets
from dex.core.reasons import Reason
from dex.core.types import OrderType, SelfTradePrevention, Side, TimeInForce
from dex.engine import Engine
from dex.engine import engine as pure_engine
from tests import engines
from tests.property.reference import Reference

TEST_CONFIG = parse_markets(
    {
        "assets": [
            {"name": "BTC", "decimals": 8},
            {"name": "ETH", "decimals": 8},
            {"name": "USD", "decimals": 6},
        ],
        "markets": [
            # lot = 10,000 BTC units; tick x lot = 50 USD units; 120 ticks max;
            # min notional 10,000 units: price x qty >= 200.
            {
                "symbol": "BTCUSD", "base": "BTC", "quote": "USD",
                "tick_size": "0.5", "step_size": "0.0001", "min_qty": "0.0001", "max_qty": "0.002",
                "max_price": "60", "min_notional": "0.01", "maker_fee_bps": 10, "taker_fee_bps": 25,
            },
            # lot = 100,000 ETH units; tick x lot = 10 USD units; 2..50 lots; 200 ticks max.
            {
                "symbol": "ETHUSD", "base": "ETH", "quote": "USD",
                "tick_size": "0.01", "step_size": "0.001", "min_qty": "0.002", "max_qty": "0.05",
                "max_price": "2", "min_notional": "0.002", "maker_fee_bps": 0, "taker_fee_bps": 30,
            },
            # lot = 1,000,000 ETH units; tick x lot = 1 BTC unit; 120 ticks max; 10% maker fee.
            {
                "symbol": "ETHBTC", "base": "ETH", "quote": "BTC",
                "tick_size": "0.000001", "step_size": "0.01", "min_qty": "0.01", "max_qty": "0.3",
                "max_price": "0.00012", "min_notional": "0.000002", "maker_fee_bps": 1000,
                "taker_fee_bps": 100,
            },
        ],
    }
)
SYMBOLS = [m.symbol for m in TEST_CONFIG.markets]
ASSETS = [a.name for a in TEST_CONFIG.assets]
MARKETS = {m.symbol: m for m in TEST_CONFIG.markets}
MID_TICKS = 100
TRADERS = [1, 2, 3, 4]
# Accounts a command may name: the traders, the fee account, one never
# deposited to (unless a deposit creates it), a negative id and one past u64.
ACCOUNTS_ANY = [1, 2, 3, 4, 0, 9, -1, limits.ACCOUNT_ID_MAX + 1]
ASSET_SCALE = {"BTC": 2_000_000, "ETH": 200_000_000, "USD": 1_000_000}  # units for ~20 orders
# About two lots' worth at the mid: what a "leave a little" withdrawal leaves.
LITTLE = {"BTC": 400, "ETH": 3_000_000, "USD": 12_000}
# Trader 4 is poor: funded and topped up a little at a time, so its market
# buys run out of quote and its amends cannot always afford more.
POOR_TRADER = 4


def funding(account: int) -> dict[str, int]:
    return LITTLE if account == POOR_TRADER else ASSET_SCALE
CLIENT_IDS = ["a", "b", "c", "d", "e", "f"]
BAD_CLIENT_IDS = ["", "x" * 37, "tab\there", "caf\u00e9", "del\x7f"]
DEPTH_LEVELS_MAX = 1_000

# What a step does, weighted by repetition. Block times step by 1, 0 (several
# commands in one block) or 250 ms; they never go back.
STEP_KINDS = (
    ["place_resting"] * 4 + ["place_crossing"] * 2 + ["place"] * 4 + ["cancel"] * 2 + ["amend"] * 3
    + ["cancel_all", "deposit", "withdraw", "snapshot_restore"]
)

traders = st.sampled_from(TRADERS)
any_account = st.sampled_from(ACCOUNTS_ANY)
symbols = st.sampled_from(SYMBOLS)
sides = st.sampled_from([Side.BUY, Side.SELL])
stps = st.sampled_from(list(SelfTradePrevention))
client_ids = st.one_of(st.none(), st.sampled_from(CLIENT_IDS))
client_ids_any = st.one_of(st.none(), st.sampled_from(CLIENT_IDS), st.sampled_from(BAD_CLIENT_IDS))


def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` about four times in five, else `odd` (one_of picks branches evenly)."""
    return st.one_of(usual, usual, usual, usual, odd)


def prices(symbol: str) -> st.SearchStrategy[int]:
    """Near the mid, so books cross often; sometimes at or past a bound."""
    top = MARKETS[symbol].max_price_ticks
    return mostly(st.integers(MID_TICKS - 5, MID_TICKS + 5), st.sampled_from([0, -1, 1, top, top + 1]))


def quantities(symbol: str) -> st.SearchStrategy[int]:
    """Mostly valid lots (from two above the minimum, so most pass the
    notional filter); sometimes at or past a bound."""
    m = MARKETS[symbol]
    return mostly(
        st.integers(m.min_qty_lots + 2, m.min_qty_lots + 10),
        st.sampled_from([0, -1, m.min_qty_lots - 1, m.min_qty_lots, m.max_qty_lots, m.max_qty_lots + 1]),
    )


def same_events(engine: Engine, ref: Reference, cmd, now: int) -> list:
    """Apply `cmd` to both; the events must be identical."""
    got = engine.apply(cmd, now)
    want = ref.apply(cmd, now)
    assert got == want, f"{cmd!r} at {now}:\n engine:    {got}\n reference: {want}"
    return got


def same_state(engine: Engine, ref: Reference) -> None:
    """Orders, balances and books agree; both sides' invariants hold."""
    engine.check_invariants()
    ref.check_invariants()
    for account in sorted(ref.accounts | set(ACCOUNTS_ANY)):
        assert engine.balances(account) == ref.balances(account), f"balances of account {account}"
        assert engine.open_orders(account) == ref.open_orders(account), f"open orders of {account}"
        for symbol in SYMBOLS:
            assert engine.open_orders(account, symbol) == ref.open_orders(account, symbol)
            for cid in CLIENT_IDS:
                got = engine.order(account, symbol, client_order_id=cid)
                want = ref.order(account, symbol, client_order_id=cid)
                assert got == want, f"order {account}/{symbol}/{cid!r}:\n engine: {got}\n ref:    {want}"
    for order in ref.orders.values():
        # Found by id only while live, and only in its own symbol (cancels and
        # amends naming another symbol check the rest).
        got = engine.order(order.account, order.symbol, order_id=order.order_id)
        want = ref.order(order.account, order.symbol, order_id=order.order_id)
        assert got == want, f"order {order.order_id}:\n engine: {got}\n ref:    {want}"
    for symbol in SYMBOLS:
        assert engine.depth(symbol, DEPTH_LEVELS_MAX) == ref.depth(symbol), f"depth of {symbol}"
    assert engine.next_order_id == ref.next_order_id
    assert engine.next_trade_id == ref.next_trade_id


class EngineVsReference(RuleBasedStateMachine):
    """One rule, `step`, draws what to do next from a weighted list. (With a
    rule per command, Hypothesis's swarm testing switches whole rules off per
    example, and most runs then never placed two orders that cross.) Each kind
    mixes the usual case with odd ones: bad fields, other accounts, bounds."""

    engine_module = pure_engine  # the implementation under test (tests/engines.py)

    def __init__(self) -> None:
        super().__init__()
        if self.engine_module is None:
            pytest.skip("*** compiled engine not available: see dex.engine.load_compiled() ***")
        self.engine = self.engine_module.Engine(TEST_CONFIG)
        self.ref = Reference(TEST_CONFIG)
        self.now_ms = 1_700_000_000_000

    def apply(self, cmd) -> list:
        note(f"t={self.now_ms} {cmd!r}")
        events = same_events(self.engine, self.ref, cmd, self.now_ms)
        for e in events:  # what was covered: `pytest --hypothesis-show-statistics`
            reason = getattr(e, "reason", None)
            event(f"{type(cmd).__name__} -> {type(e).__name__}" + (f" {reason.name}" if reason is not None else ""))
        if events and isinstance(events[0], OrderAccepted):
            order = self.ref.orders[events[0].order_id]
            how = "by quote" if cmd.quote_qty else order.tif.name
            event(f"{order.type.name} {order.side.name} {how} -> {order.status.name}")
        return events

    @initialize(data=st.data())
    def fund(self, data) -> None:
        """Start most traders with some of every asset."""
        for account in TRADERS:
            for asset in ASSETS:
                k = data.draw(st.sampled_from([1, 2, 3, 4, 0]), label=f"funds {account} {asset}")
                if k:
                    self.apply(Deposit(account=account, asset=asset, amount=k * funding(account)[asset]))

    # ------------------------------------------------------------- wallet

    def deposit(self, data) -> None:
        """Usually a trader tops up; sometimes a reserved account, an unknown
        asset, a bad amount or one unit past the supply bound."""
        asset = data.draw(st.sampled_from(ASSETS), label="asset")
        supply = self.ref.supply[asset]
        account, asset, amount = data.draw(
            mostly(
                traders.flatmap(lambda a: st.tuples(st.just(a), st.just(asset), st.integers(1, 3 * funding(a)[asset]))),
                st.tuples(
                    any_account,
                    st.sampled_from([asset, "DOGE"]),
                    st.sampled_from([7, 0, -5, limits.AMOUNT_UNITS_MAX + 1, limits.BALANCE_UNITS_MAX - supply + 1]),
                ),
            ),
            label="deposit",
        )
        self.apply(Deposit(account=account, asset=asset, amount=amount))

    def withdraw(self, data) -> None:
        account = data.draw(st.sampled_from(ACCOUNTS_ANY), label="account")
        asset = data.draw(st.sampled_from([*ASSETS, "DOGE"]), label="asset")
        free = self.ref.get_free(account, asset)
        # Often leave only a little behind, so market buys run out of quote
        # and amends cannot afford more.
        little = LITTLE.get(asset, 1)
        amount = data.draw(
            mostly(
                st.one_of(st.integers(1, max(1, free)), st.integers(max(1, free - little), max(1, free))),
                st.sampled_from([free, free + 1, 0, -1, limits.AMOUNT_UNITS_MAX + 1]),
            ),
            label="amount",
        )
        self.apply(Withdraw(account=account, asset=asset, amount=amount))

    # -------------------------------------------------------------- place

    def draw_order_basics(self, data) -> tuple[int, str, Side, SelfTradePrevention, str | None]:
        return (
            data.draw(traders, label="account"),
            data.draw(symbols, label="symbol"),
            data.draw(sides, label="side"),
            data.draw(stps, label="stp"),
            data.draw(client_ids, label="cid"),
        )

    def place_resting(self, data) -> None:
        """A plain GTC limit order, so books fill up and later orders cross."""
        account, symbol, side, stp, cid = self.draw_order_basics(data)
        price = data.draw(st.integers(MID_TICKS - 5, MID_TICKS + 5), label="price")
        qty = data.draw(st.integers(MARKETS[symbol].min_qty_lots + 2, MARKETS[symbol].min_qty_lots + 8), label="qty")
        self.apply(PlaceOrder(account=account, symbol=symbol, side=side, price=price, qty=qty, stp=stp, client_order_id=cid))

    def place_crossing(self, data) -> None:
        """A limit order priced through the best opposite price, so it trades,
        often across several levels and into the account's own orders."""
        account, symbol, side, stp, cid = self.draw_order_basics(data)
        bids, asks = self.ref.depth(symbol)
        opposite = asks if side == Side.BUY else bids
        if not opposite:
            return self.place_resting(data)
        through = data.draw(st.integers(0, 4), label="ticks through")
        price = opposite[0][0] + through if side == Side.BUY else max(1, opposite[0][0] - through)
        m = MARKETS[symbol]
        self.apply(
            PlaceOrder(
                account=account, symbol=symbol, side=side, type=OrderType.LIMIT,
                tif=data.draw(st.sampled_from(list(TimeInForce)), label="tif"),
                price=price, qty=data.draw(st.integers(m.min_qty_lots + 2, m.min_qty_lots + 20), label="qty"),
                stp=stp, client_order_id=cid,
            )
        )

    def place(self, data) -> None:
        """Any kind of order: LIMIT GTC/IOC/FOK, post-only, MARKET by qty or by
        quote amount; now and then one with fields out of range."""
        account, symbol, side, stp, cid = self.draw_order_basics(data)
        m = MARKETS[symbol]
        kind = data.draw(st.sampled_from(["limit", "limit", "market", "market", "post-only", "odd"]), label="kind")
        if kind in ("limit", "post-only"):
            cmd = PlaceOrder(
                account=account, symbol=symbol, side=side, type=OrderType.LIMIT,
                tif=data.draw(st.sampled_from(list(TimeInForce)), label="tif"),
                price=data.draw(prices(symbol), label="price"),
                qty=data.draw(quantities(symbol), label="qty"),
                post_only=kind == "post-only", stp=stp, client_order_id=cid,
            )
        elif kind == "market" and side == Side.BUY and data.draw(st.booleans(), label="by quote"):
            lot_cost = MID_TICKS * m.notional_units
            quote_qty = data.draw(
                mostly(
                    st.integers(m.min_notional_units, 15 * lot_cost),
                    st.sampled_from([m.min_notional_units - 1, lot_cost - 1, lot_cost, 3 * lot_cost]),
                ),
                label="quote_qty",
            )
            cmd = PlaceOrder(
                account=account, symbol=symbol, side=side, type=OrderType.MARKET,
                quote_qty=quote_qty, stp=stp, client_order_id=cid,
            )
        elif kind == "market":
            cmd = PlaceOrder(
                account=account, symbol=symbol, side=side, type=OrderType.MARKET,
                qty=data.draw(quantities(symbol), label="qty"), stp=stp, client_order_id=cid,
            )
        else:
            cmd = PlaceOrder(
                account=data.draw(any_account, label="account"),
                symbol=data.draw(st.sampled_from([symbol, "NOPE"]), label="symbol"),
                side=data.draw(st.sampled_from([side, 2]), label="side"),
                type=data.draw(st.sampled_from([0, 1, 2]), label="type"),
                tif=data.draw(st.sampled_from([0, 1, 2, 3]), label="tif"),
                price=data.draw(prices(symbol), label="price"),
                qty=data.draw(quantities(symbol), label="qty"),
                quote_qty=data.draw(st.sampled_from([0, -1, 9, 20_000, limits.AMOUNT_UNITS_MAX + 1]), label="quote_qty"),
                post_only=data.draw(st.booleans(), label="post_only"),
                stp=data.draw(st.sampled_from([stp, 3]), label="stp"),
                client_order_id=data.draw(client_ids_any, label="cid"),
            )
        self.apply(cmd)

    # ---------------------------------------------------- cancel and amend

    def target(self, data) -> tuple[int, str, int, str | None]:
        """(account, symbol, order_id, client_order_id) naming a known order
        (live ones more likely) by id or client id, or not quite."""
        live = [o for o in self.ref.orders.values() if o.live]
        pool = live * 4 + list(self.ref.orders.values())
        how = data.draw(
            st.sampled_from(["id", "id", "id", "cid", "cid", "other symbol", "other account", "nothing"]),
            label="target",
        )
        if not pool or how == "nothing":
            return (
                data.draw(any_account, label="account"),
                data.draw(st.sampled_from([*SYMBOLS, "NOPE"]), label="symbol"),
                data.draw(st.sampled_from([0, 1, 2, 999]), label="order_id"),
                data.draw(client_ids_any, label="cid"),
            )
        order = data.draw(st.sampled_from(pool), label="order")
        if how == "id":
            return order.account, order.symbol, order.order_id, None
        if how == "cid":
            cid = order.client_order_id or data.draw(st.sampled_from(CLIENT_IDS), label="cid")
            return order.account, order.symbol, 0, cid
        if how == "other symbol":
            symbol = data.draw(st.sampled_from([s for s in SYMBOLS if s != order.symbol] + ["NOPE"]), label="symbol")
            return order.account, symbol, order.order_id, order.client_order_id
        account = data.draw(st.sampled_from([a for a in TRADERS if a != order.account]), label="account")
        return account, order.symbol, order.order_id, order.client_order_id

    def cancel(self, data) -> None:
        account, symbol, order_id, cid = self.target(data)
        self.apply(CancelOrder(account=account, symbol=symbol, order_id=order_id, client_order_id=cid))

    def cancel_all(self, data) -> None:
        account = data.draw(any_account, label="account")
        symbol = data.draw(st.sampled_from([None, *SYMBOLS, "NOPE"]), label="symbol")
        self.apply(CancelAll(account=account, symbol=symbol))

    def crossing_price(self, order) -> st.SearchStrategy[int]:
        """At or just through the best opposite price, so the amend matches."""
        if order is None:
            return st.just(0)
        bids, asks = self.ref.depth(order.symbol)
        opposite = asks if order.side == Side.BUY else bids
        if not opposite:
            return st.just(0)
        best = opposite[0][0]
        return st.sampled_from([best, best + 1, best - 1]).filter(lambda p: p > 0)

    def amend(self, data) -> None:
        """New price and/or new total qty (0 keeps it), usually close to the
        current ones so priority is kept about as often as it is lost."""
        account, symbol, order_id, cid = self.target(data)
        order = self.ref.find(account, symbol, order_id, cid)
        some_symbol = symbol if symbol in MARKETS else SYMBOLS[0]
        crossing = self.crossing_price(order)
        price = data.draw(st.one_of(st.just(0), prices(some_symbol), crossing, crossing), label="price")
        if order is not None and data.draw(st.booleans(), label="qty near current"):
            qty = data.draw(st.integers(order.qty - 3, order.qty + 3), label="qty")
        else:
            qty = data.draw(st.one_of(st.just(0), quantities(some_symbol)), label="qty")
        self.apply(AmendOrder(account=account, symbol=symbol, order_id=order_id, client_order_id=cid, price=price, qty=qty))

    # ----------------------------------------------------------- snapshot

    def snapshot_restore(self, data) -> None:
        """Carry on with a restored engine: it must be the same engine."""
        restored = self.engine_module.Engine.restore(TEST_CONFIG, self.engine.snapshot())
        assert restored.state_hash() == self.engine.state_hash()
        self.engine = restored

    @rule(data=st.data())
    def step(self, data) -> None:
        self.now_ms += data.draw(st.sampled_from([1, 0, 250]), label="block time step")
        kind = data.draw(st.sampled_from(STEP_KINDS), label="step")
        getattr(self, kind)(data)

    @invariant()
    def agree(self) -> None:
        same_state(self.engine, self.ref)

    def teardown(self) -> None:
        trades = self.ref.next_trade_id - 1
        event(f"trades per run: {'0' if trades == 0 else '1-9' if trades < 10 else '10-29' if trades < 30 else '30+'}")


EngineVsReference.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=80,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineVsReference = EngineVsReference.TestCase


# The engine's bounds as its module constants, and what the small-bounds run
# sets them to: small enough that books, accounts, takers and the dedup window
# all reach them within a run.
SMALL_BOUNDS = {
    "DEDUP_MAX": (limits.DEDUP_FINISHED_ORDERS_MAX, 3),
    "OPEN_MAX": (limits.OPEN_ORDERS_PER_ACCOUNT_MAX, 5),
    "BOOK_MAX": (limits.BOOK_ORDERS_MAX, 8),
    "TRADES_MAX": (limits.TRADES_PER_ORDER_MAX, 2),
}


class EngineVsReferenceSmallBounds(EngineVsReference):
    """The same with tiny bounds: a dedup window of 3 finished orders (client
    ids fall out of it and are reused), 5 open orders per account, 8 per book
    and 2 fills per taker. The engine reads its bounds from module constants
    in its engine module; they are swapped for the run and put back in
    teardown, which Hypothesis always calls."""

    def __init__(self) -> None:
        super().__init__()
        engine_module = self.engine_module
        for name, (usual, _) in SMALL_BOUNDS.items():  # all checked before any is changed
            assert getattr(engine_module, name, None) == usual, f"{engine_module.__name__}.{name} moved"
        for name, (_, small) in SMALL_BOUNDS.items():
            setattr(engine_module, name, small)
        self.ref = Reference(
            TEST_CONFIG,
            dedup_window=SMALL_BOUNDS["DEDUP_MAX"][1],
            open_orders_max=SMALL_BOUNDS["OPEN_MAX"][1],
            book_orders_max=SMALL_BOUNDS["BOOK_MAX"][1],
            trades_max=SMALL_BOUNDS["TRADES_MAX"][1],
        )

    def teardown(self) -> None:
        for name, (usual, _) in SMALL_BOUNDS.items():
            setattr(self.engine_module, name, usual)
        super().teardown()


EngineVsReferenceSmallBounds.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=80,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineVsReferenceSmallBounds = EngineVsReferenceSmallBounds.TestCase


# The same two runs against the compiled engine (docs/ENGINE.md, "Two
# implementations"); skipped, saying so, where it is not built.
_COMPILED = engines.available()[1] if len(engines.available()) > 1 else None


class CompiledEngineVsReference(EngineVsReference):
    engine_module = _COMPILED


class CompiledEngineVsReferenceSmallBounds(EngineVsReferenceSmallBounds):
    engine_module = _COMPILED


CompiledEngineVsReference.TestCase.settings = EngineVsReference.TestCase.settings
CompiledEngineVsReferenceSmallBounds.TestCase.settings = EngineVsReferenceSmallBounds.TestCase.settings
TestCompiledEngineVsReference = CompiledEngineVsReference.TestCase
TestCompiledEngineVsReferenceSmallBounds = CompiledEngineVsReferenceSmallBounds.TestCase


# ----------------------------------------------------------------- regressions
# Shrunk failures found by the state machine (or by reading ENGINE.md against
# what it found), kept as plain tests. Each names the rule of ENGINE.md it holds
# the engine to.


def run_side_by_side(commands: list) -> list:
    """Apply `commands` (one block each) to the reference and to every engine
    implementation built here; return the last events (the same for all)."""
    results = []
    for module in engines.available():
        engine = module.Engine(TEST_CONFIG)
        ref = Reference(TEST_CONFIG)
        events: list = []
        for now, cmd in enumerate(commands, start=1):
            events = same_events(engine, ref, cmd, now)
            same_state(engine, ref)
        results.append(events)
    assert all(events == results[0] for events in results[1:])
    return results[0]


def two_asks_one_own() -> list:
    """BTCUSD asks: account 1 sells 2 lots at 100, then account 2 (the taker
    to come) sells 2 lots at 101. One lot at 100 costs 100 x 50 = 5,000 USD
    units; the two lots at 100 cost 10,000, the market's min notional."""
    return [
        Deposit(account=1, asset="BTC", amount=1_000_000),
        Deposit(account=2, asset="BTC", amount=1_000_000),
        Deposit(account=2, asset="USD", amount=1_000_000),
        PlaceOrder(account=1, symbol="BTCUSD", side=Side.SELL, price=100, qty=2),
        PlaceOrder(account=2, symbol="BTCUSD", side=Side.SELL, price=101, qty=2),
    ]


def market_buy_by_quote(quote_qty: int, stp: SelfTradePrevention) -> PlaceOrder:
    return PlaceOrder(
        account=2, symbol="BTCUSD", side=Side.BUY, type=OrderType.MARKET, quote_qty=quote_qty, stp=stp,
    )


def test_withdraw_from_a_negative_account_is_reserved() -> None:
    """ENGINE.md, deposits and withdrawals: "account 0 or negative -9005",
    checked before the amount. The engine checks only account 0 on withdraw
    and answers BAD_AMOUNT (amount 0) or WITHDRAW_INSUFFICIENT (amount 5)."""
    for amount in (0, 5):
        events = run_side_by_side([Withdraw(account=-1, asset="BTC", amount=amount)])
        assert [e.reason for e in events] == [Reason.RESERVED_ACCOUNT]


def test_withdraw_from_an_account_id_past_u64_is_a_bad_parameter() -> None:
    """ENGINE.md, deposits and withdrawals: "account id above 2^64 - 1 -1102".
    The engine checks it on deposits only; a withdrawal answers
    WITHDRAW_INSUFFICIENT."""
    events = run_side_by_side([Withdraw(account=limits.ACCOUNT_ID_MAX + 1, asset="BTC", amount=5)])
    assert [e.reason for e in events] == [Reason.BAD_PARAMETER]


def test_buy_by_quote_spent_exactly_stops_before_own_maker() -> None:
    """ENGINE.md: a market buy by quote "is FILLED once the remaining budget
    ... is spent exactly". The engine, with EXPIRE_MAKER, goes on to the next
    maker after the budget is spent and cancels the taker's own ask at 101,
    which it could never have traded with."""
    events = run_side_by_side([*two_asks_one_own(), market_buy_by_quote(10_000, SelfTradePrevention.EXPIRE_MAKER)])
    assert [type(e) for e in events] == [OrderAccepted, Trade]


def test_buy_by_quote_that_cannot_buy_a_lot_is_filled_not_self_traded() -> None:
    """ENGINE.md: FILLED "once the remaining budget cannot buy one lot at the
    best price (stop NO_BALANCE)". After 2 lots at 100, 5,000 units are left
    and a lot at 101 costs 5,050: the order is FILLED whatever sits at 101.
    The engine meets the taker's own ask first and, under EXPIRE_TAKER,
    expires the order (SELF_TRADE); under EXPIRE_BOTH it also cancels the ask."""
    for stp in (SelfTradePrevention.EXPIRE_TAKER, SelfTradePrevention.EXPIRE_BOTH):
        events = run_side_by_side([*two_asks_one_own(), market_buy_by_quote(15_000, stp)])
        assert [type(e) for e in events] == [OrderAccepted, Trade], stp


def test_a_level_thinned_by_many_cancels_still_matches_in_time_order() -> None:
    """Out of the state machine's reach: the engine leaves cancelled orders
    dead in their level's queue and compacts the queue once it holds more
    than 32 entries beyond twice the live ones. Sixty bids at one price, all
    but four cancelled (compacting at the 47th cancel), then a sell that
    takes the level must meet the four in the order they arrived."""
    bids_count = 60
    kept = [5, 17, 30, 59]  # order ids are 1..60 in placing order
    commands: list = [
        Deposit(account=1, asset="USD", amount=2_000_000),
        Deposit(account=2, asset="USD", amount=2_000_000),
        Deposit(account=3, asset="BTC", amount=1_000_000),
    ]
    commands += [
        PlaceOrder(account=1 + i % 2, symbol="BTCUSD", side=Side.BUY, price=100, qty=2 + i % 3)
        for i in range(bids_count)
    ]
    commands += [
        CancelOrder(account=1 + (order_id - 1) % 2, symbol="BTCUSD", order_id=order_id)
        for order_id in range(1, bids_count + 1)
        if order_id not in kept
    ]
    commands.append(PlaceOrder(account=3, symbol="BTCUSD", side=Side.SELL, price=100, qty=20, tif=TimeInForce.IOC))
    events = run_side_by_side(commands)
    assert [e.maker_order_id for e in events if isinstance(e, Trade)] == kept
