"""Test kit: factories for configs, engines, funded accounts and orders.

Tests speak the engine's units (ticks, lots, asset units) and build them
from decimal strings with `ticks`, `lots` and `units`, so a test reads like
the market it trades: `ex.buy(ALICE, price=ticks("50000"), qty=lots("0.01"))`.

`Exchange` wraps an `Engine` with a block clock that advances one
millisecond per command and runs `check_invariants()` after every command
(pass `check=False` to bulk helpers that place thousands of orders; they
check once at the end). Nothing here patches the engine.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from dex.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from dex.core.events import OrderAccepted, OrderRejected, Trade
from dex.core.markets import MarketConfig, amount_to_units, load_markets, parse_markets
from dex.core.reasons import Reason
from dex.core.types import (
    FEE_ACCOUNT,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from dex.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
MARKETS_TOML = ROOT / "configs" / "markets.toml"

BUY = Side.BUY
SELL = Side.SELL
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
EXPIRE_TAKER = SelfTradePrevention.EXPIRE_TAKER
EXPIRE_MAKER = SelfTradePrevention.EXPIRE_MAKER
EXPIRE_BOTH = SelfTradePrevention.EXPIRE_BOTH

FEE = FEE_ACCOUNT
ALICE = 1
BOB = 2
CAROL = 3
DAVE = 4

SYMBOL = "BTCUSDT"  # the market most engine tests trade


# ------------------------------------------------------------------ configs


@functools.cache
def markets() -> MarketConfig:
    """The real market config, configs/markets.toml."""
    return load_markets(MARKETS_TOML)


def market_doc(**market_overrides) -> dict:
    """A parse_markets document with one market, TESTUSD (BASE/QUOTE).

    BASE and QUOTE have 3 and 2 decimals; one lot is 0.1 BASE (100 units) and
    one tick 0.5 QUOTE, so one tick times one lot is 5 QUOTE units. Keyword
    arguments override the market's fields."""
    market = {
        "symbol": "TESTUSD",
        "base": "BASE",
        "quote": "QUOTE",
        "tick_size": "0.5",
        "step_size": "0.1",
        "min_qty": "0.1",
        "max_qty": "1000",
        "max_price": "10000",
        "min_notional": "1",
        "maker_fee_bps": 10,
        "taker_fee_bps": 30,
    }
    market.update(market_overrides)
    return {
        "assets": [{"name": "BASE", "decimals": 3}, {"name": "QUOTE", "decimals": 2}],
        "markets": [market],
    }


def inline_config(**market_overrides) -> MarketConfig:
    return parse_markets(market_doc(**market_overrides))


# ------------------------------------------------------------- conversions


def ticks(price: str, symbol: str = SYMBOL) -> int:
    value = markets().market(symbol).price_to_ticks(price)
    assert value is not None, f"{price} is not a whole number of {symbol} ticks"
    return value


def lots(qty: str, symbol: str = SYMBOL) -> int:
    value = markets().market(symbol).qty_to_lots(qty)
    assert value is not None, f"{qty} is not a whole number of {symbol} lots"
    return value


def units(amount: str, asset: str) -> int:
    value = amount_to_units(markets().asset(asset), amount)
    assert value is not None, f"{amount} is not a whole number of {asset} units"
    return value


def cost(price: int, qty: int, symbol: str = SYMBOL) -> int:
    """Quote units that `qty` lots cost at `price` ticks."""
    return price * qty * markets().market(symbol).notional_units


def base_units(qty: int, symbol: str = SYMBOL) -> int:
    """Base units in `qty` lots."""
    return qty * markets().market(symbol).lot_units


# ------------------------------------------------------------------ commands


def limit_order(
    account: int, side: Side, price: int, qty: int, *, symbol: str = SYMBOL, **fields
) -> PlaceOrder:
    return PlaceOrder(account=account, symbol=symbol, side=side, price=price, qty=qty, **fields)


def market_order(
    account: int, side: Side, *, qty: int = 0, quote_qty: int = 0, symbol: str = SYMBOL, **fields
) -> PlaceOrder:
    return PlaceOrder(
        account=account,
        symbol=symbol,
        side=side,
        type=MARKET,
        tif=IOC,
        qty=qty,
        quote_qty=quote_qty,
        **fields,
    )


# ------------------------------------------------------------------- events


def of_type(events: Iterable, cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def accepted_id(events: list) -> int:
    """The id of the order a place created (its OrderAccepted comes first)."""
    assert events and isinstance(events[0], OrderAccepted), events
    return events[0].order_id


def rejection(events: list) -> Reason:
    """The reason of a command answered by exactly one OrderRejected."""
    assert len(events) == 1 and isinstance(events[0], OrderRejected), events
    return events[0].reason


def trades(events: list) -> list[Trade]:
    return of_type(events, Trade)


def kinds(events: list) -> list[str]:
    """Event class names in order: compact to compare an event sequence."""
    return [type(e).__name__ for e in events]


# ----------------------------------------------------------------- exchange


class Exchange:
    """An engine on a block clock, with one helper per command."""

    def __init__(self, config: MarketConfig | None = None, *, start_ms: int = 1_700_000_000_000) -> None:
        self.config = config or markets()
        self.engine = Engine(self.config)
        self.time_ms = start_ms

    def apply(self, command, *, check: bool = True) -> list:
        self.time_ms += 1
        events = self.engine.apply(command, self.time_ms)
        if check:
            self.engine.check_invariants()
        return events

    def apply_all(self, commands: Iterable) -> list[list]:
        """Apply many commands, checking invariants once at the end."""
        out = [self.apply(c, check=False) for c in commands]
        self.engine.check_invariants()
        return out

    def restored(self) -> Exchange:
        """A new exchange restored from this one's snapshot, on the same clock."""
        other = Exchange(self.config, start_ms=self.time_ms)
        other.engine = Engine.restore(self.config, self.engine.snapshot())
        return other

    # Wallet.
    def deposit(self, account: int, asset: str, amount: int) -> list:
        return self.apply(Deposit(account=account, asset=asset, amount=amount))

    def withdraw(self, account: int, asset: str, amount: int) -> list:
        return self.apply(Withdraw(account=account, asset=asset, amount=amount))

    def fund(self, account: int, **amounts: str) -> None:
        """Deposit decimal amounts by asset name: fund(ALICE, USDT="1000")."""
        for asset, amount in amounts.items():
            events = self.deposit(account, asset, units(amount, asset))
            assert not of_type(events, OrderRejected), events

    # Orders.
    def buy(self, account: int, *, price: int, qty: int, symbol: str = SYMBOL, **fields) -> list:
        return self.apply(limit_order(account, BUY, price, qty, symbol=symbol, **fields))

    def sell(self, account: int, *, price: int, qty: int, symbol: str = SYMBOL, **fields) -> list:
        return self.apply(limit_order(account, SELL, price, qty, symbol=symbol, **fields))

    def market_buy(self, account: int, *, qty: int = 0, quote_qty: int = 0, symbol: str = SYMBOL, **fields) -> list:
        return self.apply(market_order(account, BUY, qty=qty, quote_qty=quote_qty, symbol=symbol, **fields))

    def market_sell(self, account: int, *, qty: int, symbol: str = SYMBOL, **fields) -> list:
        return self.apply(market_order(account, SELL, qty=qty, symbol=symbol, **fields))

    def cancel(self, account: int, *, order_id: int = 0, client_order_id: str | None = None, symbol: str = SYMBOL) -> list:
        return self.apply(CancelOrder(account=account, symbol=symbol, order_id=order_id, client_order_id=client_order_id))

    def cancel_all(self, account: int, symbol: str | None = None) -> list:
        return self.apply(CancelAll(account=account, symbol=symbol))

    def amend(
        self,
        account: int,
        *,
        order_id: int = 0,
        client_order_id: str | None = None,
        price: int = 0,
        qty: int = 0,
        symbol: str = SYMBOL,
    ) -> list:
        return self.apply(
            AmendOrder(
                account=account,
                symbol=symbol,
                order_id=order_id,
                client_order_id=client_order_id,
                price=price,
                qty=qty,
            )
        )

    # Queries.
    def free(self, account: int, asset: str) -> int:
        return self.engine.balances(account)[asset][0]

    def locked(self, account: int, asset: str) -> int:
        return self.engine.balances(account)[asset][1]

    def state_hash(self) -> str:
        return self.engine.state_hash()

    def depth(self, symbol: str = SYMBOL, limit: int = 10):
        return self.engine.depth(symbol, limit)

    def status(self, account: int, order_id: int = 0, client_order_id: str | None = None, symbol: str = SYMBOL):
        view = self.engine.order(account, symbol, order_id, client_order_id)
        return None if view is None else view.status


def funded_exchange(config: MarketConfig | None = None) -> Exchange:
    """An exchange where ALICE, BOB and CAROL each hold 1,000,000 USDT,
    100 BTC and 1,000 ETH."""
    ex = Exchange(config)
    for account in (ALICE, BOB, CAROL):
        ex.fund(account, USDT="1000000", BTC="100", ETH="1000")
    return ex


# ------------------------------------------------------------------ the doc

ENGINE_MD = ROOT / "docs" / "ENGINE.md"


def engine_md_place_checks() -> list[tuple[str, int]]:
    """(reason, wire code) for every row of ENGINE.md's place validation
    table, in the table's order."""
    import re

    rows = re.findall(r"^\|[^|]*\|\s*`([A-Z_]+)`\s*\|\s*(-\d+)\s*\|$", ENGINE_MD.read_text(), re.M)
    return [(name, int(code)) for name, code in rows]
