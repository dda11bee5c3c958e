"""Seeded random command streams over the real markets, for the determinism
and snapshot tests.

`commands(seed, count)` is a pure function of its arguments: it never looks
at an engine, so two processes, or an engine and its restored copy, fed the
same seed get the same commands. A stream mixes every command, valid and
not: limit GTC/IOC/FOK/post-only orders with all three self-trade modes,
market orders by quantity and by quote amount, cancels by id and by client
order id, cancel-all, amends, deposits, withdrawals, reused client order ids
and malformed commands, at prices walking around a mid so orders cross often.

Reproduce a run, or compare it across processes and hash seeds:

    PYTHONHASHSEED=1 python -m tests.streams --seed 7 --count 50000

prints the final state hash and a SHA-256 over the repr of every event.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from dex.core.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from dex.core.markets import MarketConfig, load_markets
from dex.core.types import OrderType, SelfTradePrevention, Side, TimeInForce
from dex.engine import Engine

ACCOUNTS = tuple(range(1, 9))
NEW_ACCOUNTS = tuple(range(9, 13))  # opened by deposits during the stream
START_MS = 1_700_000_000_000

# symbol -> (mid price in ticks, price step in ticks, qty range in lots, quote_qty range in units)
MARKETS = {
    "BTCUSDT": (5_000_000, 100, (1, 3_000), (10**8, 3_000 * 10**8)),
    "ETHUSDT": (300_000, 10, (2, 30_000), (10**8, 3_000 * 10**8)),
    "ETHBTC": (5_000, 1, (1, 5_000), (10**4, 5 * 10**6)),
}
SYMBOLS = tuple(MARKETS)
FUNDING = {"BTC": 1_000 * 10**8, "ETH": 10_000 * 10**8, "USDT": 100_000_000 * 10**8}
ASSETS = tuple(FUNDING)

RECENT_MAX = 400  # places remembered as targets for cancels and amends
STPS = (SelfTradePrevention.EXPIRE_TAKER, SelfTradePrevention.EXPIRE_MAKER, SelfTradePrevention.EXPIRE_BOTH)


@dataclass(slots=True)
class _Placed:
    index: int  # how many places came before: the order id if none was rejected
    account: int
    symbol: str
    cid: str | None
    rests: bool  # a GTC limit order: the only kind that can still be live


class _Stream:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.time_ms = START_MS
        self.places = 0
        self.recent: deque[_Placed] = deque(maxlen=RECENT_MAX)
        self.resting: deque[_Placed] = deque(maxlen=RECENT_MAX)
        self.mid = {symbol: spec[0] for symbol, spec in MARKETS.items()}

    def next(self):
        rng = self.rng
        self.time_ms += rng.choice((0, 1, 1, 2, 5))  # several commands may share a block
        symbol = rng.choice(SYMBOLS)
        step = MARKETS[symbol][1]
        if rng.random() < 0.2:
            self.mid[symbol] = max(50 * step, self.mid[symbol] + rng.choice((-step, step)))
        roll = rng.random()
        if roll < 0.52:
            return self._limit(symbol)
        if roll < 0.62:
            return self._market(symbol)
        if roll < 0.77:
            return self._cancel()
        if roll < 0.89:
            return self._amend()
        if roll < 0.893:
            return CancelAll(account=rng.choice(ACCOUNTS), symbol=rng.choice((None, symbol, symbol)))
        if roll < 0.93:
            account = rng.choice(ACCOUNTS + NEW_ACCOUNTS)
            asset = rng.choice(ASSETS)
            return Deposit(account=account, asset=asset, amount=rng.randint(1, FUNDING[asset] // 100))
        if roll < 0.96:
            asset = rng.choice(ASSETS)
            return Withdraw(account=rng.choice(ACCOUNTS + NEW_ACCOUNTS), asset=asset, amount=rng.randint(1, FUNDING[asset] // 50))
        return self._malformed(symbol)

    # -------------------------------------------------------------- places

    def _cid(self, account: int) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            mine = [p.cid for p in self.recent if p.account == account and p.cid is not None]
            if mine:
                return rng.choice(mine)  # a retry: usually a duplicate
        if roll < 0.6:
            return f"o{self.places}-{account}"
        return None

    def _record(self, command: PlaceOrder) -> PlaceOrder:
        rests = command.type == OrderType.LIMIT and command.tif == TimeInForce.GTC
        placed = _Placed(self.places, command.account, command.symbol, command.client_order_id, rests)
        self.recent.append(placed)
        if rests:
            self.resting.append(placed)
        self.places += 1
        return command

    def _price(self, symbol: str, side: Side) -> int:
        step = MARKETS[symbol][1]
        offset = self.rng.randint(-3, 15) * step
        return self.mid[symbol] - offset if side == Side.BUY else self.mid[symbol] + offset

    def _qty(self, symbol: str) -> int:
        low, high = MARKETS[symbol][2]
        # Mostly small orders, some large ones that sweep several levels.
        return self.rng.randint(low, high if self.rng.random() < 0.2 else max(low, high // 10))

    def _limit(self, symbol: str) -> PlaceOrder:
        rng = self.rng
        account = rng.choice(ACCOUNTS)
        side = rng.choice((Side.BUY, Side.SELL))
        roll = rng.random()
        tif, post_only = TimeInForce.GTC, False
        if roll < 0.12:
            tif = TimeInForce.IOC
        elif roll < 0.22:
            tif = TimeInForce.FOK
        elif roll < 0.30:
            post_only = True
        return self._record(
            PlaceOrder(
                account=account,
                symbol=symbol,
                side=side,
                tif=tif,
                price=self._price(symbol, side),
                qty=self._qty(symbol),
                post_only=post_only,
                stp=rng.choices(STPS, (6, 2, 2))[0],
                client_order_id=self._cid(account),
            )
        )

    def _market(self, symbol: str) -> PlaceOrder:
        rng = self.rng
        account = rng.choice(ACCOUNTS)
        side = rng.choice((Side.BUY, Side.SELL))
        qty, quote_qty = self._qty(symbol), 0
        if side == Side.BUY and rng.random() < 0.4:
            qty, quote_qty = 0, rng.randint(*MARKETS[symbol][3])
        return self._record(
            PlaceOrder(
                account=account,
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                tif=TimeInForce.IOC,
                qty=qty,
                quote_qty=quote_qty,
                stp=rng.choices(STPS, (6, 2, 2))[0],
                client_order_id=self._cid(account),
            )
        )

    # ------------------------------------------------------ cancel and amend

    def _target(self) -> tuple[int, str, int, str | None]:
        """(account, symbol, order_id, client_order_id) naming a recent order,
        by client id when it has one (an exact hit), else by a guessed id."""
        rng = self.rng
        if not self.resting:
            return rng.choice(ACCOUNTS), rng.choice(SYMBOLS), rng.randint(1, 10), None
        pool = self.resting if rng.random() < 0.85 else self.recent
        placed = pool[-1 - int(rng.random() ** 3 * len(pool))]  # mostly the newest
        symbol = placed.symbol if rng.random() < 0.95 else rng.choice(SYMBOLS)
        if placed.cid is not None and rng.random() < 0.8:
            return placed.account, symbol, 0, placed.cid
        guess = max(1, placed.index + 1 - rng.randint(0, placed.index // 8 + 1))
        return placed.account, symbol, guess, None

    def _cancel(self) -> CancelOrder:
        account, symbol, order_id, cid = self._target()
        return CancelOrder(account=account, symbol=symbol, order_id=order_id, client_order_id=cid)

    def _amend(self) -> AmendOrder:
        rng = self.rng
        account, symbol, order_id, cid = self._target()
        roll = rng.random()
        price = qty = 0
        if roll < 0.4:
            qty = self._qty(symbol)
        elif roll < 0.8:
            price = self._price(symbol, rng.choice((Side.BUY, Side.SELL)))
        else:
            price, qty = self._price(symbol, rng.choice((Side.BUY, Side.SELL))), self._qty(symbol)
        return AmendOrder(account=account, symbol=symbol, order_id=order_id, client_order_id=cid, price=price, qty=qty)

    # ------------------------------------------------------------ malformed

    def _malformed(self, symbol: str):
        rng = self.rng
        account = rng.choice(ACCOUNTS)
        side = rng.choice((Side.BUY, Side.SELL))
        price = self._price(symbol, side)
        choice = rng.randrange(7)
        if choice == 0:
            return PlaceOrder(account=account, symbol="DOGEUSDT", side=side, price=price, qty=10)
        if choice == 1:
            return PlaceOrder(account=account, symbol=symbol, side=side, price=price, qty=10, client_order_id=rng.choice(("", "x" * 37, "tab\t")))
        if choice == 2:
            return PlaceOrder(account=0, symbol=symbol, side=side, price=price, qty=10)
        if choice == 3:
            return PlaceOrder(account=account, symbol=symbol, side=side, price=0, qty=10)
        if choice == 4:
            return PlaceOrder(account=account, symbol=symbol, side=Side.SELL, type=OrderType.MARKET, quote_qty=10**8)
        if choice == 5:
            return Deposit(account=account, asset="DOGE", amount=1)
        return CancelOrder(account=account, symbol="DOGEUSDT", order_id=1)


def commands(seed: int, count: int) -> Iterator[tuple[object, int]]:
    """`count` (command, block_time_ms) pairs, preceded by the funding of
    every account, all drawn from random.Random(seed)."""
    stream = _Stream(seed)
    for account in ACCOUNTS:
        for asset, amount in FUNDING.items():
            yield Deposit(account=account, asset=asset, amount=amount), START_MS
    for _ in range(count):
        command = stream.next()
        yield command, stream.time_ms


def config() -> MarketConfig:
    from pathlib import Path

    return load_markets(Path(__file__).resolve().parent.parent / "configs" / "markets.toml")


@dataclass(frozen=True, slots=True)
class Replay:
    state_hash: str
    events_sha256: str
    events: int


def replay(seed: int, count: int, *, engine: Engine | None = None, check_every: int = 0) -> Replay:
    """Apply the stream to a fresh engine; return its final hash and a
    digest of every event, in order."""
    engine = engine or Engine(config())
    digest = hashlib.sha256()
    n_events = 0
    for i, (command, time_ms) in enumerate(commands(seed, count)):
        events = engine.apply(command, time_ms)
        n_events += len(events)
        digest.update(repr(events).encode())
        if check_every and i % check_every == 0:
            engine.check_invariants()
    engine.check_invariants()
    return Replay(engine.state_hash(), digest.hexdigest(), n_events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    result = replay(args.seed, args.count)
    print(json.dumps({"seed": args.seed, "count": args.count, "state_hash": result.state_hash, "events_sha256": result.events_sha256, "events": result.events}))


if __name__ == "__main__":
    main()
