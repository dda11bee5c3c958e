"""The mutable structures of the engine: orders, price levels, books, accounts.

They are slotted classes with no methods on the hot path; `dex.engine.engine`
manipulates them directly because a method call per fill costs more than the
fill itself in CPython. Compiled, `book.pxd` makes them extension types with
64-bit integer fields (docs/ENGINE.md, "Two implementations").

Book layout. Each side keeps a dict price -> Level and a sorted list of prices
whose *last* element is the best: `bid_prices` ascending, `ask_keys` holding
negated ask prices ascending. Taking the best level and removing it are then
`[-1]` and `pop()`, both O(1).

Level layout. A level is a FIFO deque of orders. A cancelled order is not
removed from the middle of the deque (O(n)); its `qty` is set to 0 and it is
skipped and dropped when it reaches the front. `count` and `total` cover live
orders only; a level whose `count` falls to 0 is removed with its deque, and a
deque holding many more dead entries than live ones is compacted.

State-hash records. Beside each sorted price list a book keeps the list of its
levels' 40-byte records in the book digest, pack(price) + level digest, at the
same indices (`bid_records` with `bid_prices`, `ask_records` with `ask_keys`):
whoever inserts or removes a price inserts or removes its record there too. A
level whose digest goes stale (set to None or APPENDED from a current digest)
or that is created has its key (its price for a bid, the negated price for an
ask) listed on `book.stale_keys`; the state hash refreshes just those records
(a key whose level is gone is skipped) and hashes the joined lists
(dex.engine.snapshot). The list holds at most STALE_LEVELS_MAX keys: past that
it is dropped and `records_rebuild` set, and the next state hash rebuilds
every record (an engine that is never hashed, a benchmark's, does not grow).
"""

from __future__ import annotations

from collections import deque

from dex.core.markets import Market

# Order.kind packs what a finished order needs to describe itself.
KIND_TYPE_SHIFT = 0  # 1 bit: OrderType
KIND_TIF_SHIFT = 1  # 2 bits: TimeInForce
KIND_POST_ONLY_SHIFT = 3  # 1 bit
KIND_STP_SHIFT = 4  # 2 bits: SelfTradePrevention
KIND_SIDE_SHIFT = 6  # 1 bit: Side (kept here rather than in a field of its own: 8 bytes an order)


def pack_kind(order_type: int, tif: int, post_only: bool, stp: int, side: int = 0) -> int:
    return (
        (order_type << KIND_TYPE_SHIFT)
        | (tif << KIND_TIF_SHIFT)
        | (int(post_only) << KIND_POST_ONLY_SHIFT)
        | (stp << KIND_STP_SHIFT)
        | (side << KIND_SIDE_SHIFT)
    )


def kind_side(kind: int) -> int:
    return kind >> KIND_SIDE_SHIFT


def kind_type(kind: int) -> int:
    return (kind >> KIND_TYPE_SHIFT) & 1


def kind_tif(kind: int) -> int:
    return (kind >> KIND_TIF_SHIFT) & 3


def kind_post_only(kind: int) -> bool:
    return bool((kind >> KIND_POST_ONLY_SHIFT) & 1)


def kind_stp(kind: int) -> int:
    return (kind >> KIND_STP_SHIFT) & 3


# The fields of an order, by position: `order[O_PRICE]` reads `order.price`.
# Kept for readers outside the engine that index orders (dex/api/streams.py);
# the engine itself reads the attributes.
O_ID, O_ACCOUNT, O_BOOK, O_PRICE, O_QTY, O_FILLED, O_CID, O_TIME, O_STATUS, O_KIND = range(10)
O_FIELDS = 10


class Order:
    """A live order, or a finished one still in its account's dedup window.

    An object with typed 64-bit fields rather than a list of Python ints: the
    compiled engine (docs/ENGINE.md, "Two implementations") reads and writes
    them as C integers. Fields:

      id       order id
      account  the Account object (not its id: settlement needs no lookup)
      book     the Book object
      price    ticks
      qty      lots still open; for a finished order, the lots it never filled
      filled   lots traded
      cid      client order id or None
      time_ms  block time it was placed (or re-queued by an amend)
      status   OrderStatus; NEW and PARTIALLY_FILLED are live, the rest are
               finished (a cancelled order stays dead in its queue until it
               reaches the front)
      kind     packed side, type, tif, post-only and stp (pack_kind)
    """

    __slots__ = ("id", "account", "book", "price", "qty", "filled", "cid", "time_ms", "status", "kind")

    def __init__(self, id, account, book, price, qty, filled, cid, time_ms, status, kind) -> None:
        self.id = id
        self.account = account
        self.book = book
        self.price = price
        self.qty = qty
        self.filled = filled
        self.cid = cid
        self.time_ms = time_ms
        self.status = status
        self.kind = kind

    def __getitem__(self, index: int):
        """`order[O_PRICE]`: the field at that position (see O_*)."""
        return (
            self.id, self.account, self.book, self.price, self.qty, self.filled, self.cid, self.time_ms, self.status, self.kind
        )[index]


def new_order(id, account, book, price, qty, filled, cid, time_ms, status, kind) -> Order:
    return Order(id, account, book, price, qty, filled, cid, time_ms, status, kind)


# `Level.digest` when the only changes since it was computed are orders
# queued at the back: the state hash then extends `Level.hasher` with them
# instead of re-encoding the whole level (see dex.engine.snapshot).
APPENDED = b"appended"

# The record of a level created since the last state hash (its key is on
# `Book.stale_keys`, so it never reaches a digest).
RECORD_NONE = b""
# Keys listed on `Book.stale_keys` before the book falls back to
# rebuilding every record at its next state hash. A node hashes after every
# block, and a block touches a few levels per command; only an engine left
# unhashed for many commands reaches it.
STALE_LEVELS_MAX = 4096


class Level:
    __slots__ = ("price", "total", "count", "orders", "digest", "hasher", "hashed")

    def __init__(self, price: int) -> None:
        self.price = price
        # The cached hash of its live orders: None when stale, APPENDED when
        # orders were only queued at the back since `hasher` (a SHA-256 over
        # the first `hashed` entries of `orders`, dead ones skipped) was taken.
        self.digest: bytes | None = None
        self.hasher = None
        self.hashed = 0
        self.total = 0  # lots open across live orders
        self.count = 0  # live orders
        self.orders: deque[Order] = deque()


class Account:
    """Balances per asset index, live orders by id, and the dedup window.

    `cids` maps a client order id to its order while the order is live and,
    after it finishes, until DEDUP_FINISHED_ORDERS_MAX later finished orders
    of this account have pushed it out of `finished`.
    """

    __slots__ = ("id", "free", "locked", "open", "cids", "finished", "finished_total", "window_sum", "dirty", "digest")

    def __init__(self, id: int, assets_count: int) -> None:
        self.id = id
        self.finished_total = 0  # orders with a client id that ever finished
        self.window_sum = 0  # sum of H(position, order) over `finished`, mod 2**256
        self.dirty = False  # changed since its digest was last computed
        self.digest = 0  # its term in the engine's account sum
        self.free = [0] * assets_count
        self.locked = [0] * assets_count
        self.open: dict[int, Order] = {}
        self.cids: dict[str, Order] = {}
        self.finished: deque[Order] = deque()


class Book:
    """One market's two sides plus the market's integer parameters."""

    __slots__ = (
        "market",
        "symbol",
        "index",
        "base",
        "quote",
        "lot_units",
        "notional_units",
        "min_qty",
        "max_qty",
        "max_price",
        "min_notional",
        "maker_bps",
        "taker_bps",
        "bids",
        "asks",
        "bid_prices",
        "ask_keys",
        "order_count",
        "digest",
        "bid_records",
        "ask_records",
        "stale_keys",
        "records_rebuild",
    )

    def __init__(self, market: Market, index: int, base: int, quote: int) -> None:
        self.market = market
        self.symbol = market.symbol
        self.index = index
        self.base = base  # asset index
        self.quote = quote  # asset index
        self.lot_units = market.lot_units
        self.notional_units = market.notional_units
        self.min_qty = market.min_qty_lots
        self.max_qty = market.max_qty_lots
        self.max_price = market.max_price_ticks
        self.min_notional = market.min_notional_units
        self.maker_bps = market.maker_fee_bps
        self.taker_bps = market.taker_fee_bps
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_prices: list[int] = []  # ascending; best bid last
        self.ask_keys: list[int] = []  # negated ask prices ascending; best ask last
        self.order_count = 0  # live orders on both sides
        self.digest: bytes | None = None  # cached hash of both sides; None when stale
        # The state hash's per-level records, aligned with the price lists
        # (see the module docstring), and the keys of levels whose record is
        # stale (a bid's price, an ask's negated price).
        self.bid_records: list[bytes] = []
        self.ask_records: list[bytes] = []
        self.stale_keys: list[int] = []
        self.records_rebuild = False  # every record stale: rebuild them all
