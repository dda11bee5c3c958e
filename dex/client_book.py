"""A client's local copy of one market's order book, kept from the depth
stream (docs/STREAMS.md). Pure logic: no IO, no clock.

    book = LocalBook("BTCUSDT")
    book.apply_snapshot(snapshot)      # {"lastUpdateId", "bids", "asks"}
    book.apply_diff(update)            # {"U", "u", "b", "a"}; True if applied
    book.bids(10), book.asks(10)       # [[price, qty], ...] best first, as /depth renders them

Update ids are block heights. The rule (Binance's): a diff with `u <=
last_update_id` is stale and ignored (it is already in the snapshot); the
next diff must have `U <= last_update_id + 1 <= u`, which after a stream
snapshot means exactly `U == last_update_id + 1`. A diff with `U` beyond
that raises `GapDetected` and leaves the book unsynced: its owner must take
a fresh snapshot before applying anything else (`apply_diff` on an unsynced
book is a programmer error).

Levels are kept as the strings the server sent, keyed by their Decimal
price so they sort numerically; a quantity of zero removes the level. The
book holds at most LEVELS_PER_SIDE_MAX levels a side: a diff that would go
over raises BookOverflow (the owner resyncs; the snapshot holds at most
SNAPSHOT_LEVELS_MAX).

Invariants (check_invariants): every level's quantity is positive; prices are
unique per side (by construction: dict keys); the best bid is below the best
ask; the update id never goes down while synced.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

SNAPSHOT_LEVELS_MAX = 1_000  # a stream snapshot's bound, per side
LEVELS_PER_SIDE_MAX = 100_000
assert LEVELS_PER_SIDE_MAX >= SNAPSHOT_LEVELS_MAX


class GapDetected(Exception):
    """A diff does not follow the last one: events were missed."""

    def __init__(self, symbol: str, expected_first_id: int, first_id: int, last_id: int) -> None:
        super().__init__(f"{symbol}: gap in the depth stream: expected U <= {expected_first_id}, got U={first_id} u={last_id}")
        self.expected_first_id = expected_first_id
        self.first_id = first_id
        self.last_id = last_id


class BookOverflow(Exception):
    """More levels than LEVELS_PER_SIDE_MAX on one side."""


class BadMessage(ValueError):
    """A snapshot or diff that is not shaped as docs/STREAMS.md says."""


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    price_text: str
    qty_text: str


class LocalBook:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.last_update_id: int | None = None  # None: no snapshot, or dropped after a gap
        self._bids: dict[Decimal, Level] = {}
        self._asks: dict[Decimal, Level] = {}
        self.snapshots = 0
        self.diffs_applied = 0
        self.diffs_stale = 0

    @property
    def synced(self) -> bool:
        return self.last_update_id is not None

    def clear(self) -> None:
        """Drop everything: the book waits for a snapshot."""
        self.last_update_id = None
        self._bids.clear()
        self._asks.clear()

    def apply_snapshot(self, snapshot: dict) -> None:
        last_update_id = _height(snapshot.get("lastUpdateId"), "lastUpdateId")
        bids = _levels(snapshot.get("bids"), "bids")
        asks = _levels(snapshot.get("asks"), "asks")
        if len(bids) > LEVELS_PER_SIDE_MAX or len(asks) > LEVELS_PER_SIDE_MAX:
            raise BookOverflow(f"{self.symbol}: snapshot with {len(bids)} bids, {len(asks)} asks")
        self.clear()
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            for level in levels:
                if Decimal(level.qty_text) != 0:
                    side[level.price] = level
        self.last_update_id = last_update_id
        self.snapshots += 1

    def apply_diff(self, diff: dict) -> bool:
        """Apply one depthUpdate. False if it is stale (already in the book);
        raises GapDetected (and unsyncs the book) if events were missed."""
        assert self.last_update_id is not None, "apply_diff before a snapshot"
        first_id = _height(diff.get("U"), "U")
        last_id = _height(diff.get("u"), "u")
        if first_id > last_id:
            raise BadMessage(f"U={first_id} > u={last_id}")
        if last_id <= self.last_update_id:
            self.diffs_stale += 1
            return False
        expected = self.last_update_id + 1
        if first_id > expected:
            self.clear()
            raise GapDetected(self.symbol, expected, first_id, last_id)
        bids = _levels(diff.get("b"), "b")
        asks = _levels(diff.get("a"), "a")
        for side, levels in ((self._bids, bids), (self._asks, asks)):
            for level in levels:
                if Decimal(level.qty_text) == 0:
                    side.pop(level.price, None)
                else:
                    side[level.price] = level
            if len(side) > LEVELS_PER_SIDE_MAX:
                self.clear()
                raise BookOverflow(f"{self.symbol}: more than {LEVELS_PER_SIDE_MAX} levels on one side")
        self.last_update_id = last_id
        self.diffs_applied += 1
        return True

    # ----------------------------------------------------------------- views

    def bids(self, limit: int | None = None) -> list[list[str]]:
        """[[price, qty], ...] highest price first, as GET /depth renders them."""
        return _view(self._bids, reverse=True, limit=limit)

    def asks(self, limit: int | None = None) -> list[list[str]]:
        """[[price, qty], ...] lowest price first."""
        return _view(self._asks, reverse=False, limit=limit)

    def best_bid(self) -> Decimal | None:
        return max(self._bids) if self._bids else None

    def best_ask(self) -> Decimal | None:
        return min(self._asks) if self._asks else None

    def same_as_depth(self, depth: dict) -> bool:
        """True if this book is GET /depth's answer: same height, same levels
        (depth's `limit` must cover the whole book)."""
        return self.last_update_id == depth.get("lastUpdateId") and self.bids() == depth.get("bids") and self.asks() == depth.get("asks")

    def check_invariants(self) -> None:
        for side in (self._bids, self._asks):
            assert len(side) <= LEVELS_PER_SIDE_MAX
            for price, level in side.items():
                assert level.price == price
                assert Decimal(level.qty_text) > 0, f"{self.symbol}: level {level.price_text} with quantity {level.qty_text}"
        if self.last_update_id is None:
            assert not self._bids and not self._asks, "an unsynced book holds levels"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"{self.symbol}: crossed book, bid {bid} >= ask {ask}"


def _view(side: dict[Decimal, Level], *, reverse: bool, limit: int | None) -> list[list[str]]:
    assert limit is None or limit >= 0
    prices = sorted(side, reverse=reverse)
    if limit is not None:
        prices = prices[:limit]
    return [[side[p].price_text, side[p].qty_text] for p in prices]


def _height(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadMessage(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _levels(value: object, name: str) -> list[Level]:
    if not isinstance(value, list):
        raise BadMessage(f"{name} must be a list of [price, qty]")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise BadMessage(f"{name}: a level must be [price, qty] as strings, not {item!r}")
        try:
            price, qty = Decimal(item[0]), Decimal(item[1])
        except InvalidOperation:
            raise BadMessage(f"{name}: not decimal: {item!r}") from None
        if not (price.is_finite() and qty.is_finite()) or price <= 0 or qty < 0:
            raise BadMessage(f"{name}: out of range: {item!r}")
        out.append(Level(price, item[0], item[1]))
    return out
